"""`csbot db status | upgrade | export | import`: the workspace's conversation store.

Each command checks --workspace and calls one function of `bot.store.admin`; a wrong
workspace, a file that is not a csbot store, or a store migrated by a newer csbot is one
line on stderr and exit code 1 (the error edge), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.console import WorkspaceOpt, error_edge, fail, load_config, print_json, step
from bot.store.admin import export_conversations, import_conversations, schema_status, upgrade

db_app = typer.Typer(
    help="The conversation store: schema status and upgrade, export and import of conversations (JSONL).",
    no_args_is_help=True,
)

STORE_FILE = "store.db"


def _store_path(workspace: Path | None, *, must_exist: bool) -> Path | str:
    """The store of --workspace (its file, or CSBOT_DATABASE_URL's database); the workspace
    folder must exist, and a store file too when the command only reads it."""
    config = load_config(workspace)
    ws = config.workspace
    if not ws.is_dir():
        fail(f"workspace {ws} does not exist; pass --workspace DIR (a built assistant's folder)")
    if config.database_url is not None:
        return config.store_target
    path = ws / STORE_FILE
    if must_exist and not path.is_file():
        fail(f"workspace {ws} has no conversation store ({STORE_FILE}); nothing to read there yet")
    return path


@db_app.command("status")
def status(workspace: WorkspaceOpt = None) -> None:
    """The store's schema: applied, known, pending and unknown (newer) migrations, as JSON."""
    path = _store_path(workspace, must_exist=False)
    with error_edge():
        report = schema_status(path)
    schema = report.schema
    if schema.newer_than_known:
        step(f"the store is newer than this csbot ({', '.join(schema.unknown)}): upgrade csbot before using it")
    elif schema.pending:
        step(f"{len(schema.pending)} migration(s) pending: `csbot db upgrade` applies them (so does the next start)")
    else:
        step(f"up to date: {len(schema.applied)} migration(s) applied")
    print_json(report.to_json())


@db_app.command("upgrade")
def upgrade_(workspace: WorkspaceOpt = None) -> None:
    """Apply pending migrations, all or nothing, under the store's write lock (a second
    upgrade at the same time waits, then finds nothing to do)."""
    path = _store_path(workspace, must_exist=False)
    with error_edge():
        applied = upgrade(path)
        report = schema_status(path)
    step(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "; already up to date"))
    print_json({"applied_now": applied, **report.to_json()})


@db_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(metavar="FILE", help="JSONL file to write (must not exist)")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Write every conversation (messages, ratings, CSAT, handoffs) to a JSONL file, one per line."""
    path = _store_path(workspace, must_exist=True)
    with error_edge():
        report = export_conversations(path, out)
    step(f"exported {report.conversations} conversation(s), {report.messages} message(s) to {out}")
    print_json(report.to_json())


@db_app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="JSONL file from `csbot db export` (or our conversation format)")
    ],
    workspace: WorkspaceOpt = None,
) -> None:
    """Add the file's conversations to the store, all or nothing (an id the store has is refused)."""
    path = _store_path(workspace, must_exist=False)
    with error_edge():
        report = import_conversations(path, file)
    step(f"imported {report.conversations} conversation(s), {report.messages} message(s) from {file}")
    print_json(report.to_json())
