"""`csbot forget` and `csbot purge`: privacy requests and retention, on a built workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.console import WorkspaceOpt, error_edge, fail, load_config, print_json, step
from bot.privacy import forget_in_workspace, purge_idle_in_workspace


def forget(
    conversation: Annotated[
        list[str] | None, typer.Option("--conversation", "-c", help="A conversation id to erase (repeatable)")
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Erase every conversation that mentions this email address")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Erase a customer's conversations (a privacy request): messages, ratings, CSAT,
    handoffs, and the training pairs built from them. Prints what went, by id and count."""
    if bool(conversation) == bool(email):
        fail("name what to erase: --conversation ID (repeatable) or --email ADDRESS, not both")
    if email is not None and "@" not in email:
        fail(f"--email {email!r} is not an email address")
    config = load_config(workspace)
    with error_edge():
        report = forget_in_workspace(
            config.workspace, conversation_ids=conversation or [], email=email, store_target=config.store_target
        )
    if not report.conversations and not report.pairs:
        step("nothing to erase: no such conversation in the store or the training pairs")
    print_json(report.to_json())


def purge(
    older_than_days: Annotated[
        float, typer.Option("--older-than-days", help="Erase conversations idle longer than this")
    ],
    workspace: WorkspaceOpt = None,
) -> None:
    """Erase every conversation idle longer than --older-than-days (what CSBOT_RETENTION_DAYS
    does on a running server, at start and hourly)."""
    if older_than_days <= 0:
        fail(f"--older-than-days must be more than 0; got {older_than_days:g}")
    config = load_config(workspace)
    with error_edge():
        report = purge_idle_in_workspace(config.workspace, older_than_days, config.store_target)
    step(f"erased {len(report.conversations)} conversation(s) idle over {older_than_days:g} days")
    print_json(report.to_json())
