"""Internal notes on a conversation: written by agents for agents, never shown to the
customer and never part of the transcript the fine-tuning pairs are built from."""

from __future__ import annotations

import builtins
from typing import Any

from bot.agents.accounts import Agent
from bot.agents.clock import Clock, timestamp, utc_now
from bot.agents.errors import InvalidAgentInputError
from bot.errors import UnknownConversationError
from bot.store import ConversationStore

MAX_NOTE_CHARS = 4000


class AgentNotes:
    """The `agent_notes` table: add a note, list a conversation's notes."""

    def __init__(self, store: ConversationStore, clock: Clock = utc_now):
        self.store = store
        self.clock = clock

    def add(self, conversation_id: str, agent: Agent, text: str) -> int:
        """A note by `agent` (1 to 4000 characters after stripping); returns its id."""
        if not isinstance(text, str):
            raise InvalidAgentInputError(f"a note is text, got {type(text).__name__}")
        body = text.strip()
        if not body:
            raise InvalidAgentInputError("the note is empty; write something to keep")
        if len(body) > MAX_NOTE_CHARS:
            raise InvalidAgentInputError(f"the note has {len(body)} characters; the limit is {MAX_NOTE_CHARS}")
        with self.store._write_transaction():
            if not self.store.conversation_exists(conversation_id):
                raise UnknownConversationError(conversation_id)
            note_id = self.store.db.insert(
                "agent_notes",
                {
                    "conversation_id": conversation_id,
                    "agent_id": agent.id,
                    "text": body,
                    "created_at": timestamp(self.clock()),
                },
            )
        return int(note_id or 0)

    def list(self, conversation_id: str) -> builtins.list[dict[str, Any]]:
        """The conversation's notes, oldest first: id, agent_id, agent_name, text, created_at."""
        if not self.store.conversation_exists(conversation_id):
            raise UnknownConversationError(conversation_id)
        return list(
            self.store.db.query(
                "select n.id, n.agent_id, a.name as agent_name, n.text, n.created_at from agent_notes n "
                "left join agents a on a.id = n.agent_id where n.conversation_id = ? order by n.id",
                [conversation_id],
            )
        )
