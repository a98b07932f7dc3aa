"""What agents do in the panel becomes training targets: typed replies, suggestions sent as
they were, edited suggestions; never discarded suggestions or 👎'd replies. A real SQLite
store written through the real bot.agents API (fast: no embedder, no evidence)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from bot.agents import AgentAccounts, ConversationHandling, SuggestionDraft, SuggestionLog
from bot.store import ConversationStore, DialogueState, MessageRecord
from finetune.pairs import HELDOUT_KINDS, build_pairs, is_heldout_conversation, write_pairs
from retrieval.index import VectorIndex
from retrieval.types import Unit

EMPTY_SUGGESTIONS = {"shown": 0, "sent": 0, "edited": 0, "discarded": 0}


def clock() -> datetime:
    return datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def index():
    unit = Unit("kb-shipping#c0", "kb", "Standard shipping takes 3-5 business days.", source_id="kb-shipping")
    return VectorIndex.build([unit], np.ones((1, 8), dtype=np.float32), embedder_id="test-vectors")


@pytest.fixture
def store(tmp_path):
    with ConversationStore(tmp_path / "store.db").open() as s:
        yield s


def customer_turn(store, cid, text):
    """A customer message while an agent holds the conversation (the bot stays silent)."""
    return store.record_customer_message(cid, MessageRecord("customer", text))


def panel_conversation(store, cid):
    """The bot hands over; an agent works through four customer messages: sends one
    suggestion as it was (discarding the other), edits one, types one reply, and has one
    reply 👎'd. Returns the agent message ids in that order."""
    agent = AgentAccounts(store, clock=clock).add("ana", "correct horse battery")
    handling, log = ConversationHandling(store, clock=clock), SuggestionLog(store, clock=clock)
    store.create_conversation(conversation_id=cid, channel="web")
    store.record_turn(
        cid,
        MessageRecord("customer", "where is my parcel? I want a person"),
        MessageRecord("bot", "Connecting you with a human.", action="handoff", composer="policy"),
        DialogueState(handed_off=True),
        handoff_reason="customer asked for a human",
    )
    first = next(m["id"] for m in store.messages(cid) if m["role"] == "customer")
    kept, dropped = log.log_shown(
        cid,
        first,
        agent,
        [
            SuggestionDraft("retrieved", "retrieval", "Your parcel left our warehouse today."),
            SuggestionDraft("generated", "gpt2", "Parcels never get lost."),
        ],
    )
    log.discard(dropped, agent)
    sent = handling.send(cid, agent, "Your parcel left our warehouse today.", suggestion_id=kept)

    second = customer_turn(store, cid, "can it come sooner?")
    [draft] = log.log_shown(cid, second, agent, [SuggestionDraft("generated", "gpt2", "No.")])
    edited = handling.send(cid, agent, "Yes: Express delivery takes 1-2 business days.", suggestion_id=draft)

    customer_turn(store, cid, "and where is my invoice?")
    typed = handling.send(cid, agent, "The invoice is attached to your shipping email.")

    customer_turn(store, cid, "which email?")
    disowned = handling.send(cid, agent, "The one from last year.")
    # a 👎 on an agent's reply (the store's own add_feedback rates bot replies only)
    store.db.sqlite.table("feedback").insert(
        {"message_id": disowned, "rating": "down", "author": "agent", "created_at": "2026-03-01T09:31:00.000+00:00"}
    )
    store.db.commit()
    return sent, edited, typed, disowned


def test_sent_edited_and_typed_replies_are_targets_and_discards_and_down_votes_are_not(store, index):
    sent, edited, typed, disowned = panel_conversation(store, "c-panel")
    turns = {m["id"]: m["turn"] for m in store.messages("c-panel")}

    result = build_pairs(store, index, None, min_pairs=1, evidence_k=0, valid_fraction=0)

    by_turn = {p["turn"]: p for p in result.pairs}
    assert {t: p["target_kind"] for t, p in by_turn.items()} == {
        turns[sent]: "suggested",
        turns[edited]: "edited",
        turns[typed]: "agent",
    }
    assert by_turn[turns[edited]]["target"] == "Yes: Express delivery takes 1-2 business days."  # the agent's text
    assert "Parcels never get lost." not in json.dumps(result.pairs)  # the discarded suggestion
    assert turns[disowned] not in by_turn and "The one from last year." not in json.dumps(result.pairs)  # 👎
    assert result.excluded == {
        "negative_feedback": 1,
        "failed_before_handoff": 1,  # the bot's handoff notice
        "policy": 0,
        "not_an_answer": 0,
        "untrusted_bot_reply": 0,
        "after_lookup": 0,
        "heldout_bot_reply": 0,
        "no_customer_turn": 0,
        "empty": 0,
        "duplicate": 0,
        "discarded_suggestion": 1,
    }
    assert result.suggestions == {"shown": 0, "sent": 1, "edited": 1, "discarded": 1}
    assert result.counts()["target_kind"] == {"agent": 1, "suggested": 1, "edited": 1, "bot": 0}
    # context: the customer messages stored while the agent held it, and the replies before them
    assert by_turn[turns[typed]]["context"][-1] == {"role": "customer", "text": "and where is my invoice?"}


def test_the_manifest_counts_kinds_exclusions_and_suggestion_outcomes(store, index, tmp_path):
    panel_conversation(store, "c-panel")
    manifest = write_pairs(build_pairs(store, index, None, min_pairs=1, evidence_k=0), tmp_path / "pairs")
    assert manifest["counts"]["target_kind"] == {"agent": 1, "suggested": 1, "edited": 1, "bot": 0}
    assert manifest["excluded"]["discarded_suggestion"] == 1 and manifest["excluded"]["negative_feedback"] == 1
    assert manifest["suggestions"] == {"shown": 0, "sent": 1, "edited": 1, "discarded": 1}
    assert "target_kind suggested" in " ".join(manifest["filters"]["targets"])
    assert json.loads((tmp_path / "pairs" / "manifest.json").read_text()) == manifest


def test_every_human_kind_is_held_out_in_a_held_out_conversation(store, index):
    ids = [f"c-{i}" for i in range(1000)]
    cid = next(c for c in ids if is_heldout_conversation(c, 0.5))
    trained = next(c for c in ids if not is_heldout_conversation(c, 0.5))
    panel_conversation(store, cid)
    store.create_conversation(conversation_id=trained)  # something left to train on
    customer_turn(store, trained, "hello?")
    store.record_agent_message(trained, "Hi! How can I help?")

    result = build_pairs(store, index, None, min_pairs=1, evidence_k=0, heldout_share=0.5)

    assert {"agent", "suggested", "edited"} == HELDOUT_KINDS
    assert sorted(p["target_kind"] for p in result.heldout) == ["agent", "edited", "suggested"]
    assert {p["conversation_id"] for p in result.heldout} == {cid}
    assert [p["conversation_id"] for p in result.pairs] == [trained]
    assert result.excluded["negative_feedback"] == 1  # a held-out 👎'd reply is not scored on either


def test_transcript_files_alone_report_no_suggestions(index):
    conversation = {
        "id": "t-1",
        "source": "old.jsonl",
        "turns": [{"role": "customer", "text": "hi"}, {"role": "agent", "text": "Hello! How can I help?"}],
    }
    result = build_pairs(None, index, None, min_pairs=1, evidence_k=0, extra_conversations=[conversation])
    assert [(p["id"], p["target_kind"], p["source"]) for p in result.pairs] == [("t-1#1", "agent", "old.jsonl")]
    assert result.suggestions == EMPTY_SUGGESTIONS and result.excluded["discarded_suggestion"] == 0


def test_the_store_counts_suggestion_outcomes(store):
    assert store.suggestion_outcomes() == {}
    panel_conversation(store, "c-panel")
    assert store.suggestion_outcomes() == {"discarded": 1, "edited": 1, "sent": 1}
