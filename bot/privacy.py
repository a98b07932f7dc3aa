"""Privacy operations: erase a customer's conversations everywhere csbot keeps them, and
purge conversations idle past the retention period.

"Everywhere" is the store (messages, ratings, CSAT, handoffs) and the training pairs
built from it inside the workspace; the index holds only transcripts imported by an
operator, masked at ingestion, never the store's conversations. What is erased is logged
by conversation id and row counts, never by content or by the email that found it.

The `*_in_workspace` functions open a built workspace's store themselves (the CLI); the
others take an open store (the HTTP service, which holds one).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import STORE_FILE
from bot.store import ConversationStore
from bot.workspace import read_manifest
from finetune.pairs import erase_from_pairs, find_pairs_dirs

log = logging.getLogger("csbot.privacy")


@dataclass
class ErasureReport:
    """What an erasure removed: conversation ids, store rows per table, training pairs."""

    conversations: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # store rows deleted, per table
    pairs: int = 0  # training pairs removed from the workspace's pairs directories

    def to_json(self) -> dict[str, object]:
        return {"conversations": self.conversations, "rows": self.rows, "pairs": self.pairs}


def forget_conversations(
    store: ConversationStore, workspace: Path, conversation_ids: list[str], reason: str
) -> ErasureReport:
    """Erase these conversations from the store and from every pairs directory in the
    workspace. Unknown ids are skipped (a repeated request erases nothing more)."""
    report = ErasureReport()
    for conversation_id in conversation_ids:
        if not store.conversation_exists(conversation_id):
            continue
        for table, n in store.erase_conversation(conversation_id).items():
            report.rows[table] = report.rows.get(table, 0) + n
        report.conversations.append(conversation_id)
    if conversation_ids:
        for pairs_dir in find_pairs_dirs(workspace):
            report.pairs += erase_from_pairs(pairs_dir, conversation_ids)
    log.info(
        "erased %d conversation(s) (%s): %s rows, %d training pairs; ids: %s",
        len(report.conversations),
        reason,
        report.rows,
        report.pairs,
        ", ".join(report.conversations),
    )
    return report


def forget_customer(store: ConversationStore, workspace: Path, email: str) -> ErasureReport:
    """Erase every conversation in which `email` appears (messages or remembered slots)."""
    return forget_conversations(store, workspace, store.conversations_mentioning(email), "request by email")


def purge_idle(store: ConversationStore, workspace: Path, retention_days: float) -> ErasureReport:
    """Erase the conversations with no activity in the last `retention_days` days."""
    return forget_conversations(
        store, workspace, store.idle_conversations(retention_days), f"retention of {retention_days:g} days"
    )


def forget_in_workspace(
    workspace: Path,
    *,
    conversation_ids: Sequence[str] = (),
    email: str | None = None,
    store_target: Path | str | None = None,
) -> ErasureReport:
    """A privacy request against a built workspace: erase these conversations, or (with
    `email`) every conversation that mentions that address. `store_target`: its store
    when that is not the workspace's file (`CsbotSettings.store_target`)."""
    read_manifest(workspace)  # a missing build says how to make one, before a store is created
    with ConversationStore(store_target or workspace / STORE_FILE) as store:
        if email is not None:
            return forget_customer(store, workspace, email)
        return forget_conversations(store, workspace, list(conversation_ids), "request by id")


def purge_idle_in_workspace(
    workspace: Path, retention_days: float, store_target: Path | str | None = None
) -> ErasureReport:
    """`purge_idle` on a built workspace's store."""
    read_manifest(workspace)
    with ConversationStore(store_target or workspace / STORE_FILE) as store:
        return purge_idle(store, workspace, retention_days)
