"""The conversation store's schema, as the ordered migrations that build it.

A store file of any age is brought to the current schema by applying the migrations it
has not seen yet; a migration, once released, is never edited (a new one follows it).
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

from retrieval.entities import redact_card_numbers

SCHEMA_NAME = "csbot"
migrations = Migrations(SCHEMA_NAME)


@migrations()
def m001_initial(db: Database) -> None:
    db.table("conversations").create(
        {
            "id": str,
            "channel": str,
            "status": str,  # open | handoff | closed
            "state": str,  # DialogueState as JSON
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"channel", "status", "state", "created_at", "updated_at"},
    )
    db.table("messages").create(
        {
            "id": int,
            "conversation_id": str,
            "turn": int,
            "role": str,  # customer | bot | agent | system
            "text": str,
            "intent": str,
            "confidence": float,
            "out_of_scope": int,
            "action": str,
            "sources": str,  # JSON list of {id, score}
            "composer": str,
            "note": str,
            "latency_ms": float,
            "created_at": str,
        },
        pk="id",
        not_null={"conversation_id", "turn", "role", "text", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id")],
    )
    db.table("messages").create_index(["conversation_id", "turn"], unique=True)
    db.table("feedback").create(
        {"id": int, "message_id": int, "rating": str, "comment": str, "created_at": str},
        pk="id",
        not_null={"message_id", "rating", "created_at"},
        foreign_keys=[("message_id", "messages", "id")],
    )
    db.table("handoffs").create(
        {
            "id": int,
            "conversation_id": str,
            "message_id": int,
            "reason": str,
            "status": str,  # waiting | assigned | closed (the agent panel fills the rest)
            "created_at": str,
        },
        pk="id",
        not_null={"conversation_id", "reason", "status", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id"), ("message_id", "messages", "id")],
    )


@migrations()
def m002_agent_edits(db: Database) -> None:
    # the agent panel: a human agent's message that started as a bot suggestion keeps the
    # suggestion's text here (the fine-tuning pairs learn from the edited version)
    db.table("messages").add_column("edited_from", str)


@migrations()
def m003_web_channel(db: Database) -> None:
    # the HTTP channel: a customer message may carry the client's id for it, so that a
    # message re-sent by the widget's offline queue finds its stored turn instead of
    # taking a second one (unique per conversation; NULLs do not collide in SQLite)
    db.table("messages").add_column("client_message_id", str)
    db.table("messages").create_index(
        ["conversation_id", "client_message_id"], unique=True, index_name="messages_client_message_id"
    )
    # quick replies offered with a bot message (JSON list), so a reloaded widget shows them
    db.table("messages").add_column("buttons", str)
    # customer satisfaction at the end of a conversation (1 = very bad ... 5 = very good)
    db.table("csat").create(
        {"id": int, "conversation_id": str, "score": int, "comment": str, "created_at": str},
        pk="id",
        not_null={"conversation_id", "score", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id")],
    )


@migrations()
def m004_public_access(db: Database) -> None:
    # a web conversation's access token, as its SHA-256 (the token itself is never stored);
    # NULL for conversations that the public API never serves (CLI, platform channels)
    db.table("conversations").add_column("token_hash", str)
    # one rating per message and one CSAT per conversation: the latest wins, so a client
    # cannot stack ratings (keep the newest of any earlier duplicates)
    db.execute("delete from feedback where id not in (select max(id) from feedback group by message_id)")
    db.table("feedback").create_index(["message_id"], unique=True, index_name="feedback_one_per_message")
    db.table("feedback").add_column("author", str)  # customer | agent: who rated it
    # live event streams look up handoffs by conversation once per poll
    db.table("handoffs").create_index(["conversation_id"], index_name="handoffs_by_conversation")
    db.execute("delete from csat where id not in (select max(id) from csat group by conversation_id)")
    db.table("csat").create_index(["conversation_id"], unique=True, index_name="csat_one_per_conversation")
    # card numbers are kept as their last four digits from now on: mask the ones that
    # customers' messages stored before (the dialogue state re-masks its slot on load)
    for row in list(db.query("select id, text from messages where role = 'customer'")):
        masked = redact_card_numbers(row["text"])
        if masked != row["text"]:
            db.execute("update messages set text = ? where id = ?", [masked, row["id"]])
