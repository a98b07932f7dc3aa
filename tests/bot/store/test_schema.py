"""The schema migrations: a store file made by an older release is brought up to date, its rows kept."""

from sqlite_utils import Database, Migrations

from bot.store import SCHEMA_NAME, ConversationStore, m001_initial


def test_a_store_made_before_migration_2_gains_edited_from_and_keeps_its_messages(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    first = Migrations(SCHEMA_NAME)  # the schema as it was when only m001 existed
    first()(m001_initial)
    first.apply(db)
    db["conversations"].insert(
        {
            "id": "c1",
            "channel": "cli",
            "status": "open",
            "state": "{}",
            "created_at": "2025-01-01",
            "updated_at": "2025-01-01",
        }
    )
    db["messages"].insert(
        {"conversation_id": "c1", "turn": 0, "role": "customer", "text": "hi", "created_at": "2025-01-01"}
    )
    db["messages"].insert(
        {
            "conversation_id": "c1",
            "turn": 1,
            "role": "customer",
            "text": "card 4111 1111 1111 1111 please",
            "created_at": "2025-01-01",
        }
    )
    db.close()
    with ConversationStore(path).open() as store:
        assert store.schema_version == 7
        message, carded = store.messages("c1")
        assert message["text"] == "hi" and message["edited_from"] is None
        # stored before cards were masked: masked by the migration, last four kept
        assert carded["text"] == "card **** **** **** 1111 please"
        store.record_agent_message("c1", "Hello!", edited_from="Hi there")
        assert [m["edited_from"] for m in store.messages("c1")] == [None, None, "Hi there"]
