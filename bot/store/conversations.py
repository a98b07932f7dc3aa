"""The conversation store: conversations, their turns and handoffs, and the reads of them.

Everything a conversation needs between turns lives here (messages, dialogue state,
feedback, handoffs), never in a process's memory, so any replica can take the next turn.
Each turn is written in one transaction: a crash leaves either the whole turn or nothing.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import UnknownConversationError
from bot.store.channels import ChannelsMixin
from bot.store.errors import ConstraintError, DuplicateClientMessageError, StoreError
from bot.store.feedback import FeedbackMixin
from bot.store.records import DialogueState, MessageRecord, decoded_message, message_row, now_timestamp
from bot.store.retention import RetentionMixin


class ConversationStore(FeedbackMixin, RetentionMixin, ChannelsMixin):
    """Conversations, messages, feedback and handoffs in one SQLite file or PostgreSQL database."""

    # -- conversations -------------------------------------------------------------
    def create_conversation(
        self, channel: str = "cli", conversation_id: str | None = None, token_hash: str | None = None
    ) -> str:
        """A new conversation. `token_hash` (the SHA-256 of its access token) makes it
        readable through the public API by whoever holds the token."""
        conversation_id = conversation_id or uuid.uuid4().hex
        now = now_timestamp()
        self.db.insert(
            "conversations",
            {
                "id": conversation_id,
                "channel": channel,
                "status": "open",
                "state": DialogueState().to_json(),
                "created_at": now,
                "updated_at": now,
                "token_hash": token_hash,
            },
            returning_id=False,
        )
        return conversation_id

    def access_ok(self, conversation_id: str, token_hash: str, read_hours: float | None = None) -> bool:
        """Whether `token_hash` opens the conversation: it has a token, the hashes match
        (compared in constant time), and it was active within `read_hours`."""
        rows = list(self.db.query("select token_hash, updated_at from conversations where id = ?", [conversation_id]))
        if not rows or not rows[0]["token_hash"]:
            return False
        if not hmac.compare_digest(rows[0]["token_hash"], token_hash):
            return False
        if read_hours is not None:
            idle = datetime.now(UTC) - datetime.fromisoformat(rows[0]["updated_at"])
            return idle <= timedelta(hours=read_hours)
        return True

    def ensure_conversation(self, conversation_id: str, channel: str) -> bool:
        """Create the conversation unless it exists (channels that name conversations
        themselves, like the Rasa REST sender id). True when it was created now."""
        now = now_timestamp()
        cursor = self.db.execute(
            "insert into conversations (id, channel, status, state, created_at, updated_at) "
            "values (?, ?, 'open', ?, ?, ?) on conflict do nothing",
            [conversation_id, channel, DialogueState().to_json(), now, now],
        )
        return cursor.rowcount == 1

    def conversation_exists(self, conversation_id: str) -> bool:
        return self.db.count_where("conversations", "id = ?", [conversation_id]) > 0

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """The conversation's row (id, channel, status, state, created_at, updated_at)."""
        rows = list(self.db.query("select * from conversations where id = ?", [conversation_id]))
        if not rows:
            raise UnknownConversationError(conversation_id)
        return rows[0]

    def load_state(self, conversation_id: str) -> DialogueState:
        rows = list(self.db.query("select state from conversations where id = ?", [conversation_id]))
        if not rows:
            raise UnknownConversationError(conversation_id)
        return DialogueState.from_json(rows[0]["state"])

    def iter_conversations(self) -> Iterator[dict[str, Any]]:
        yield from self.db.rows_where("conversations", order_by="created_at, id")

    # -- turns ---------------------------------------------------------------------
    def record_turn(
        self,
        conversation_id: str,
        customer: MessageRecord,
        bot: MessageRecord,
        state: DialogueState,
        handoff_reason: str | None = None,
    ) -> int:
        """Write the customer message, the bot's reply, the new state and an optional
        handoff atomically. Returns the bot message id.

        A customer message whose `client_message_id` the conversation already has raises
        `DuplicateClientMessageError` and writes nothing."""
        try:
            return self._record_turn(conversation_id, customer, bot, state, handoff_reason)
        except ConstraintError:
            cid = customer.client_message_id
            if cid is not None and self.turn_for_client_message(conversation_id, cid) is not None:
                raise DuplicateClientMessageError(conversation_id, cid) from None
            raise

    def _record_turn(
        self,
        conversation_id: str,
        customer: MessageRecord,
        bot: MessageRecord,
        state: DialogueState,
        handoff_reason: str | None,
    ) -> int:
        with self._write_transaction():
            turn = self._next_turn(conversation_id)
            self._insert_message(conversation_id, turn, customer)
            bot_id = self._insert_message(conversation_id, turn + 1, bot)
            status = "handoff" if state.handed_off else "open"
            now = now_timestamp()
            updated = self.db.execute(
                "update conversations set state = ?, status = ?, updated_at = ? where id = ?",
                [state.to_json(), status, now, conversation_id],
            )
            if updated.rowcount != 1:
                raise UnknownConversationError(conversation_id)
            # a customer writing into a resolved conversation is the bot's again
            self.db.execute(
                "update conversations set handling = 'bot', handling_changed_at = ? "
                "where id = ? and handling = 'resolved'",
                [now, conversation_id],
            )
            if handoff_reason:
                self._queue_for_agent(conversation_id, bot_id, handoff_reason, now)
        return bot_id

    def _queue_for_agent(self, conversation_id: str, message_id: int, reason: str, now: str) -> None:
        """The bot handed over: the conversation waits in the agents' queue (pending), and a
        handoff episode starts (its timings feed the metrics). A conversation a human already
        holds stays with that human."""
        self.db.execute(
            "update conversations set handling = 'pending', handling_changed_at = ?, agent_id = null "
            "where id = ? and handling != 'open'",
            [now, conversation_id],
        )
        self.db.insert(
            "handoffs",
            {
                "conversation_id": conversation_id,
                "message_id": message_id,
                "reason": reason,
                "status": "waiting",
                "created_at": now,
            },
        )

    def handling(self, conversation_id: str) -> str:
        """Who handles the conversation now: "bot", "pending" (waiting for a human), "open"
        (a human has it) or "resolved"."""
        rows = list(self.db.query("select handling from conversations where id = ?", [conversation_id]))
        if not rows:
            raise UnknownConversationError(conversation_id)
        return str(rows[0]["handling"])

    def record_customer_message(self, conversation_id: str, customer: MessageRecord) -> int:
        """Write a customer message that the bot does not answer (a human agent holds the
        conversation), as the conversation's next turn. Returns its message id.

        A `client_message_id` the conversation already has raises
        `DuplicateClientMessageError` and writes nothing."""
        try:
            with self._write_transaction():
                message_id = self._insert_message(conversation_id, self._next_turn(conversation_id), customer)
                self.db.execute(
                    "update conversations set updated_at = ? where id = ?", [now_timestamp(), conversation_id]
                )
                return message_id
        except ConstraintError:
            cid = customer.client_message_id
            if cid is not None and self.customer_message(conversation_id, cid) is not None:
                raise DuplicateClientMessageError(conversation_id, cid) from None
            if not self.conversation_exists(conversation_id):
                raise UnknownConversationError(conversation_id) from None
            raise

    def customer_message(self, conversation_id: str, client_message_id: str) -> dict[str, Any] | None:
        """The customer message that carried `client_message_id`, or None."""
        rows = list(
            self.db.query(
                "select * from messages where conversation_id = ? and client_message_id = ?",
                [conversation_id, client_message_id],
            )
        )
        return decoded_message(rows[0]) if rows else None

    def record_agent_message(self, conversation_id: str, text: str, edited_from: str | None = None) -> int:
        """Write a human agent's message as the conversation's next turn, in one transaction.

        `edited_from` is the bot suggestion's text when the agent edited a suggestion before
        sending it (the agent panel). Returns the message id."""
        if not isinstance(text, str) or not text.strip():
            raise StoreError("an agent message needs non-empty text")
        if edited_from is not None and not isinstance(edited_from, str):
            raise StoreError(f"edited_from must be the suggestion's text or None, got {type(edited_from).__name__}")
        with self._write_transaction():
            updated = self.db.execute(
                "update conversations set updated_at = ? where id = ?", [now_timestamp(), conversation_id]
            )
            if updated.rowcount != 1:
                raise UnknownConversationError(conversation_id)
            return self._insert_message(
                conversation_id,
                self._next_turn(conversation_id),
                MessageRecord("agent", text.strip(), edited_from=edited_from),
            )

    def _next_turn(self, conversation_id: str) -> int:
        """The turn number the conversation's next message takes (read inside the write lock)."""
        rows = list(
            self.db.query(
                "select coalesce(max(turn), -1) + 1 as next from messages where conversation_id = ?",
                [conversation_id],
            )
        )
        return int(rows[0]["next"])

    def _insert_message(self, conversation_id: str, turn: int, m: MessageRecord) -> int:
        message_id = self.db.insert("messages", message_row(conversation_id, turn, m))
        if message_id is None:  # typed optional; an insert into `messages` always has one
            raise StoreError(f"storing a message of conversation {conversation_id} returned no id")
        return message_id

    # -- reads ---------------------------------------------------------------------
    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        if not self.conversation_exists(conversation_id):
            raise UnknownConversationError(conversation_id)
        rows = self.db.rows_where("messages", "conversation_id = ?", [conversation_id], order_by="turn")
        return [decoded_message(r) for r in rows]

    def messages_page(
        self, conversation_id: str, *, limit: int, before: int | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """The latest `limit` messages (below message id `before`, when given), oldest
        first, and whether older ones remain."""
        if not self.conversation_exists(conversation_id):
            raise UnknownConversationError(conversation_id)
        rows = list(
            self.db.query(
                "select * from messages where conversation_id = ? and id < ? order by id desc limit ?",
                [conversation_id, before if before is not None else 2**63 - 1, limit + 1],
            )
        )
        has_more = len(rows) > limit
        return [decoded_message(r) for r in reversed(rows[:limit])], has_more

    def turn_for_client_message(
        self, conversation_id: str, client_message_id: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """(customer message, the bot reply after it) of the turn that carried
        `client_message_id`; the reply is None when the bot stayed silent (a human agent
        held the conversation). None when the conversation has no such message."""
        customer = self.customer_message(conversation_id, client_message_id)
        if customer is None:
            return None
        rows = list(
            self.db.query(
                "select * from messages where conversation_id = ? and turn = ? and role = 'bot'",
                [conversation_id, customer["turn"] + 1],
            )
        )
        return customer, decoded_message(rows[0]) if rows else None

    def agent_messages_after(self, conversation_id: str, after_message_id: int) -> list[dict[str, Any]]:
        """The conversation's human-agent messages with an id above `after_message_id`,
        oldest first (what a live channel has not shown yet)."""
        return list(
            self.db.query(
                "select id, text, created_at from messages "
                "where conversation_id = ? and role = 'agent' and id > ? order by id",
                [conversation_id, after_message_id],
            )
        )

    def iter_messages(self) -> Iterator[dict[str, Any]]:
        """Every message of every conversation, grouped by conversation (in creation
        order) and in turn order within one; `sources` decoded. One query, streamed from
        SQLite (PostgreSQL's rows arrive whole: `PostgresDatabase.query`)."""
        rows = self.db.query(
            "select m.* from messages m join conversations c on c.id = m.conversation_id "
            "order by c.created_at, c.id, m.turn"
        )
        for r in rows:
            yield decoded_message(r)

    def handoffs(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        if conversation_id is None:
            return list(self.db.rows_where("handoffs", order_by="id"))
        return list(self.db.rows_where("handoffs", "conversation_id = ?", [conversation_id], order_by="id"))
