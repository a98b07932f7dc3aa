"""Ratings of bot replies and customer satisfaction (CSAT) scores, in the conversation store."""

from __future__ import annotations

from typing import Any

from bot.errors import UnknownConversationError
from bot.store.connection import StoreConnection
from bot.store.errors import NotABotMessageError, StoreError, UnknownMessageError
from bot.store.records import now_timestamp


class FeedbackMixin(StoreConnection):
    """The `feedback` and `csat` tables: one rating per bot reply, one score per conversation."""

    def add_feedback(
        self,
        message_id: int,
        rating: str,
        comment: str | None = None,
        *,
        conversation_id: str | None = None,
        author: str = "customer",
    ) -> int:
        """Rate a bot reply; a message has one rating, and a new one replaces it. With
        `conversation_id`, the message must belong to that conversation (what the public
        API asks: nobody rates another conversation's replies). Returns the rating's id."""
        if rating not in ("up", "down"):
            raise StoreError(f"rating must be 'up' or 'down', got {rating!r}")
        if author not in ("customer", "agent"):
            raise StoreError(f"a rating's author is 'customer' or 'agent', got {author!r}")
        rows = list(self.db.query("select role, conversation_id from messages where id = ?", [message_id]))
        if not rows or (conversation_id is not None and rows[0]["conversation_id"] != conversation_id):
            raise UnknownMessageError(message_id)
        if rows[0]["role"] != "bot":
            raise NotABotMessageError(message_id, rows[0]["role"])
        self.db.execute(
            "insert into feedback (message_id, rating, comment, author, created_at) values (?, ?, ?, ?, ?) "
            "on conflict (message_id) do update set rating = excluded.rating, comment = excluded.comment, "
            "author = excluded.author, created_at = excluded.created_at",
            [message_id, rating, comment, author, now_timestamp()],
        )
        self.db.commit()
        found = list(self.db.query("select id from feedback where message_id = ?", [message_id]))
        return int(found[0]["id"])

    def feedback_votes(self) -> dict[int, tuple[str, str]]:
        """message id -> (rating "up"/"down", author "customer"/"agent") for every rated
        message (one rating each; ratings from before authors were kept count as customers')."""
        rows = self.db.query("select message_id, rating, author from feedback order by id")
        return {r["message_id"]: (r["rating"], r["author"] or "customer") for r in rows}

    def suggestion_outcomes(self) -> dict[str, int]:
        """outcome ("shown"/"sent"/"edited"/"discarded") -> how many reply suggestions shown to
        agents ended that way: the pairs report the discarded ones, which never became messages."""
        rows = self.db.query("select outcome, count(*) as n from suggestions group by outcome order by outcome")
        return {r["outcome"]: int(r["n"]) for r in rows}

    def feedback_ratings(self) -> dict[int, tuple[str, ...]]:
        """message id -> its ratings ("up"/"down"), for every rated message."""
        return {message_id: (rating,) for message_id, (rating, _) in self.feedback_votes().items()}

    def latest_ratings(self, conversation_id: str) -> dict[int, str]:
        """message id -> its latest rating ("up"/"down"), for the conversation's rated messages."""
        rows = self.db.query(
            "select f.message_id, f.rating from feedback f join messages m on m.id = f.message_id "
            "where m.conversation_id = ? order by f.id",
            [conversation_id],
        )
        return {r["message_id"]: r["rating"] for r in rows}

    def add_csat(self, conversation_id: str, score: int, comment: str | None = None) -> int:
        """Record the conversation's satisfaction score (1-5); a second one replaces the
        first. Returns its id."""
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise StoreError(f"a CSAT score is a whole number from 1 to 5, got {score!r}")
        if self.db.count_where("conversations", "id = ?", [conversation_id]) == 0:
            raise UnknownConversationError(conversation_id)
        self.db.execute(
            "insert into csat (conversation_id, score, comment, created_at) values (?, ?, ?, ?) "
            "on conflict (conversation_id) do update set score = excluded.score, "
            "comment = excluded.comment, created_at = excluded.created_at",
            [conversation_id, score, comment, now_timestamp()],
        )
        self.db.commit()
        found = list(self.db.query("select id from csat where conversation_id = ?", [conversation_id]))
        return int(found[0]["id"])

    def csat(self, conversation_id: str) -> list[dict[str, Any]]:
        return list(self.db.rows_where("csat", "conversation_id = ?", [conversation_id], order_by="id"))
