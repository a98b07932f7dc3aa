"""`csbot models ...`: list, add, promote, approve, roll back and retire the workspace's
trained generators (finetune.registry)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.cli.console import WorkspaceOpt, err, error_edge, fail, load_config, out, print_json, step
from finetune.registry import BrokenModelError, ModelEntry, ModelRegistry

models_app = typer.Typer(
    help="Trained GPT-2 composers in the workspace: list, add, promote, approve, roll back, retire.",
    no_args_is_help=True,
)


def _registry(workspace: Path | None) -> ModelRegistry:
    """The registry of --workspace, which must exist."""
    ws = load_config(workspace).workspace
    if not ws.is_dir():
        fail(f"workspace {ws} does not exist; build one with `csbot build --workspace {ws}` or pass --workspace DIR")
    return ModelRegistry.for_workspace(ws)


def _short(value: object, n: int = 8) -> str:
    return str(value)[:n] if value else "-"


@models_app.command("list")
def list_(
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array instead of a table")] = False,
) -> None:
    """The registered models, oldest first; * marks the promoted one, `state` says which wait
    for approval. A broken promotion (pointer or promoted model) is reported with its fix."""
    registry = _registry(workspace)
    with error_edge():
        entries = registry.list()
        broken = registry.check_promotion()
    if broken is not None:
        err.print(f"[red]error:[/] {broken}", highlight=False, soft_wrap=True)

    def state(e: ModelEntry) -> str:
        if e.promoted and isinstance(broken, BrokenModelError) and broken.model_id == e.id:
            return "promoted, broken"
        return e.state

    if as_json:
        print_json([{**e.to_json(), "state": state(e)} for e in entries])
        return
    if not entries:
        err.print(
            f"no models registered in {registry.root}; add one with `csbot models add DIR` "
            "(`csbot finetune train` registers what it trains)",
            highlight=False,
        )
        return
    table = Table(show_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("base", overflow="fold")
    table.add_column("valid_loss", justify="right", no_wrap=True)
    table.add_column("data", no_wrap=True)
    table.add_column("registered", no_wrap=True)
    for e in entries:
        loss = e.valid_loss
        table.add_row(
            "*" if e.promoted else "",
            e.id,
            state(e),
            str(e.base or "-"),
            f"{loss:.4f}" if isinstance(loss, (int, float)) else "-",
            _short(e.data_sha256),
            e.registered_at[:19].replace("T", " ") or "-",
        )
    # piped output is not cut to rich's default 80 columns
    (out if out.is_terminal else Console(width=140)).print(table)


@models_app.command("add")
def add(
    model_dir: Annotated[Path, typer.Argument(help="A trained model directory (a run's final/)")],
    workspace: WorkspaceOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="A label kept with the model")] = None,
) -> None:
    """Register a trained model (copied into the workspace; not promoted)."""
    registry = _registry(workspace)
    with error_edge():
        entry = registry.register(model_dir, name=name)
    step(f"registered {entry.id}; promote it with `csbot models promote {entry.id}`")
    print_json({"id": entry.id, "path": str(entry.path), "promoted": False})


@models_app.command("promote")
def promote(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="A model id from `csbot models list`")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Make ID the model the assistant uses (a running assistant picks it up on its next turn)."""
    registry = _registry(workspace)
    with error_edge():
        entry = registry.promote(model_id)
        pointer = registry.pointer() or {}
    step(f"promoted {entry.id}")
    print_json({"promoted": entry.id, "previous": pointer.get("previous")})


@models_app.command("approve")
def approve(
    model_id: Annotated[
        str, typer.Argument(metavar="ID", help="A model `csbot models list` shows as awaiting approval")
    ],
    workspace: WorkspaceOpt = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who approves (kept with the model) [default: the user running the command]"),
    ] = None,
) -> None:
    """Approve a candidate that `csbot finetune round --require-approval` left waiting: it is
    promoted (a running assistant picks it up on its next turn)."""
    if by is None:
        try:
            by = getpass.getuser()
        except (KeyError, OSError):  # no user name to be found (a bare container)
            by = None
    registry = _registry(workspace)
    with error_edge():
        entry = registry.approve(model_id, by=by)
        pointer = registry.pointer() or {}
    step(f"approved and promoted {entry.id}")
    print_json({"promoted": entry.id, "approved": entry.id, "approved_by": by, "previous": pointer.get("previous")})


@models_app.command("rollback")
def rollback(workspace: WorkspaceOpt = None) -> None:
    """Promote again the model promoted before the current one (repeat to step further back)."""
    registry = _registry(workspace)
    with error_edge():
        before = (registry.pointer() or {}).get("id")
        entry = registry.rollback()
        pointer = registry.pointer() or {}
    step(f"rolled back from {before} to {entry.id}")
    print_json({"promoted": entry.id, "rolled_back_from": before, "previous": pointer.get("previous")})


@models_app.command("retire")
def retire(workspace: WorkspaceOpt = None) -> None:
    """Switch the GPT-2 composer off: the assistant answers with the retrieval composer from its
    next turn (models stay registered; `promote ID` turns one on again)."""
    registry = _registry(workspace)
    with error_edge():
        retired = registry.retire()
    step(
        f"retired {retired}; the assistant answers with the retrieval composer"
        if retired
        else "no model was promoted; the assistant already answers with the retrieval composer"
    )
    print_json({"promoted": None, "retired": retired})
