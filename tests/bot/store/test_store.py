"""The conversation store: real SQLite files in a temp dir."""

import sqlite3

import pytest
from sqlite_utils import Database, Migrations

from bot.errors import UnknownConversationError
from bot.store import (
    SCHEMA_NAME,
    ConversationStore,
    DialogueState,
    DuplicateClientMessageError,
    MessageRecord,
    NotABotMessageError,
    StoreError,
    UnknownMessageError,
    m001_initial,
)


@pytest.fixture
def store(tmp_path):
    with ConversationStore(tmp_path / "store.db").open() as s:
        yield s


def turn(store, conversation_id, customer="where is my order", reply="Could you tell me your order number?", **kw):
    return store.record_turn(
        conversation_id,
        MessageRecord("customer", customer),
        MessageRecord(
            "bot",
            reply,
            intent="order_status",
            confidence=0.9,
            action="clarify",
            sources=(("conv-1#t0", 0.81234),),
            composer="policy",
            latency_ms=12.5,
        ),
        kw.pop("state", DialogueState()),
        **kw,
    )


def test_opens_in_wal_mode_with_a_schema_version(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == 4


def test_reopening_applies_no_migration_twice(tmp_path):
    ConversationStore(tmp_path / "s.db").open().close()
    with ConversationStore(tmp_path / "s.db").open() as again:
        assert again.schema_version == 4


def test_a_turn_writes_customer_and_bot_messages_in_order(store):
    cid = store.create_conversation(channel="web")
    bot_id = turn(store, cid)
    messages = store.messages(cid)
    assert [m["role"] for m in messages] == ["customer", "bot"]
    assert [m["turn"] for m in messages] == [0, 1]
    assert messages[1]["id"] == bot_id
    assert messages[1]["sources"] == [{"id": "conv-1#t0", "score": 0.8123}]
    assert messages[1]["latency_ms"] == 12.5


def test_state_round_trips_through_the_store(store):
    cid = store.create_conversation()
    state = DialogueState(slots={"order_id": "#40318275"}, active_intent="order_status", failures=1)
    turn(store, cid, state=state)
    assert store.load_state(cid) == state


def test_a_failed_turn_leaves_nothing_half_written(store):
    cid = store.create_conversation()
    turn(store, cid)
    with pytest.raises(sqlite3.IntegrityError):
        store.record_turn(
            cid, MessageRecord("customer", "second"), MessageRecord("bot", None), DialogueState(failures=5)
        )
    assert len(store.messages(cid)) == 2
    assert store.load_state(cid).failures == 0


def test_handoff_is_recorded_with_the_bot_message(store):
    cid = store.create_conversation()
    bot_id = turn(store, cid, state=DialogueState(handed_off=True), handoff_reason="customer asked for a human")
    [handoff] = store.handoffs(cid)
    assert handoff["message_id"] == bot_id and handoff["status"] == "waiting"
    row = next(store.iter_conversations())
    assert row["status"] == "handoff"


def test_unknown_conversation_is_a_typed_error(store):
    with pytest.raises(UnknownConversationError, match="nope"):
        store.load_state("nope")
    with pytest.raises(UnknownConversationError):
        store.messages("nope")


def test_feedback_only_on_bot_messages_and_only_up_or_down(store):
    cid = store.create_conversation()
    bot_id = turn(store, cid)
    assert store.add_feedback(bot_id, "up", "quick answer") > 0
    with pytest.raises(StoreError, match="customer message"):
        store.add_feedback(bot_id - 1, "up")
    with pytest.raises(StoreError, match="'meh'"):
        store.add_feedback(bot_id, "meh")
    with pytest.raises(StoreError, match="unknown message id 999"):
        store.add_feedback(999, "down")


# -- migration 2: agent messages that edit a bot suggestion ------------------------------


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
        assert store.schema_version == 4
        message, carded = store.messages("c1")
        assert message["text"] == "hi" and message["edited_from"] is None
        # stored before cards were masked: masked by the migration, last four kept
        assert carded["text"] == "card **** **** **** 1111 please"
        store.record_agent_message("c1", "Hello!", edited_from="Hi there")
        assert [m["edited_from"] for m in store.messages("c1")] == [None, None, "Hi there"]


def test_agent_messages_take_the_next_turn_and_keep_the_suggestion_they_edited(store):
    cid = store.create_conversation()
    turn(store, cid)
    plain = store.record_agent_message(cid, "  I can look into that for you.  ")
    edited = store.record_agent_message(cid, "Your parcel left today.", edited_from="Your order has shipped.")
    messages = store.messages(cid)
    assert [(m["role"], m["turn"]) for m in messages] == [("customer", 0), ("bot", 1), ("agent", 2), ("agent", 3)]
    assert [m["id"] for m in messages[2:]] == [plain, edited]
    assert messages[2]["text"] == "I can look into that for you." and messages[2]["edited_from"] is None
    assert messages[3]["edited_from"] == "Your order has shipped."
    assert messages[1]["edited_from"] is None  # bot turns never carry one


def test_agent_messages_refuse_unknown_conversations_and_empty_text_writing_nothing(store):
    with pytest.raises(UnknownConversationError):
        store.record_agent_message("nope", "hello")
    cid = store.create_conversation()
    with pytest.raises(StoreError, match="non-empty text"):
        store.record_agent_message(cid, "   ")
    assert store.messages(cid) == []
    assert store.db["messages"].count == 0


def test_feedback_is_for_bot_replies_not_agent_messages(store):
    cid = store.create_conversation()
    agent_id = store.record_agent_message(cid, "hello")
    with pytest.raises(StoreError, match="agent message"):
        store.add_feedback(agent_id, "up")


def test_iter_messages_and_feedback_ratings_read_the_whole_store(store):
    a = store.create_conversation()
    bot_a = turn(store, a)
    b = store.create_conversation()
    bot_b = turn(store, b)
    store.record_agent_message(b, "An agent here.")
    store.add_feedback(bot_a, "up")
    store.add_feedback(bot_a, "down")  # a message has one rating: the latest
    store.add_feedback(bot_b, "up")
    rows = list(store.iter_messages())
    assert [(r["conversation_id"], r["turn"]) for r in rows] == [(a, 0), (a, 1), (b, 0), (b, 1), (b, 2)]
    assert rows[1]["sources"] == [{"id": "conv-1#t0", "score": 0.8123}]
    assert store.feedback_ratings() == {bot_a: ("down",), bot_b: ("up",)}
    assert store.db["feedback"].count == 2


# -- migration 3: the HTTP channel (client message ids, buttons, CSAT) -------------------


def test_a_client_message_id_finds_its_turn_and_a_second_turn_with_it_writes_nothing(store):
    cid = store.create_conversation(channel="web")
    bot_id = store.record_turn(
        cid,
        MessageRecord("customer", "hi", client_message_id="m-1"),
        MessageRecord("bot", "Hello!", action="smalltalk"),
        DialogueState(),
    )
    customer, bot = store.turn_for_client_message(cid, "m-1")
    assert (customer["text"], bot["id"], bot["text"]) == ("hi", bot_id, "Hello!")
    with pytest.raises(DuplicateClientMessageError, match="m-1"):
        store.record_turn(
            cid,
            MessageRecord("customer", "hi", client_message_id="m-1"),
            MessageRecord("bot", "Hello again!"),
            DialogueState(failures=3),
        )
    assert len(store.messages(cid)) == 2 and store.load_state(cid).failures == 0
    assert store.turn_for_client_message(cid, "m-2") is None
    # ids are unique per conversation only; messages without one never collide
    other = store.create_conversation()
    turn(store, other)
    turn(store, other)
    store.record_turn(
        other, MessageRecord("customer", "hi", client_message_id="m-1"), MessageRecord("bot", "Hello!"), DialogueState()
    )
    assert len(store.messages(other)) == 6


def test_buttons_offered_with_a_bot_message_are_kept(store):
    cid = store.create_conversation()
    store.record_turn(
        cid,
        MessageRecord("customer", "change track"),
        MessageRecord("bot", "Did you mean A or B?", action="clarify", buttons=("A", "B")),
        DialogueState(),
    )
    assert [m["buttons"] for m in store.messages(cid)] == [[], ["A", "B"]]


def test_csat_scores_are_whole_numbers_from_1_to_5_for_known_conversations(store):
    cid = store.create_conversation()
    assert store.add_csat(cid, 2) > 0
    assert store.add_csat(cid, 4, "fine") > 0  # one per conversation: the second replaces the first
    for bad in (0, 6, 4.5, True, "5"):
        with pytest.raises(StoreError, match="1 to 5"):
            store.add_csat(cid, bad)
    with pytest.raises(UnknownConversationError):
        store.add_csat("nope", 3)
    assert [(c["score"], c["comment"]) for c in store.csat(cid)] == [(4, "fine")]


def test_feedback_errors_are_typed_for_the_http_edge(store):
    cid = store.create_conversation()
    bot_id = turn(store, cid)
    with pytest.raises(UnknownMessageError):
        store.add_feedback(10_000, "up")
    with pytest.raises(NotABotMessageError):
        store.add_feedback(bot_id - 1, "up")
    store.add_feedback(bot_id, "down")
    store.add_feedback(bot_id, "up")
    assert store.latest_ratings(cid) == {bot_id: "up"}


def test_agent_messages_after_a_message_id_are_what_a_live_channel_has_not_shown(store):
    cid = store.create_conversation()
    turn(store, cid)
    first = store.record_agent_message(cid, "one")
    second = store.record_agent_message(cid, "two")
    assert [m["id"] for m in store.agent_messages_after(cid, 0)] == [first, second]
    assert [m["text"] for m in store.agent_messages_after(cid, first)] == ["two"]
    assert store.agent_messages_after(cid, second) == []


def test_ensure_conversation_creates_once(store):
    assert store.ensure_conversation("rest-1", channel="rest") is True
    assert store.ensure_conversation("rest-1", channel="rest") is False
    assert store.conversation("rest-1")["channel"] == "rest"


def test_two_connections_taking_turns_at_once_both_succeed(tmp_path):
    """Two inference workers (or replicas) write turns side by side; neither fails with
    "database is locked", and every turn is stored whole."""
    import threading

    path = tmp_path / "shared.db"
    ConversationStore(path).open().close()
    errors: list[BaseException] = []
    conversations: list[str] = []

    def writer() -> None:
        with ConversationStore(path).open() as own:
            cid = own.create_conversation()
            conversations.append(cid)
            try:
                for _ in range(40):
                    turn(own, cid)
            except BaseException as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ConversationStore(path).open() as store:
        assert [len(store.messages(c)) for c in conversations] == [80, 80, 80]


# -- migration 4: public access (tokens), one rating each, erasure --------------------------


def test_a_conversation_opens_only_with_its_token_and_only_while_recent(store):
    cid = store.create_conversation("web", token_hash="a" * 64)
    assert store.access_ok(cid, "a" * 64, read_hours=1)
    assert not store.access_ok(cid, "b" * 64, read_hours=1)
    assert not store.access_ok("nope", "a" * 64)
    untokened = store.create_conversation("rest")
    assert not store.access_ok(untokened, "")
    store.db.execute("update conversations set updated_at = '2020-01-01T00:00:00.000+00:00' where id = ?", [cid])
    assert not store.access_ok(cid, "a" * 64, read_hours=1) and store.access_ok(cid, "a" * 64)


def test_feedback_scoped_to_a_conversation_refuses_another_conversations_reply(store):
    mine, theirs = store.create_conversation(), store.create_conversation()
    turn(store, mine)
    their_reply = turn(store, theirs)
    with pytest.raises(UnknownMessageError):
        store.add_feedback(their_reply, "down", conversation_id=mine)
    assert store.add_feedback(their_reply, "down", conversation_id=theirs, author="agent") > 0
    assert store.db["feedback"].get(1)["author"] == "agent"


def test_erasing_a_conversation_removes_every_row_that_refers_to_it(store):
    gone, kept = store.create_conversation(), store.create_conversation()
    for cid in (gone, kept):
        bot_id = turn(store, cid)
        store.add_feedback(bot_id, "up")
        store.add_csat(cid, 5)
        store.record_turn(
            cid,
            MessageRecord("customer", "a person please"),
            MessageRecord("bot", "Connecting you.", action="handoff"),
            DialogueState(handed_off=True),
            handoff_reason="asked",
        )
    assert store.erase_conversation(gone) == {
        "feedback": 1,
        "csat": 1,
        "handoffs": 1,
        "messages": 4,
        "conversations": 1,
    }
    assert not store.conversation_exists(gone) and len(store.messages(kept)) == 4
    assert len(store.feedback_ratings()) == 1 and len(store.handoffs()) == 1
    with pytest.raises(UnknownConversationError):
        store.erase_conversation(gone)


def test_conversations_are_found_by_what_they_mention_and_by_idleness(store):
    a, b = store.create_conversation(), store.create_conversation()
    store.record_turn(
        a, MessageRecord("customer", "I'm Dana.Lee@Example.org"), MessageRecord("bot", "Thanks"), DialogueState()
    )
    store.record_turn(
        b,
        MessageRecord("customer", "hi"),
        MessageRecord("bot", "Hello"),
        DialogueState(slots={"email": "dana.lee@example.org"}),
    )
    assert store.conversations_mentioning("dana.lee@example.org") == sorted([a, b])
    assert store.conversations_mentioning("dana_lee%") == []  # LIKE wildcards are literal
    assert store.conversations_mentioning("  ") == []
    store.db.execute("update conversations set updated_at = '2020-01-01T00:00:00.000+00:00' where id = ?", [a])
    assert store.idle_conversations(30) == [a]


def test_history_pages_run_from_the_newest_back(store):
    cid = store.create_conversation()
    for _ in range(3):
        turn(store, cid)
    page, more = store.messages_page(cid, limit=4)
    assert [m["turn"] for m in page] == [2, 3, 4, 5] and more
    older, more = store.messages_page(cid, limit=4, before=page[0]["id"])
    assert [m["turn"] for m in older] == [0, 1] and not more


def test_the_store_file_is_readable_by_its_owner_only(tmp_path):
    import os
    import stat

    with ConversationStore(tmp_path / "s.db").open() as store:
        turn(store, store.create_conversation())
        for name in ("s.db", "s.db-wal"):
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_opening_the_store_again_keeps_the_locks_other_processes_rely_on(tmp_path):
    # closing any descriptor of a file drops every SQLite lock this process holds on it;
    # a second open that did so let another process delete the live WAL file under us
    import subprocess
    import sys

    path = tmp_path / "s.db"
    with ConversationStore(path).open() as server:
        cid = server.create_conversation()
        turn(server, cid)
        with ConversationStore(path).open():  # e.g. the store worker beside the inference workers
            pass
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sqlite3; sqlite3.connect({str(path)!r}).execute('select count(*) from messages').fetchall()",
            ],
            check=True,
        )
        turn(server, cid)
        with ConversationStore(path).open() as reader:
            assert len(reader.messages(cid)) == 4
