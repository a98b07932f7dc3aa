"""The store's channel inbox and outbox: dedupe by the platform's event id, claims that
one worker gets, and rows that go with their conversation when it is erased."""

from __future__ import annotations

from bot.store.channels import iso

ADDRESS = {"channel": "C1", "thread_ts": "1.0"}
NOW = 1_700_000_000.0


def test_a_first_message_makes_the_platform_conversation_and_remembers_its_address(store):
    assert store.record_inbound("slack", "e1", "c1", ADDRESS, "hello", NOW)
    assert store.conversation("c1")["channel"] == "slack"
    assert store.channel_address("c1") == ("slack", ADDRESS)
    [row] = store.inbound("slack")
    assert (row["status"], row["attempts"], row["received_at"], row["address"]) == ("pending", 0, iso(NOW), ADDRESS)


def test_the_same_event_twice_is_kept_once_and_another_platform_has_its_own_ids(store):
    assert store.record_inbound("slack", "e1", "c1", ADDRESS, "hello", NOW)
    assert not store.record_inbound("slack", "e1", "c1", ADDRESS, "hello", NOW + 5)
    assert store.record_inbound("telegram", "e1", "c2", {"chat_id": 5}, "hello", NOW)
    assert [r["platform"] for r in store.inbound()] == ["slack", "telegram"]


def test_a_claimed_row_is_not_claimed_again_until_its_lease_runs_out(store):
    store.record_inbound("slack", "e1", "c1", ADDRESS, "hello", NOW)
    [claimed] = store.claim_inbound(NOW, lease_s=60)
    assert claimed["attempts"] == 1
    assert store.claim_inbound(NOW + 59, lease_s=60) == []
    [again] = store.claim_inbound(NOW + 60, lease_s=60)  # the worker holding it died
    assert again["attempts"] == 2


def test_a_later_message_waits_while_an_earlier_one_of_its_conversation_does(store):
    store.record_inbound("slack", "e1", "c1", ADDRESS, "first", NOW)
    store.record_inbound("slack", "e2", "c1", ADDRESS, "second", NOW)
    store.record_inbound("slack", "e3", "c2", ADDRESS, "other", NOW)
    [first] = store.claim_inbound(NOW, lease_s=60, limit=1)
    [other] = store.claim_inbound(NOW, lease_s=60)  # "second" waits behind the claimed "first"
    assert (first["text"], other["text"]) == ("first", "other")
    store.finish_inbound(first["id"], NOW)
    [second] = store.claim_inbound(NOW, lease_s=60)
    assert second["text"] == "second"


def test_erasing_a_conversation_erases_its_channel_rows(store):
    store.record_inbound("slack", "e1", "c1", ADDRESS, "my email is sam@example.com", NOW)
    store.queue_outgoing("c1", "slack", ADDRESS, 1, "reply", {"text": "hi", "buttons": []}, NOW)
    store.erase_conversation("c1")
    assert store.inbound() == [] and store.outgoing() == [] and store.channel_address("c1") is None


def test_forwarding_looks_only_at_platform_conversations_and_moves_past_the_rest(store):
    store.create_conversation("web", "w1")
    store.record_agent_message("w1", "an agent on the widget")
    store.record_inbound("slack", "e1", "c1", ADDRESS, "hello", NOW)
    agent_id = store.record_agent_message("c1", "an agent on slack")
    rows, looked_at = store.unforwarded_messages(0)
    assert [r["id"] for r in rows] == [agent_id] and rows[0]["platform"] == "slack"
    assert looked_at == agent_id
    store.queue_outgoing("c1", "slack", ADDRESS, agent_id, "agent", {"text": "x", "buttons": []}, NOW)
    assert store.unforwarded_messages(0) == ([], agent_id)  # queued: never again
    store.record_agent_message("w1", "more on the widget")
    rows, looked_at = store.unforwarded_messages(agent_id)
    assert rows == [] and looked_at == agent_id + 1


def test_a_done_message_leaves_no_copy_in_the_inbox_and_a_failed_one_keeps_no_card_number(store):
    store.record_inbound("slack", "e1", "c1", ADDRESS, "hello", NOW)
    store.record_inbound("slack", "e2", "c2", ADDRESS, "my card is 4111 1111 1111 1111", NOW)
    done, failed = store.inbound()
    store.finish_inbound(done["id"], NOW + 1)
    store.finish_inbound(failed["id"], NOW + 1, "InvalidMessageError: too long")
    done, failed = store.inbound()
    assert (done["status"], done["text"], done["processed_at"]) == ("done", "", iso(NOW + 1))
    assert failed["status"] == "failed" and "4111 1111" not in failed["text"] and failed["text"].endswith("1111")


def test_a_postponed_row_is_given_back_untried_until_its_new_time(store):
    message = {"text": "hi", "buttons": []}
    store.record_inbound("slack", "e1", "c1", ADDRESS, "hello", NOW)  # the platform conversation
    store.queue_outgoing("c1", "slack", ADDRESS, 1, "reply", message, NOW)
    store.queue_outgoing("c1", "slack", ADDRESS, 2, "reply", message, NOW)
    first, second = store.claim_outgoing(NOW, lease_s=60)
    assert (first["attempts"], second["attempts"]) == (1, 1)
    store.postpone_outgoing(second["id"], NOW + 30)  # the first failed: the second waits with it
    [row] = [r for r in store.outgoing() if r["id"] == second["id"]]
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("pending", 0, iso(NOW + 30))
