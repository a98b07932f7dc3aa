"""The admin routes of the panel: agent accounts, and the model registry through the same
library calls `csbot models` makes (so the CLI sees every change made here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.registry import ModelRegistry
from tests.bot.server.agent_panel import PANEL, PASSWORD, panel_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def panel(demo_workspace, tmp_path_factory):
    with panel_server(demo_workspace, tmp_path_factory.mktemp("agent-admin")) as server:
        yield server


@pytest.fixture(scope="module")
def admin(panel):
    return panel.new_agent("admin")


def _stand_in_model(path: Path, run: int, valid_loss: float) -> Path:
    """A folder the registry accepts as a model (placeholder files; never loaded here)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2", "run": run}))
    (path / "model.safetensors").write_bytes(f"weights of run {run}".encode())
    (path / "tokenizer.json").write_text("{}")
    meta = {"base": "scratch", "data_sha256": f"{run:064x}", "metrics": {"valid_loss": valid_loss}}
    (path / "csbot_model.json").write_text(json.dumps(meta))
    return path


def test_an_admin_adds_lists_disables_enables_and_resets_agents(panel, admin):
    made = admin.post("/users", {"name": "Dana", "password": PASSWORD, "role": "agent"})
    assert made.status_code == 201, made.text
    assert made.json() == {**made.json(), "name": "dana", "role": "agent", "disabled": False}
    assert "password" not in made.text and "hash" not in made.text
    listed = {u["name"]: u for u in admin.get("/users").json()["users"]}
    assert listed["dana"]["id"] == made.json()["id"] and listed[admin.name]["role"] == "admin"

    dana = panel.sign_in("dana")
    assert admin.post("/users/dana/disable").json()["disabled"] is True
    assert dana.get("/queue").status_code == 401
    assert admin.post("/users/dana/enable").json()["disabled"] is False

    dana = panel.sign_in("dana")
    new_password = "a brand new passphrase"
    reset = admin.post("/users/dana/reset-password", {"password": new_password})
    assert reset.status_code == 200, reset.text
    assert dana.get("/queue").status_code == 401  # a reset ends the agent's sessions
    assert panel.sign_in("dana", new_password).name == "dana"


def test_adding_an_agent_refuses_duplicates_bad_names_and_weak_passwords(admin):
    name = "erin"
    assert admin.post("/users", {"name": name, "password": PASSWORD}).status_code == 201
    dup = admin.post("/users", {"name": name.upper(), "password": PASSWORD})
    assert dup.status_code == 409 and dup.json()["code"] == "agent_exists"
    bad = admin.post("/users", {"name": "no spaces please", "password": PASSWORD})
    assert bad.status_code == 422 and "a-z" in bad.json()["detail"]
    weak = admin.post("/users", {"name": "frank", "password": "short"})
    assert weak.status_code == 422
    role = admin.post("/users", {"name": "grace", "password": PASSWORD, "role": "root"})
    assert role.status_code == 422
    assert not {"frank", "grace"} & {u["name"] for u in admin.get("/users").json()["users"]}


def test_unknown_agents_are_404_and_an_admin_cannot_disable_themselves(admin):
    r = admin.post("/users/nobody-at-all/disable")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    own = admin.post(f"/users/{admin.name}/disable")
    assert own.status_code == 409 and own.json()["code"] == "invalid_transition"
    assert admin.get("/session").status_code == 200


def test_models_are_listed_promoted_rolled_back_and_retired_as_the_cli_does(panel, admin, tmp_path):
    workspace = Path(panel.live.settings.workspace)
    registry = ModelRegistry.for_workspace(workspace)
    assert admin.get("/models").json() == {"models": [], "promoted": None, "previous": None, "problem": None}
    first = registry.register(_stand_in_model(tmp_path / "a", 1, 2.5), name="round-a")
    second = registry.register(_stand_in_model(tmp_path / "b", 2, 2.1))
    rounds = workspace / "finetune" / "rounds" / "round-a"
    rounds.mkdir(parents=True)
    report = {"round": "round-a", "held_out_pairs": 40, "candidate": {"id": first.id, "overlap": 0.4}}
    (rounds / "round.json").write_text(json.dumps({**report, "current": {"id": "retrieval"}, "decision": "kept"}))

    listed = admin.get("/models").json()
    assert [m["id"] for m in listed["models"]] == [first.id, second.id]
    a = listed["models"][0]
    assert a["base"] == "scratch" and a["data_sha256"] == f"{1:064x}" and a["validation"] == {"valid_loss": 2.5}
    assert a["state"] == "registered" and a["promoted"] is False and a["name"] == "round-a"
    assert a["evaluation"]["candidate"] == {"id": first.id, "overlap": 0.4} and a["evaluation"]["decision"] == "kept"
    assert listed["models"][1]["evaluation"] is None

    assert admin.post(f"/models/{first.id}/promote").json() == {
        "promoted": first.id,
        "previous": None,
        "retired": None,
        "rolled_back_from": None,
    }
    assert admin.post(f"/models/{second.id}/promote").json()["previous"] == first.id
    listed = admin.get("/models").json()
    assert listed["promoted"] == second.id and listed["previous"] == first.id
    assert [(m["promoted"], m["previous"]) for m in listed["models"]] == [(False, True), (True, False)]
    assert registry.promoted().id == second.id  # what `csbot models list` reads

    back = admin.post("/models/rollback").json()
    assert back["promoted"] == first.id and back["rolled_back_from"] == second.id
    assert registry.promoted().id == first.id

    stale = admin.post(f"/models/{second.id}/retire")
    assert stale.status_code == 409 and stale.json()["code"] == "invalid_transition"
    retired = admin.post(f"/models/{first.id}/retire").json()
    assert retired["retired"] == first.id and retired["promoted"] is None
    assert registry.promoted() is None

    nothing = admin.post("/models/rollback")
    assert nothing.status_code == 409 and nothing.json()["code"] == "invalid_transition"
    unknown = admin.post("/models/gen-20990101-000000-abcdef/promote")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_admin_writes_need_the_csrf_header_too(panel, admin):
    r = admin.client.post(f"{PANEL}/users", json={"name": "henry", "password": PASSWORD})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    assert "henry" not in {u["name"] for u in admin.get("/users").json()["users"]}
