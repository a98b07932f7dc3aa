"""The replies suggested to agents, and what became of each: shown, sent as is, edited
before sending, or discarded. The edited ones are what the fine-tuning pairs learn from;
the counts are what the metrics report as the suggestions' acceptance.

Showing is idempotent per (conversation, customer message, agent): fetching the
suggestions again for the same message returns the rows already logged instead of
counting them twice. Sending goes through `ConversationHandling.send`, which marks the
suggestion in the same transaction as the message."""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.agents.accounts import Agent
from bot.agents.clock import Clock, timestamp, utc_now
from bot.agents.errors import InvalidAgentInputError, InvalidTransitionError, UnknownSuggestionError
from bot.errors import UnknownConversationError
from bot.store import ConversationStore

KINDS = ("generated", "retrieved")
MAX_SUGGESTIONS = 3


@dataclass(frozen=True)
class SuggestionDraft:
    """One candidate reply to log: from the composer ('generated') or a past answer or
    article found by retrieval ('retrieved'); `sources` are (unit id, score) pairs."""

    kind: str
    composer: str | None
    text: str
    sources: tuple[tuple[str, float], ...] = ()
    score: float | None = None


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "sources": json.loads(row["sources"] or "[]")}


class SuggestionLog:
    """The `suggestions` table: log what was shown, discard one, read them back."""

    def __init__(self, store: ConversationStore, clock: Clock = utc_now):
        self.store = store
        self.clock = clock

    def log_shown(
        self, conversation_id: str, for_message_id: int, agent: Agent, candidates: Sequence[SuggestionDraft]
    ) -> builtins.list[int]:
        """Log up to 3 suggestions shown to `agent` for the customer message `for_message_id`
        (rank = their order); returns their ids. When these were logged for this agent and
        message already, returns the ids logged then and writes nothing."""
        if len(candidates) > MAX_SUGGESTIONS:
            raise InvalidAgentInputError(f"{len(candidates)} suggestions; show at most {MAX_SUGGESTIONS}")
        for c in candidates:
            self._check(c)
        with self.store._write_transaction():
            existing = [
                int(r["id"])
                for r in self.store.db.query(
                    "select id from suggestions where conversation_id = ? and for_message_id = ? and agent_id = ? "
                    "order by rank, id",
                    [conversation_id, for_message_id, agent.id],
                )
            ]
            if existing:
                return existing
            rows = list(
                self.store.db.query(
                    "select conversation_id from messages where id = ?",
                    [for_message_id],
                )
            )
            if not rows or rows[0]["conversation_id"] != conversation_id:
                if not self.store.conversation_exists(conversation_id):
                    raise UnknownConversationError(conversation_id)
                raise InvalidAgentInputError(
                    f"message {for_message_id} is not in conversation {conversation_id}; "
                    "suggest replies to one of its customer messages"
                )
            now = timestamp(self.clock())
            ids = []
            for rank, c in enumerate(candidates):
                suggestion_id = self.store.db.insert(
                    "suggestions",
                    {
                        "conversation_id": conversation_id,
                        "for_message_id": for_message_id,
                        "agent_id": agent.id,
                        "rank": rank,
                        "kind": c.kind,
                        "composer": c.composer,
                        "text": c.text,
                        "sources": json.dumps([{"id": i, "score": round(float(s), 4)} for i, s in c.sources]),
                        "score": None if c.score is None else float(c.score),
                        "shown_at": now,
                        "outcome": "shown",
                    },
                )
                ids.append(int(suggestion_id or 0))
            return ids

    def discard(self, suggestion_id: int, agent: Agent, conversation_id: str | None = None) -> None:
        """Mark a shown suggestion discarded (again: nothing to do). With `conversation_id`,
        the suggestion must belong to that conversation. A sent one stays sent
        (InvalidTransitionError)."""
        with self.store._write_transaction():
            row = self.get(suggestion_id, conversation_id)
            if row["outcome"] in ("sent", "edited"):
                raise InvalidTransitionError(
                    f"suggestion {suggestion_id} was sent already (message {row['message_id']}); it cannot be discarded"
                )
            if row["outcome"] == "shown":
                self.store.db.execute(
                    "update suggestions set outcome = 'discarded', decided_at = ? where id = ?",
                    [timestamp(self.clock()), suggestion_id],
                )

    def get(self, suggestion_id: int, conversation_id: str | None = None) -> dict[str, Any]:
        """The suggestion's row (sources decoded); UnknownSuggestionError when there is none
        (or, with `conversation_id`, when it belongs to another conversation)."""
        rows = list(self.store.db.query("select * from suggestions where id = ?", [suggestion_id]))
        if not rows or (conversation_id is not None and rows[0]["conversation_id"] != conversation_id):
            raise UnknownSuggestionError(suggestion_id)
        return _decoded(rows[0])

    def for_conversation(self, conversation_id: str) -> builtins.list[dict[str, Any]]:
        """Every suggestion logged in the conversation, in the order they were shown."""
        rows = self.store.db.query("select * from suggestions where conversation_id = ? order by id", [conversation_id])
        return [_decoded(r) for r in rows]

    @staticmethod
    def _check(c: SuggestionDraft) -> None:
        if not isinstance(c, SuggestionDraft):
            raise InvalidAgentInputError(f"a suggestion is a SuggestionDraft, got {type(c).__name__}")
        if c.kind not in KINDS:
            raise InvalidAgentInputError(f"suggestion kind {c.kind!r} is not one of {', '.join(KINDS)}")
        if not isinstance(c.text, str) or not c.text.strip():
            raise InvalidAgentInputError("a suggestion needs text")
        if c.score is not None and not math.isfinite(float(c.score)):
            raise InvalidAgentInputError(f"a suggestion's score is a finite number, got {c.score!r}")
