"""Erasure and retention in the conversation store: finding a customer's or an idle
conversation, and deleting a conversation with every row that refers to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.errors import UnknownConversationError
from bot.store.connection import StoreConnection


class RetentionMixin(StoreConnection):
    """What `csbot forget` and the retention sweep ask of the store."""

    def erase_conversation(self, conversation_id: str) -> dict[str, int]:
        """Delete a conversation with everything that refers to it (messages, ratings,
        CSAT, handoffs), in one transaction. Returns the rows deleted per table; raises
        UnknownConversationError when there is no such conversation."""
        with self._write_transaction():
            counts = {
                "feedback": self.db.execute(
                    "delete from feedback where message_id in (select id from messages where conversation_id = ?)",
                    [conversation_id],
                ).rowcount,
                "csat": self.db.execute("delete from csat where conversation_id = ?", [conversation_id]).rowcount,
                "agent_notes": self.db.execute(
                    "delete from agent_notes where conversation_id = ?", [conversation_id]
                ).rowcount,
                "suggestions": self.db.execute(
                    "delete from suggestions where conversation_id = ?", [conversation_id]
                ).rowcount,
                "handoffs": self.db.execute(
                    "delete from handoffs where conversation_id = ?", [conversation_id]
                ).rowcount,
                "messages": self.db.execute(
                    "delete from messages where conversation_id = ?", [conversation_id]
                ).rowcount,
                "conversations": self.db.execute("delete from conversations where id = ?", [conversation_id]).rowcount,
            }
            if counts["conversations"] != 1:
                raise UnknownConversationError(conversation_id)
        if self.db.dialect == "sqlite":
            # fold the WAL into the main file, so the erased pages do not linger in the log
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    def conversations_mentioning(self, text: str) -> list[str]:
        """Ids of conversations whose messages or dialogue state contain `text` (case
        folded): how `csbot forget --email` finds a customer's conversations."""
        needle = text.strip().lower()
        if not needle:
            return []
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.query(
            "select id from conversations where lower(state) like :p escape '\\' "
            "union select conversation_id from messages where lower(text) like :p escape '\\' "
            "   or lower(coalesce(edited_from, '')) like :p escape '\\'",
            {"p": pattern},
        )
        return sorted(r["id"] for r in rows)

    def idle_conversations(self, idle_days: float) -> list[str]:
        """Ids of conversations with no activity in the last `idle_days` days."""
        cutoff = (datetime.now(UTC) - timedelta(days=idle_days)).isoformat(timespec="milliseconds")
        return [
            r["id"]
            for r in self.db.query("select id from conversations where updated_at < ? order by updated_at", [cutoff])
        ]
