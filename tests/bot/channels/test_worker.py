"""The channel worker against a real store, a real dialogue manager (fake models) and the
fake platform on 127.0.0.1: messages become turns, replies reach the platform once,
failed sends are retried with backoff (and Retry-After), and a restart resumes."""

from __future__ import annotations

from bot.channels.base import ApiCall, Outgoing
from bot.channels.slack import SlackChannel
from bot.store import MessageRecord
from tests.bot.channels.conftest import Harness, slack_config
from tests.bot.channels.fake_platform import OK
from tests.bot.channels.slack_payloads import BOT_TOKEN, CHANNEL, SIGNING_SECRET

ADDRESS = {"channel": CHANNEL, "thread_ts": "111.0001"}
GREETING = "Hi! How can I help you today?"


def inbound(h: Harness, text: str = "hello!", event_id: str = "T:C:111.0001", cid: str = "c" * 32) -> bool:
    return h.store.record_inbound("slack", event_id, cid, ADDRESS, text, h.clock())


def posted(h: Harness) -> list[dict]:
    return [c.json for c in h.fake.calls]


def test_a_message_becomes_a_turn_whose_reply_is_posted_in_the_thread(harness):
    inbound(harness)
    harness.step()
    assert posted(harness) == [{"channel": CHANNEL, "thread_ts": "111.0001", "text": GREETING}]
    call = harness.fake.calls[0]
    assert call.path == "/chat.postMessage" and call.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    [row] = harness.store.inbound()
    assert row["status"] == "done" and row["attempts"] == 1
    [out] = harness.store.outgoing()
    assert out["status"] == "sent" and out["kind"] == "reply" and out["attempts"] == 1
    # the conversation is a slack one, its turn carries the platform's event id
    assert harness.store.conversation("c" * 32)["channel"] == "slack"
    customer = harness.store.messages("c" * 32)[0]
    assert customer["client_message_id"] == "T:C:111.0001"


def test_a_delivery_seen_before_is_not_kept_or_answered_again(harness):
    assert inbound(harness) is True
    assert inbound(harness) is False  # the platform's retry
    harness.step(2)
    assert len(harness.fake.calls) == 1 and harness.turns == ["hello!"]


def test_a_500_then_200_delivers_exactly_one_message_after_the_backoff(harness):
    harness.fake.script("/chat.postMessage", (500, {}, b"upstream down"))
    inbound(harness)
    harness.step()
    [out] = harness.store.outgoing()
    assert out["status"] == "pending" and out["attempts"] == 1 and "HTTP 500" in out["last_error"]
    harness.step()  # not due yet: the first retry waits send_backoff_s (2 s)
    assert len(harness.fake.calls) == 1
    harness.clock.advance(2)
    harness.step(3)
    assert posted(harness) == [posted(harness)[0]] * 2  # the failed call and the one that landed
    assert harness.store.outgoing()[0]["status"] == "sent" and harness.turns == ["hello!"]


def test_a_429_waits_as_long_as_retry_after_says(harness):
    harness.fake.script("/chat.postMessage", (429, {"Retry-After": "30"}, b""))
    inbound(harness)
    harness.step()
    harness.clock.advance(29)
    harness.step()
    assert len(harness.fake.calls) == 1
    harness.clock.advance(1)
    harness.step()
    assert len(harness.fake.calls) == 2 and harness.store.outgoing()[0]["status"] == "sent"


def test_slacks_ok_false_for_a_missing_channel_fails_at_once_and_is_never_resent(harness):
    harness.fake.script("/chat.postMessage", (200, {}, b'{"ok": false, "error": "channel_not_found"}'))
    inbound(harness)
    harness.step()
    harness.clock.advance(3600)
    harness.step()
    [out] = harness.store.outgoing()
    assert out["status"] == "failed" and out["last_error"] == "Slack: channel_not_found"
    assert len(harness.fake.calls) == 1


def test_a_platform_down_for_good_is_given_up_after_the_last_attempt(harness):
    harness.fake.default = (503, {}, b"")
    inbound(harness)
    for _ in range(5):
        harness.step()
        harness.clock.advance(600)
    [out] = harness.store.outgoing()
    assert out["status"] == "failed" and out["attempts"] == 3 and len(harness.fake.calls) == 3


def test_a_platform_that_refuses_connections_is_retried(store, clock, fake):
    closed = Harness(store, fake, clock, slack_config(fake, slack_api_base="http://127.0.0.1:9"))
    inbound(closed)
    closed.step()
    [out] = store.outgoing()
    assert out["status"] == "pending" and "ConnectError" in out["last_error"]
    reachable = Harness(store, fake, clock, slack_config(fake))  # the platform is back
    clock.advance(2)
    reachable.step()
    assert store.outgoing()[0]["status"] == "sent" and len(fake.calls) == 1


def test_after_a_restart_pending_messages_are_answered_and_sent_ones_never_again(harness):
    inbound(harness, "hello!", "T:C:1")
    harness.step()  # answered and sent
    harness.fake.script("/chat.postMessage", (500, {}, b""))
    inbound(harness, "hi again", "T:C:2")
    harness.step()  # answered, the send failed: pending
    harness.clock.advance(2)
    harness.step()  # a new worker (a restarted server) on the same store
    assert [c.json["text"] for c in harness.fake.calls] == [GREETING, GREETING, GREETING]
    assert [r["status"] for r in harness.store.outgoing()] == ["sent", "sent"]
    harness.clock.advance(3600)
    harness.step(2)
    assert len(harness.fake.calls) == 3


def test_a_turn_taken_before_a_crash_is_not_taken_twice(harness):
    inbound(harness)
    # the turn was written, then the process stopped before the inbox row was finished
    harness.manager.handle("hello!", "c" * 32, "slack", "T:C:111.0001")
    harness.store.db.execute("update channel_inbox set status = 'pending'")
    harness.fake.calls.clear()
    harness.step()
    assert [m["role"] for m in harness.store.messages("c" * 32)] == ["customer", "bot"]


def test_a_failing_turn_is_tried_again_later_and_the_message_kept(harness):
    harness.fail_turns = 1
    inbound(harness)
    harness.step()
    [row] = harness.store.inbound()
    assert row["status"] == "pending" and "inference worker is gone" in row["error"]
    assert harness.fake.calls == []
    harness.clock.advance(2)
    harness.step()
    assert harness.store.inbound()[0]["status"] == "done" and len(harness.fake.calls) == 1


def test_a_message_the_dialogue_refuses_is_marked_failed_without_a_retry(harness):
    inbound(harness, "   ")
    harness.step()
    [row] = harness.store.inbound()
    assert row["status"] == "failed" and harness.fake.calls == []


def test_the_handoff_reply_is_queued_as_a_handoff(harness):
    inbound(harness, "I want to speak to a human")
    harness.step()
    [out] = harness.store.outgoing()
    assert out["kind"] == "handoff" and out["status"] == "sent"


def test_while_an_agent_holds_the_conversation_the_bot_sends_nothing(harness):
    inbound(harness, "hello!", "T:C:1")
    harness.step()
    harness.store.db.execute("update conversations set handling = 'open'")
    inbound(harness, "hi again", "T:C:2")
    harness.step()
    assert len(harness.fake.calls) == 1 and [r["status"] for r in harness.store.inbound()] == ["done", "done"]


def test_agents_messages_and_notices_are_forwarded_to_the_platform_once(harness):
    cid = "c" * 32
    inbound(harness)
    harness.step()
    harness.store.record_agent_message(cid, "I'm Alex, I'll look into it.")
    with harness.store._write_transaction():
        harness.store._insert_message(
            cid,
            harness.store._next_turn(cid),
            MessageRecord("system", "You are chatting with our assistant again.", action="handed_back"),
        )
    harness.step(2)
    harness.step()  # a restarted worker looks again from the start: nothing new
    assert [c.json["text"] for c in harness.fake.calls] == [
        GREETING,
        "I'm Alex, I'll look into it.",
        "You are chatting with our assistant again.",
    ]
    assert [r["kind"] for r in harness.store.outgoing()] == ["reply", "agent", "notice"]
    assert all(c.json["thread_ts"] == "111.0001" for c in harness.fake.calls)


def test_a_conversations_messages_keep_their_order_when_one_must_wait(harness):
    cid = "c" * 32
    inbound(harness)
    harness.fake.script("/chat.postMessage", (500, {}, b""))
    harness.step()  # the reply failed
    harness.store.record_agent_message(cid, "An agent here.")
    harness.step()  # the agent's message is queued, but waits behind the reply
    assert len(harness.fake.calls) == 1
    harness.clock.advance(2)
    harness.step()
    assert [c.json["text"] for c in harness.fake.calls] == [GREETING, GREETING, "An agent here."]


def test_a_message_is_queued_once_for_its_platform_and_no_token_is_stored(harness):
    inbound(harness)
    message = {"text": "x", "buttons": []}
    assert harness.store.queue_outgoing("c" * 32, "slack", ADDRESS, 7, "reply", message, harness.clock())
    assert not harness.store.queue_outgoing("c" * 32, "slack", ADDRESS, 7, "reply", message, harness.clock())
    harness.step()
    assert len(harness.store.outgoing()) == 2  # the greeting's reply, and message 7 once
    db = harness.store.db  # every row of every table, on either back end
    dump = "\n".join(str(row) for table in db.table_names() for row in db.query(f"select * from {table}"))
    assert BOT_TOKEN not in dump and "Bearer" not in dump


class TwoCalls(SlackChannel):
    """A platform whose message takes two API calls (text, then the quick replies)."""

    def render(self, address, outgoing):
        [text] = super().render(address, Outgoing(outgoing.text))
        return [text, ApiCall("POST", "/chat.postMessage", {**text.json, "text": "buttons"}, text.headers)]


def test_a_call_that_was_delivered_is_not_made_again_when_a_later_one_is_retried(store, clock, fake):
    h = Harness(store, fake, clock, slack_config(fake))
    h.channels = {"slack": TwoCalls(SIGNING_SECRET, BOT_TOKEN)}
    fake.script("/chat.postMessage", OK, (502, {}, b""))
    inbound(h)
    h.step()
    assert store.outgoing()[0]["calls_done"] == 1
    clock.advance(2)
    h.step()
    assert [c.json["text"] for c in fake.calls] == [GREETING, "buttons", "buttons"]
    assert store.outgoing()[0]["status"] == "sent"
