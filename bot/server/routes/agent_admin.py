"""What only an admin may do from the panel: manage agent accounts, and choose which
trained reply model the assistant uses.

The account routes are `csbot users` over HTTP (bot/agents' AgentAccounts); the model
routes call the very registry functions `csbot models` calls (finetune.registry), so a
promotion made here is the one the CLI lists, and a running assistant picks it up on its
next turn. Registry work touches files under a lock, so it runs on a thread of its own,
never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam

from bot.agents.errors import InvalidTransitionError
from bot.server.agent_auth import AdminIn, AdminWrite, Ready, run_agents
from bot.server.agent_schemas import ModelsOut, PasswordIn, PromotionOut, UserIn, UserOut, UsersOut
from bot.server.schemas import ErrorOut
from finetune.registry import ModelEntry, ModelRegistry

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422, 503)}

AgentName = Annotated[str, PathParam(min_length=1, max_length=64, description="the agent's name")]
ModelId = Annotated[str, PathParam(min_length=1, max_length=128, description="an id from GET /api/v1/agent/models")]
# a learning round's id as it names its folder (finetune/rounds/<id>/)
_ROUND_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


# -- agent accounts ----------------------------------------------------------------------


@router.get("/users", response_model=UsersOut, responses=_ERRORS)
async def list_users(request: Request, info: AdminIn) -> dict:
    """Every agent account, by name."""
    agents = await run_agents(request, lambda s: s.accounts.list())
    return {"users": [a.to_json() for a in agents]}


@router.post("/users", status_code=201, response_model=UserOut, responses=_ERRORS)
async def add_user(body: UserIn, request: Request, info: AdminWrite) -> dict:
    """A new agent or admin (409 `agent_exists` when the name is taken; 422 for a name or
    password that breaks the rules)."""
    agent = await run_agents(request, lambda s: s.accounts.add(body.name, body.password, body.role))
    return agent.to_json()


@router.post("/users/{name}/disable", response_model=UserOut, responses=_ERRORS)
async def disable_user(name: AgentName, request: Request, info: AdminWrite) -> dict:
    """Stop an agent signing in; their sessions end at once."""
    if name.lower() == info.agent.name:
        raise InvalidTransitionError("you cannot disable your own account; ask another admin to do it")
    agent = await run_agents(request, lambda s: s.accounts.disable(name))
    return agent.to_json()


@router.post("/users/{name}/enable", response_model=UserOut, responses=_ERRORS)
async def enable_user(name: AgentName, request: Request, info: AdminWrite) -> dict:
    """Let a disabled agent sign in again."""
    agent = await run_agents(request, lambda s: s.accounts.enable(name))
    return agent.to_json()


@router.post("/users/{name}/reset-password", response_model=UserOut, responses=_ERRORS)
async def reset_password(name: AgentName, body: PasswordIn, request: Request, info: AdminWrite) -> dict:
    """Give an agent a new password; their sessions end at once."""
    agent = await run_agents(request, lambda s: s.accounts.reset_password(name, body.password))
    return agent.to_json()


# -- trained reply models ----------------------------------------------------------------


def _registry(rt: Ready) -> ModelRegistry:
    return ModelRegistry.for_workspace(Path(rt.settings.workspace))


@router.get("/models", response_model=ModelsOut, responses=_ERRORS)
async def list_models(rt: Ready, info: AdminIn) -> dict:
    """The registered models (what `csbot models list` shows): each one's base, data
    hash, validation figures, the learning round's evaluation when a round made it, and
    which is promoted and which a rollback would bring back."""
    return await asyncio.to_thread(models_report, _registry(rt), Path(rt.settings.workspace))


def models_report(registry: ModelRegistry, workspace: Path) -> dict[str, Any]:
    entries = registry.list()
    # without hashing the weights (`csbot models list` does that): a listing stays cheap
    problem = registry.check_promotion(verify=False)
    pointer = registry.pointer() or {}
    previous = pointer.get("previous")
    return {
        "models": [_model(e, previous, workspace) for e in entries],
        "promoted": pointer.get("id"),
        "previous": previous,
        "problem": str(problem) if problem is not None else None,
    }


def _model(entry: ModelEntry, previous: str | None, workspace: Path) -> dict[str, Any]:
    return {
        "id": entry.id,
        "name": entry.metadata.get("name"),
        "base": entry.base,
        "data_sha256": entry.data_sha256,
        "registered_at": entry.registered_at or None,
        "state": entry.state,
        "promoted": entry.promoted,
        "previous": entry.id == previous,
        "validation": dict(entry.metrics),
        "evaluation": _round_evaluation(entry, workspace),
    }


def _round_evaluation(entry: ModelEntry, workspace: Path) -> dict[str, Any] | None:
    """The held-out comparison of the learning round that trained `entry` (its round.json),
    or None when no round made it or the report is gone."""
    round_id = entry.metadata.get("name")
    if not isinstance(round_id, str) or not _ROUND_ID.fullmatch(round_id) or round_id in (".", ".."):
        return None
    path = workspace / "finetune" / "rounds" / round_id / "round.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or (report.get("candidate") or {}).get("id") != entry.id:
        return None
    keys = ("round", "held_out_pairs", "candidate", "current", "decision", "reason")
    return {k: report[k] for k in keys if k in report}


@router.post("/models/{model_id}/promote", response_model=PromotionOut, responses=_ERRORS)
async def promote_model(model_id: ModelId, rt: Ready, info: AdminWrite) -> dict:
    """Make the model the one the assistant uses (`csbot models promote ID`)."""
    registry = _registry(rt)

    def promote() -> dict[str, Any]:
        entry = registry.promote(model_id)
        return {"promoted": entry.id, "previous": (registry.pointer() or {}).get("previous")}

    return await asyncio.to_thread(promote)


@router.post("/models/rollback", response_model=PromotionOut, responses=_ERRORS)
async def rollback_model(rt: Ready, info: AdminWrite) -> dict:
    """Promote again the model promoted before the current one (`csbot models rollback`);
    409 `invalid_transition` when there is none."""
    registry = _registry(rt)

    def rollback() -> dict[str, Any]:
        before = (registry.pointer() or {}).get("id")
        entry = registry.rollback()
        return {
            "promoted": entry.id,
            "previous": (registry.pointer() or {}).get("previous"),
            "rolled_back_from": before,
        }

    return await asyncio.to_thread(rollback)


@router.post("/models/{model_id}/retire", response_model=PromotionOut, responses=_ERRORS)
async def retire_model(model_id: ModelId, rt: Ready, info: AdminWrite) -> dict:
    """Switch the promoted model off (`csbot models retire`): the assistant answers with the
    retrieval composer from its next turn. The id must be the promoted model's (409
    otherwise), so a stale page cannot switch off a model it did not show."""
    registry = _registry(rt)

    def retire() -> dict[str, Any]:
        entry = registry.get(model_id)  # 404 for an unknown id
        if not entry.promoted:
            raise InvalidTransitionError(
                f"{model_id} is not the promoted model, so there is nothing to retire; "
                "GET /api/v1/agent/models says which one is"
            )
        return {"promoted": None, "previous": None, "retired": registry.retire()}

    return await asyncio.to_thread(retire)
