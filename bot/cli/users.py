"""`csbot users ...`: the agent panel's accounts in the workspace's store (add, list,
disable, enable, reset a password). Passwords come from a hidden prompt typed twice, or
from stdin with --password-stdin (for scripts), never from a flag: flags end up in shell
history and process listings."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.agents import ROLES, AgentAccounts, DuplicateAgentError, normalize_name
from bot.cli.console import WorkspaceOpt, err, error_edge, fail, load_config, out, print_json, step
from bot.store import ConversationStore

users_app = typer.Typer(help="Agent panel users: add, list, disable, enable, reset a password.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The agent's sign-in name (case-insensitive)")]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from stdin (one line) instead of prompting"),
]


@contextmanager
def _accounts(workspace: Path | None) -> Iterator[AgentAccounts]:
    """The accounts in --workspace's store; the workspace directory must exist."""
    config = load_config(workspace)
    ws = config.workspace
    if not ws.is_dir():
        fail(f"workspace {ws} does not exist; build one with `csbot build --workspace {ws}` or pass --workspace DIR")
    with error_edge(), ConversationStore(config.store_target) as store:
        yield AgentAccounts(store)


def _password(from_stdin: bool) -> str:
    """The new password: stdin's first line, or a hidden prompt typed twice."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail('--password-stdin read no password; pipe one line, e.g. `printf %s "$PW" | csbot users add ...`')
        return line
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def add(
    name: NameArg,
    role: Annotated[str, typer.Option("--role", help="agent, or admin (manages users and models)")] = "agent",
    password_stdin: PasswordStdinOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Add an agent who can sign in to the panel at /agent."""
    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}; got {role!r}", code=2)
    with _accounts(workspace) as accounts:
        # a bad or taken name is said before the password is asked for
        if any(a.name == normalize_name(name) for a in accounts.list()):
            raise DuplicateAgentError(normalize_name(name))
        agent = accounts.add(name, _password(password_stdin), role=role)
    step(f"added {agent.role} {agent.name}")
    print_json(agent.to_json())


@users_app.command("list")
def list_(
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array instead of a table")] = False,
) -> None:
    """The agents, by name."""
    with _accounts(workspace) as accounts:
        agents = accounts.list()
    if as_json:
        print_json([a.to_json() for a in agents])
        return
    if not agents:
        err.print("no agents yet; add one with `csbot users add NAME --role admin`", highlight=False)
        return
    table = Table(show_edge=False)
    for column in ("name", "role", "status", "created"):
        table.add_column(column, no_wrap=True)
    for a in agents:
        table.add_row(a.name, a.role, "disabled" if a.disabled else "enabled", a.created_at[:19].replace("T", " "))
    (out if out.is_terminal else Console(width=140)).print(table)


@users_app.command("disable")
def disable(name: NameArg, workspace: WorkspaceOpt = None) -> None:
    """Stop an agent signing in; their open sessions end at once."""
    with _accounts(workspace) as accounts:
        agent = accounts.disable(name)
    step(f"disabled {agent.name}; their sessions have ended")
    print_json(agent.to_json())


@users_app.command("enable")
def enable(name: NameArg, workspace: WorkspaceOpt = None) -> None:
    """Let a disabled agent sign in again."""
    with _accounts(workspace) as accounts:
        agent = accounts.enable(name)
    step(f"enabled {agent.name}")
    print_json(agent.to_json())


@users_app.command("reset-password")
def reset_password(name: NameArg, password_stdin: PasswordStdinOpt = False, workspace: WorkspaceOpt = None) -> None:
    """Give an agent a new password; their open sessions end at once."""
    with _accounts(workspace) as accounts:
        accounts.get(name)  # an unknown name is said before the password is asked for
        agent = accounts.reset_password(name, _password(password_stdin))
    step(f"new password set for {agent.name}; their sessions have ended")
    print_json(agent.to_json())
