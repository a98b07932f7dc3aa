"""`csbot users`: accounts added, listed, disabled, enabled and given new passwords in the
workspace's store; passwords from stdin or a hidden prompt typed twice; every mistake is
one line on stderr saying what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.agents import AgentAccounts, AgentSessions, NotSignedInError
from bot.cli.users import users_app
from bot.store import ConversationStore
from tests.helpers import last_json, run_csbot

PASSWORD = "correct horse battery"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


def users(workspace: Path, *args: str, stdin: str | None = None):
    return CliRunner().invoke(users_app, [*args, "--workspace", str(workspace)], input=stdin)


def test_add_from_stdin_stores_an_agent_who_can_sign_in(workspace) -> None:
    result = users(workspace, "add", "Alice", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    added = last_json(result.stdout)
    assert (added["name"], added["role"], added["disabled"]) == ("alice", "admin", False)
    assert "added admin alice" in result.stderr
    with ConversationStore(workspace / "store.db") as store:
        assert AgentAccounts(store).authenticate("alice", PASSWORD).id == added["id"]


def test_add_prompts_twice_for_a_hidden_password(workspace) -> None:
    result = users(workspace, "add", "bob", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.stderr
    assert last_json(result.stdout)["role"] == "agent"  # the default role
    assert PASSWORD not in result.stdout
    with ConversationStore(workspace / "store.db") as store:
        assert AgentAccounts(store).authenticate("bob", PASSWORD).name == "bob"


def test_a_mistyped_confirmation_asks_again(workspace) -> None:
    result = users(workspace, "add", "bob", stdin=f"{PASSWORD}\nsomething else!\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.stderr
    with ConversationStore(workspace / "store.db") as store:
        assert AgentAccounts(store).authenticate("bob", PASSWORD).name == "bob"


def test_add_refuses_a_weak_password_a_bad_name_a_bad_role_and_a_duplicate(workspace) -> None:
    weak = users(workspace, "add", "bob", "--password-stdin", stdin="short\n")
    assert weak.exit_code == 1 and "use at least 10" in weak.stderr
    bad_name = users(workspace, "add", "bob smith", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad_name.exit_code == 1 and "a-z, 0-9" in bad_name.stderr
    bad_role = users(workspace, "add", "bob", "--role", "root", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad_role.exit_code == 2 and "--role must be one of agent, admin" in bad_role.stderr
    empty = users(workspace, "add", "bob", "--password-stdin", stdin="")
    assert empty.exit_code == 1 and "read no password" in empty.stderr
    assert users(workspace, "add", "bob", "--password-stdin", stdin=PASSWORD + "\n").exit_code == 0
    duplicate = users(workspace, "add", "BOB")  # said before any password is asked for
    assert duplicate.exit_code == 1 and "'bob' exists already" in duplicate.stderr
    assert "Password" not in duplicate.stdout
    assert [a["name"] for a in json.loads(users(workspace, "list", "--json").stdout)] == ["bob"]


def test_list_prints_a_table_or_json(workspace) -> None:
    empty = users(workspace, "list")
    assert empty.exit_code == 0 and "no agents yet" in empty.stderr
    for name, role in (("zoe", "agent"), ("adam", "admin")):
        users(workspace, "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
    users(workspace, "disable", "zoe")
    table = users(workspace, "list")
    assert table.exit_code == 0
    lines = [
        line.replace("│", " ").replace("┃", " ").split()
        for line in table.stdout.splitlines()
        if line.strip() and "━" not in line and "─" not in line
    ]
    assert [line[:3] for line in lines] == [
        ["name", "role", "status"],
        ["adam", "admin", "enabled"],
        ["zoe", "agent", "disabled"],
    ]
    listed = json.loads(users(workspace, "list", "--json").stdout)
    assert [(a["name"], a["role"], a["disabled"]) for a in listed] == [("adam", "admin", False), ("zoe", "agent", True)]


def test_disable_ends_sessions_and_enable_restores_sign_in(workspace) -> None:
    users(workspace, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    with ConversationStore(workspace / "store.db") as store:
        token, _ = AgentSessions(store, AgentAccounts(store)).sign_in("alice", PASSWORD, None)
    result = users(workspace, "disable", "ALICE")
    assert result.exit_code == 0 and last_json(result.stdout)["disabled"] is True
    assert "their sessions have ended" in result.stderr
    with ConversationStore(workspace / "store.db") as store, pytest.raises(NotSignedInError):
        AgentSessions(store, AgentAccounts(store)).authenticate(token)
    result = users(workspace, "enable", "alice")
    assert result.exit_code == 0 and last_json(result.stdout)["disabled"] is False
    with ConversationStore(workspace / "store.db") as store:
        assert AgentAccounts(store).authenticate("alice", PASSWORD).name == "alice"


def test_reset_password_switches_it(workspace) -> None:
    users(workspace, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    result = users(workspace, "reset-password", "alice", "--password-stdin", stdin="a brand new passphrase\n")
    assert result.exit_code == 0, result.stderr
    with ConversationStore(workspace / "store.db") as store:
        assert AgentAccounts(store).authenticate("alice", "a brand new passphrase").name == "alice"
    prompted = users(workspace, "reset-password", "alice", stdin="another passphrase\nanother passphrase\n")
    assert prompted.exit_code == 0, prompted.stderr


@pytest.mark.parametrize("command", ["disable", "enable", "reset-password"])
def test_an_unknown_name_says_how_to_list_them(workspace, command) -> None:
    result = users(workspace, command, "nobody")
    assert result.exit_code == 1 and "no agent named 'nobody'" in result.stderr and "csbot users list" in result.stderr


def test_a_missing_workspace_says_how_to_make_one(tmp_path) -> None:
    result = users(tmp_path / "absent", "list")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    assert not (tmp_path / "absent").exists()


@pytest.mark.e2e
def test_the_installed_cli_has_the_users_commands(workspace) -> None:
    added = run_csbot("users", "add", "ops", "--role", "admin", "--password-stdin", workspace=workspace, stdin=PASSWORD)
    assert last_json(added.stdout)["name"] == "ops"
    listed = run_csbot("users", "list", "--json", workspace=workspace)
    assert [a["name"] for a in json.loads(listed.stdout)] == ["ops"]
