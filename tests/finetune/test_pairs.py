"""Fine-tuning pairs from a real store, a real MiniLM and a real FAISS index."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from bot.errors import CsbotError
from bot.store import ConversationStore, DialogueState, MessageRecord
from finetune.pairs import (
    TooFewHeldOutPairsError,
    TooFewPairsError,
    build_pairs,
    erase_from_pairs,
    find_pairs_dirs,
    is_heldout_conversation,
    write_pairs,
)
from retrieval.types import Unit
from tests.helpers import REPO, last_json, run_csbot

ANSWER = {"action": "answer", "composer": "retrieval", "intent": "shipping_time", "confidence": 0.9}


@pytest.fixture(scope="module")
def embedder():
    from retrieval.embedder import SentenceEmbedder

    return SentenceEmbedder().load()


@pytest.fixture(scope="module")
def index(embedder):
    from retrieval.index import VectorIndex

    units = [
        # the store conversation c-shipping's own unit: its answer, which a pair must never see
        Unit(
            "c-shipping#t0",
            "transcript",
            "how long does shipping take to Ohio?",
            reply="Standard shipping takes 3-5 business days.",
            source_id="c-shipping",
            turn=0,
        ),
        Unit(
            "c-other#t0",
            "transcript",
            "how long does delivery take?",
            reply="Thanks, Maria! Standard delivery takes 3-5 business days.",
            source_id="c-other",
            turn=0,
        ),
        Unit(
            "kb-shipping#c0",
            "kb",
            "Shipping times: Standard 3-5 business days, Express 1-2. Questions about freight: ops.lead@example.org",
            source_id="kb-shipping",
            title="Shipping",
        ),
        Unit(
            "c-refund#t0",
            "transcript",
            "can I get my money back?",
            reply="Refunds reach your card within 5 business days.",
            source_id="c-refund",
            turn=0,
        ),
    ]
    vectors = embedder.encode([u.text for u in units])
    return VectorIndex.build(units, vectors, embedder_id=embedder.model_id)


def turn(store, cid, customer, reply, handoff=None, **bot):
    return store.record_turn(
        cid,
        MessageRecord("customer", customer),
        MessageRecord("bot", reply, **bot),
        DialogueState(handed_off=handoff is not None),
        handoff_reason=handoff,
    )


@pytest.fixture
def store(tmp_path):
    with ConversationStore(tmp_path / "store.db").open() as s:
        # answered by the bot (up-voted), then by an agent who greets the customer by name
        c = s.create_conversation(conversation_id="c-shipping")
        up = turn(
            s,
            c,
            "how long does shipping take to Ohio? I'm Jo Doe.",
            "Standard shipping takes 3-5 business days.",
            **ANSWER,
        )
        s.add_feedback(up, "up")
        turn(
            s,
            c,
            "ok and where is #40318275? mail me at jo.doe@example.com",
            "One moment please.",
            action="clarify",
            composer="retrieval",
            intent="order_status",
        )
        s.record_agent_message(c, "Thanks, Jo! Order #40318275 left our warehouse today.")
        # a down-voted answer
        c = s.create_conversation(conversation_id="c-down")
        down = turn(s, c, "can I get my money back?", "Refunds take 90 days.", **ANSWER)
        s.add_feedback(down, "down")
        # a conversation that failed and was handed over
        c = s.create_conversation(conversation_id="c-handoff")
        turn(s, c, "how long does delivery take?", "Delivery takes 3-5 business days.", **ANSWER)
        turn(s, c, "hello?", "Hi! How can I help?", action="smalltalk", composer="policy", intent="greeting")
        turn(s, c, "my kettle sparks", "Sorry, I can't help with that.", action="fallback", composer="policy")
        turn(
            s,
            c,
            "a person please",
            "Connecting you with a human.",
            handoff="customer asked for a human",
            action="handoff",
            composer="policy",
            intent="human",
        )
        s.record_agent_message(c, "I'm sorry about the kettle - please stop using it; a replacement is on its way.")
        # an agent edited the bot's suggestion before sending it
        c = s.create_conversation(conversation_id="c-edit")
        turn(s, c, "where is my order", "Could you tell me your order number?", action="clarify", composer="policy")
        s.record_agent_message(
            c, "It left today with ParcelCo; tracking follows by email.", edited_from="Your order has shipped."
        )
        # two identical conversations: the second pair is a duplicate
        for cid in ("c-dup1", "c-dup2"):
            c = s.create_conversation(conversation_id=cid)
            turn(
                s,
                c,
                "do you ship abroad?",
                "Connecting you with a human.",
                handoff="customer asked for a human",
                action="handoff",
                composer="policy",
            )
            s.record_agent_message(c, "Yes, we ship to 40 countries.")
        yield s


def pairs_by_id(result):
    return {p["id"]: p for p in result.pairs}


pytestmark = pytest.mark.slow


def test_human_replies_are_targets_and_bot_replies_only_when_a_human_vouches(store, index, embedder):
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=2)
    pairs = pairs_by_id(result)
    # the customers' up-vote on c-shipping#1 is not enough: anonymous visitors choose what they rate
    assert set(pairs) == {"c-shipping#4", "c-handoff#8", "c-edit#2", "c-dup1#2"}
    assert {p["target_kind"] for p in result.pairs} == {"agent", "edited"}
    assert result.excluded["untrusted_bot_reply"] == 3  # c-shipping#1, c-handoff#1, c-down#1
    assert all(p["source"] == "store" for p in result.pairs)
    # context: the turns before the target, bot turns as "agent", oldest first
    assert [c["role"] for c in pairs["c-shipping#4"]["context"]] == ["customer", "agent", "customer", "agent"]
    assert pairs["c-handoff#8"]["context"][-1] == {"role": "agent", "text": "Connecting you with a human."}

    # a human agent's up-vote makes that bot reply a target
    bot_reply = next(m["id"] for m in store.messages("c-shipping") if m["turn"] == 1)
    store.add_feedback(bot_reply, "up", author="agent")
    vouched = pairs_by_id(build_pairs(store, index, embedder, min_pairs=1, evidence_k=2))
    assert vouched["c-shipping#1"]["target_kind"] == "bot"
    assert vouched["c-shipping#1"]["target"] == "Standard shipping takes 3-5 business days."
    assert "c-handoff#1" not in vouched


def test_with_include_bot_replies_one_customer_down_vote_does_not_remove_a_reply(store, index, embedder):
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=2, include_bot_replies=True)
    pairs = pairs_by_id(result)
    assert pairs["c-shipping#1"]["target_kind"] == "bot"
    assert pairs["c-handoff#1"]["target_kind"] == "bot"  # the answer before things went wrong
    assert pairs["c-down#1"]["target_kind"] == "bot"  # one anonymous 👎 is not a verdict
    assert result.excluded["negative_feedback"] == 0 and result.excluded["untrusted_bot_reply"] == 0


def test_failed_and_policy_replies_are_excluded_and_counted(store, index, embedder):
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=2, include_bot_replies=True)
    # c-handoff: small talk after the last answer, the fallback and the handoff; c-dup1/2: their handoffs
    assert result.excluded["failed_before_handoff"] == 5
    assert result.excluded["policy"] == 1  # c-edit's fixed slot question
    assert result.excluded["not_an_answer"] == 1  # c-shipping's composer clarify
    assert result.excluded["duplicate"] == 1  # c-dup2's copy of c-dup1


def answered(store, cid, reply, source, customer="do you ship to Canada?"):
    """A conversation whose bot answer replays `source`; returns the bot message id."""
    store.create_conversation(conversation_id=cid)
    return turn(store, cid, customer, reply, sources=((source, 0.8),), **ANSWER)


def test_down_votes_exclude_a_reply_pattern_only_from_enough_conversations_or_an_agent(store, index, embedder):
    def build(n=3):
        return build_pairs(
            store, index, embedder, min_pairs=1, evidence_k=0, include_bot_replies=True, down_vote_conversations=n
        )

    bad = "We ship everywhere for free, always."
    asked = [
        "do you ship to Canada?",
        "can you deliver to canada",
        "shipping to Canada possible?",
        "what about Canadian orders",
    ]
    votes = [answered(store, f"c-bad{i}", bad, "c-old#t3", customer=asked[i]) for i in range(3)]
    answered(store, "c-bad-unrated", bad, "c-old#t3", customer=asked[3])
    for message_id in votes[:2]:
        store.add_feedback(message_id, "down")
    # two conversations' 👎 are below the threshold of three: the pattern stays
    assert {f"c-bad{i}#1" for i in range(3)} | {"c-bad-unrated#1"} <= set(pairs_by_id(build()))
    assert build().excluded["negative_feedback"] == 0
    # a second vote in one of the same conversations still counts that conversation once
    again = turn(store, "c-bad0", "and to Mexico?", bad, sources=(("c-old#t3", 0.8),), **ANSWER)
    store.add_feedback(again, "down")
    assert build().excluded["negative_feedback"] == 0
    # the third conversation reaches it: every reply of that pattern goes, rated or not
    store.add_feedback(votes[2], "down")
    result = build()
    assert not {p for p in pairs_by_id(result) if p.startswith("c-bad")}
    assert result.excluded["negative_feedback"] == 5
    assert "c-shipping#1" in pairs_by_id(result)  # other sources are untouched
    # the threshold is a setting
    assert build(n=4).excluded["negative_feedback"] == 0

    # an agent's 👎 excludes that one reply at once; an agent's 👍 keeps a reply of a bad pattern
    good = answered(store, "c-agent-down", "Refunds take 5 business days.", "c-refund#t0")
    store.add_feedback(good, "down", author="agent")
    store.add_feedback(votes[0], "up", author="agent")
    pairs = pairs_by_id(build())
    assert "c-agent-down#1" not in pairs and "c-bad0#1" in pairs and "c-bad1#1" not in pairs


def test_held_out_pairs_come_from_the_curated_file_and_agent_answered_conversations_only(store, index, embedder):
    curated = [
        {
            "id": "heldout-0001",
            "source": "heldout.jsonl",
            "turns": [
                {"role": "customer", "text": "how long does delivery take?"},
                {"role": "agent", "text": "Standard delivery takes 3-5 business days."},
            ],
        }
    ]
    # store conversations the fixed hash holds out at a share of 0.5: one a human agent answered,
    # one only the bot answered (an anonymous visitor's: never held out)
    ids = (f"c-{i}" for i in range(1000))
    agent_id, anonymous_id = [c for c in ids if is_heldout_conversation(c, 0.5)][:2]
    store.create_conversation(conversation_id=agent_id)
    turn(
        store,
        agent_id,
        "is my parcel insured?",
        "Connecting you with a human.",
        handoff="customer asked",
        action="handoff",
        composer="policy",
    )
    store.record_agent_message(agent_id, "Yes, every parcel is insured up to its value.")
    answered(store, anonymous_id, "We ship to Canada in 5-8 business days.", "kb-shipping#c0")

    result = build_pairs(
        store,
        index,
        embedder,
        min_pairs=1,
        evidence_k=2,
        include_bot_replies=True,
        heldout_conversations=curated,
        heldout_share=0.5,
    )
    held = {p["id"]: p for p in result.heldout}
    agent_answered = {"c-shipping", "c-handoff", "c-edit", "c-dup1", "c-dup2", agent_id}
    held_in_store = {c for c in agent_answered if is_heldout_conversation(c, 0.5)}
    assert {p["conversation_id"] for p in result.heldout} == held_in_store | {"heldout-0001"}
    assert held["heldout-0001#1"]["source"] == "heldout.jsonl" and held[f"{agent_id}#2"]["target_kind"] == "agent"
    assert {p["target_kind"] for p in result.heldout} <= {"agent", "edited"}  # human replies only
    assert all(p["evidence"] for p in result.heldout)
    trained = {p["conversation_id"] for p in result.pairs}
    assert anonymous_id in trained and "heldout-0001" not in trained and not trained & held_in_store
    assert result.counts()["heldout"] == len(held) and result.counts()["conversations"]["heldout"] == len(held)
    # the rule is fixed: the split's seed does not move a conversation in or out
    again = build_pairs(
        store,
        index,
        embedder,
        min_pairs=1,
        evidence_k=2,
        include_bot_replies=True,
        heldout_conversations=curated,
        heldout_share=0.5,
        seed=7,
    )
    assert {p["id"] for p in again.heldout} == set(held)
    expected = f"need at least 99 held-out pairs to compare models on, have {len(held)}; pass --heldout"
    with pytest.raises(TooFewHeldOutPairsError, match=expected):
        build_pairs(
            store, index, embedder, min_pairs=1, heldout_conversations=curated, heldout_share=0.5, min_heldout=99
        )


def test_a_training_copy_of_a_held_out_pair_is_the_one_dropped(store, index, embedder):
    conversation = {
        "turns": [
            {"role": "customer", "text": "do you ship abroad?"},
            {"role": "agent", "text": "Yes, we ship to 40 countries."},
        ]
    }
    result = build_pairs(
        store,
        index,
        embedder,
        min_pairs=1,
        evidence_k=0,
        extra_conversations=[{**conversation, "id": "t-1", "source": "old.jsonl"}],
        heldout_conversations=[{**conversation, "id": "h-1", "source": "heldout.jsonl"}],
    )
    assert [p["id"] for p in result.heldout] == ["h-1#1"]
    # c-dup1 and c-dup2 say the same (after their handoff notice, so another context) and stay one pair
    assert "t-1#1" not in pairs_by_id(result) and result.excluded["duplicate"] == 2
    with pytest.raises(CsbotError, match=r"in both old\.jsonl and heldout\.jsonl"):
        build_pairs(
            store,
            index,
            embedder,
            min_pairs=1,
            extra_conversations=[{**conversation, "id": "h-1", "source": "old.jsonl"}],
            heldout_conversations=[{**conversation, "id": "h-1", "source": "heldout.jsonl"}],
        )


def test_an_edited_suggestion_trains_on_the_agents_edited_text(store, index, embedder):
    pair = pairs_by_id(build_pairs(store, index, embedder, min_pairs=1, evidence_k=2))["c-edit#2"]
    assert pair["target_kind"] == "edited"
    assert pair["target"] == "It left today with ParcelCo; tracking follows by email."


def test_no_pair_takes_evidence_from_its_own_conversation(store, index, embedder):
    from retrieval.entities import mask_entities

    # without the rule, c-shipping's own unit is the best evidence for its first pair
    query = embedder.encode([mask_entities("how long does shipping take to Ohio? I'm {{Name}}.")[0]])
    assert index.search(query, k=1)[0].unit.source_id == "c-shipping"
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=3, include_bot_replies=True)
    for pair in result.pairs:
        assert len(pair["evidence"]) == 3
        assert all(index.get(e["id"]).source_id != pair["conversation_id"] for e in pair["evidence"])
        assert [e["score"] for e in pair["evidence"]] == sorted((e["score"] for e in pair["evidence"]), reverse=True)
    assert "c-shipping#t0" not in {e["id"] for e in pairs_by_id(result)["c-shipping#1"]["evidence"]}


def test_another_conversations_copy_of_the_answer_stays_evidence_when_the_own_copy_is_left_out(store, index, embedder):
    from retrieval.entities import mask_entities
    from retrieval.index import VectorIndex

    # another conversation gave the same answer to a like question: the index folds the two
    # copies into one hit, represented by c-shipping's own (it scores higher for its question)
    twin = Unit(
        "c-twin#t0",
        "transcript",
        "how long does shipping take to Iowa?",
        reply="Standard shipping takes 3-5 business days.",
        source_id="c-twin",
        turn=0,
    )
    units = [*index.units, twin]
    with_twin = VectorIndex.build(units, embedder.encode([u.text for u in units]), embedder_id=embedder.model_id)
    query = embedder.encode([mask_entities("how long does shipping take to Ohio? I'm {{Name}}.")[0]])
    top = with_twin.search(query, k=3)[0]
    assert top.unit.id == "c-shipping#t0" and top.duplicates == ("c-twin#t0",)

    result = build_pairs(store, with_twin, embedder, min_pairs=1, evidence_k=3, include_bot_replies=True)
    evidence = pairs_by_id(result)["c-shipping#1"]["evidence"]
    # what retrieval finds for a new conversation asking the same: the other conversation's copy
    assert evidence[0]["id"] == "c-twin#t0"
    assert evidence[0]["text"] == "Standard shipping takes 3-5 business days."
    assert "c-shipping#t0" not in {e["id"] for e in evidence}


def test_a_notice_in_the_store_is_not_a_lookup(store, index, embedder):
    # the store's system turns tell the customer what happened ("handed back", "resolved",
    # as bot.agents.handling writes them); a reply after one states no record
    c = store.create_conversation(conversation_id="c-notice")
    turn(store, c, "do you ship to Canada?", "Connecting you with a human.", handoff="asked", action="handoff")
    store._insert_message(
        c,
        store._next_turn(c),
        MessageRecord("system", "You are chatting with our assistant again.", action="handed_back"),
    )
    store.record_agent_message(c, "Yes, we ship to Canada in 5-8 business days.")
    result = build_pairs(store, index, embedder, min_pairs=1)
    assert result.excluded["after_lookup"] == 0
    assert any(p["target"] == "Yes, we ship to Canada in 5-8 business days." for p in result.pairs)


def test_a_reply_written_from_an_order_record_is_never_evidence(store, index, embedder):
    from retrieval.index import VectorIndex

    # the live composers skip such a unit (bot.composers): the pairs they are trained and
    # judged on must not show it either, or the round compares composers unlike live ones
    record = Unit(
        "c-record#t2",
        "transcript",
        "how long does shipping take to Ohio?",
        reply="Your order {{Order Number}} shipped yesterday and arrives on Friday.",
        source_id="c-record",
        turn=2,
        extra={"after_lookup": True},
    )
    units = [*index.units, record]
    with_record = VectorIndex.build(units, embedder.encode([u.text for u in units]), embedder_id=embedder.model_id)
    result = build_pairs(store, with_record, embedder, min_pairs=1, evidence_k=4, include_bot_replies=True)
    shipping = pairs_by_id(result)["c-shipping#1"]
    assert "c-record#t2" in {
        h.unit.id for h in with_record.search(embedder.encode([shipping["context"][-1]["text"]]), k=4)
    }
    assert all(e["id"] != "c-record#t2" for p in result.pairs for e in p["evidence"])
    # the other 3 of the 4 asked for (the pair's own conversation was never searched)
    assert {e["id"] for e in shipping["evidence"]} == {"c-other#t0", "kb-shipping#c0", "c-refund#t0"}


def test_pii_is_scrubbed_in_context_evidence_and_target_with_counts_in_the_manifest(store, index, embedder, tmp_path):
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=3)
    pair = pairs_by_id(result)["c-shipping#4"]
    assert pair["target"] == "Thanks, {{Name}}! Order {{Order Number}} left our warehouse today."
    assert pair["context"][0]["text"] == "how long does shipping take to Ohio? I'm {{Name}}."
    assert pair["context"][2]["text"] == "ok and where is {{Order Number}}? mail me at {{Email}}"
    evidence = " ".join(e["text"] for e in pair["evidence"])
    assert "{{Name}}" in evidence and "{{Email}}" in evidence
    written = json.dumps(result.pairs)
    for secret in ("Jo Doe", "40318275", "jo.doe@example.com", "Maria", "ops.lead@example.org", "Jo!"):
        assert secret not in written
    manifest = write_pairs(result, tmp_path / "out")
    pii = manifest["pii_scrubbed"]
    assert pii["target"] == {"email": 0, "phone": 0, "card_number": 0, "order_id": 1, "name": 1}
    assert pii["context"]["name"] == 1 and pii["context"]["order_id"] == 1 and pii["context"]["email"] == 1
    assert pii["evidence"]["name"] == 1 and pii["evidence"]["email"] == 1
    assert pii["total"]["name"] == 3


def test_split_is_by_conversation_and_deterministic(store, index, embedder, tmp_path):
    result = build_pairs(
        store, index, embedder, min_pairs=1, evidence_k=1, valid_fraction=0.5, seed=3, include_bot_replies=True
    )
    manifest = write_pairs(result, tmp_path / "out")
    read = {
        name: [json.loads(line) for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]
        for name in ("train", "valid")
    }
    train_ids = {p["conversation_id"] for p in read["train"]}
    valid_ids = {p["conversation_id"] for p in read["valid"]}
    assert train_ids and valid_ids and not train_ids & valid_ids
    assert manifest["counts"]["train"] == len(read["train"]) and manifest["counts"]["valid"] == len(read["valid"])
    again = build_pairs(
        store, index, embedder, min_pairs=1, evidence_k=1, valid_fraction=0.5, seed=3, include_bot_replies=True
    )
    assert again.train == result.train and again.valid == result.valid


HELD_OUT = [
    {
        "id": "heldout-0001",
        "source": "heldout.jsonl",
        "turns": [
            {"role": "customer", "text": "how long does delivery take?"},
            {"role": "agent", "text": "Standard delivery takes 3-5 business days."},
        ],
    }
]


def test_the_written_set_follows_the_schema_and_its_manifest(store, index, embedder, tmp_path):
    result = build_pairs(
        store, index, embedder, min_pairs=1, evidence_k=2, include_bot_replies=True, heldout_conversations=HELD_OUT
    )
    out = tmp_path / "out"
    manifest = write_pairs(result, out)
    assert sorted(p.name for p in out.iterdir()) == ["heldout.jsonl", "manifest.json", "train.jsonl", "valid.jsonl"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    data = (out / "train.jsonl").read_bytes() + (out / "valid.jsonl").read_bytes()
    assert manifest["data_sha256"] == hashlib.sha256(data).hexdigest()  # what a model trains on
    held = (out / "heldout.jsonl").read_bytes()
    assert manifest["files"]["heldout.jsonl"] == hashlib.sha256(held).hexdigest()
    assert manifest["counts"]["heldout"] == 1 and json.loads(held)["id"] == "heldout-0001#1"
    assert manifest["counts"]["target_kind"] == {"agent": 3, "suggested": 0, "edited": 1, "bot": 3}
    assert manifest["embedder_id"] == embedder.model_id
    assert manifest["parameters"]["evidence_k"] == 2 and manifest["filters"]["excluded"]
    assert manifest["parameters"]["include_bot_replies"] is True
    assert manifest["parameters"]["down_vote_conversations"] == 3
    for line in data.decode().splitlines() + held.decode().splitlines():
        pair = json.loads(line)
        assert list(pair) == ["id", "conversation_id", "turn", "context", "evidence", "target", "target_kind", "source"]
        assert pair["id"] == f"{pair['conversation_id']}#{pair['turn']}"
        assert all(set(c) == {"role", "text"} and c["role"] in ("customer", "agent") for c in pair["context"])
        assert all(set(e) == {"id", "text", "score"} for e in pair["evidence"])
    # writing again replaces the set whole; a directory of other files is refused
    write_pairs(build_pairs(store, index, embedder, min_pairs=1, evidence_k=1), out)
    assert json.loads((out / "manifest.json").read_text())["parameters"]["evidence_k"] == 1
    assert not (out / "heldout.jsonl").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CsbotError, match="holds other files"):
        write_pairs(result, other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_transcript_conversations_become_pairs_named_by_their_file(store, index, embedder):
    extra = [
        {
            "id": "c-other",
            "intent": "shipping_time",
            "outcome": "resolved",
            "source": "old.jsonl",
            "turns": [
                {"role": "agent", "text": "Welcome to the shop!"},
                {"role": "system", "text": "visitor signed in"},
                {"role": "customer", "text": "how long does delivery take?"},
                {"role": "agent", "text": "Thanks, Maria! Standard delivery takes 3-5 business days."},
            ],
        }
    ]
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=2, extra_conversations=extra)
    pair = pairs_by_id(result)["c-other#3"]
    assert pair["source"] == "old.jsonl" and pair["target_kind"] == "agent"
    assert pair["target"] == "Thanks, {{Name}}! Standard delivery takes 3-5 business days."
    assert pair["context"] == [
        {"role": "agent", "text": "Welcome to the shop!"},
        {"role": "customer", "text": "how long does delivery take?"},
    ]
    assert "c-other#t0" not in {e["id"] for e in pair["evidence"]}
    assert result.excluded["no_customer_turn"] == 1  # the opening greeting
    with pytest.raises(CsbotError, match=r"in both store and again\.jsonl"):
        build_pairs(
            store,
            index,
            embedder,
            min_pairs=1,
            extra_conversations=[
                {
                    "id": "c-edit",
                    "source": "again.jsonl",
                    "turns": [{"role": "customer", "text": "hi"}, {"role": "agent", "text": "hello"}],
                }
            ],
        )


LOOKED_UP = {
    "id": "c-lookup",
    "intent": "order_status",
    "outcome": "resolved",
    "turns": [
        {"role": "customer", "text": "where is my parcel?"},
        {"role": "agent", "text": "Happy to check! What is the order number?"},
        {"role": "customer", "text": "ORD-40318275"},
        {"role": "system", "text": "Order #40318275: status Shipped 2026-03-02 via ParcelCo."},
        {"role": "agent", "text": "Good news - order #40318275 has shipped and is on its way."},
        {"role": "customer", "text": "how long does standard shipping take?"},
        {"role": "agent", "text": "Standard shipping takes 3-5 business days after dispatch."},
    ],
}


def test_a_reply_right_after_an_order_lookup_is_neither_trained_on_nor_held_out_unless_kept(store, index, embedder):
    # the reply states the record of the system turn, which no pair's context shows: a model
    # trained on it learns to announce a status it cannot see
    held = {
        **LOOKED_UP,
        "id": "c-lookup-held",  # worded apart, so that no training pair is its duplicate
        "turns": [
            {**t, "text": t["text"].replace("parcel", "package").replace("standard", "normal")}
            for t in LOOKED_UP["turns"]
        ],
    }
    result = build_pairs(
        store, index, embedder, min_pairs=1, extra_conversations=[LOOKED_UP], heldout_conversations=[held]
    )
    ids = set(pairs_by_id(result))
    assert "c-lookup#4" not in ids and "c-lookup-held#4" not in {p["id"] for p in result.heldout}
    assert result.excluded["after_lookup"] == 2
    # the next customer message closes the lookup: the follow-up's answer is policy, learned
    assert "c-lookup#6" in ids and "c-lookup-held#6" in {p["id"] for p in result.heldout}
    assert result.parameters["keep_after_lookup"] is False

    kept = build_pairs(
        store,
        index,
        embedder,
        min_pairs=1,
        extra_conversations=[LOOKED_UP],
        heldout_conversations=[held],
        keep_after_lookup=True,
    )
    assert {"c-lookup#4", "c-lookup#6"} <= set(pairs_by_id(kept))
    assert "c-lookup-held#4" in {p["id"] for p in kept.heldout}
    assert kept.excluded["after_lookup"] == 0 and kept.parameters["keep_after_lookup"] is True
    # the record itself is never context
    assert "ParcelCo" not in json.dumps([p["context"] for p in kept.pairs + kept.heldout])


def test_too_few_pairs_are_refused_with_the_counts_and_nothing_is_written(store, index, embedder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TooFewPairsError, match=r"need at least 20 pairs, have 4 .*3 untrusted bot reply") as info:
        build_pairs(store, index, embedder)
    assert isinstance(info.value, CsbotError) and (info.value.need, info.value.have) == (20, 4)
    assert not out.exists()


# -- erasing for privacy requests ------------------------------------------------------


def read_set(d):
    return {
        name: [json.loads(x) for x in (d / name).read_text().splitlines()]
        for name in ("train.jsonl", "valid.jsonl", "heldout.jsonl")
        if (d / name).exists()
    }


def test_erase_rewrites_a_pairs_set_without_the_conversations_and_keeps_its_manifest_true(
    store, index, embedder, tmp_path
):
    from finetune.train_data import read_pairs

    result = build_pairs(
        store,
        index,
        embedder,
        min_pairs=1,
        evidence_k=2,
        valid_fraction=0.5,
        include_bot_replies=True,
        heldout_conversations=HELD_OUT,
    )
    out = tmp_path / "pairs"
    before = write_pairs(result, out)
    assert erase_from_pairs(out, ["c-shipping", "heldout-0001", "no-such-conversation"]) == 3
    after = json.loads((out / "manifest.json").read_text())
    pairs = read_set(out)
    written = json.dumps(pairs)
    # c-shipping's pairs are gone, and so is its index unit wherever it was another pair's evidence
    assert "c-shipping" not in written and "heldout-0001" not in written
    left = [p for ps in pairs.values() for p in ps]
    assert {p["id"] for p in left} == {p["id"] for p in result.pairs} - {"c-shipping#1", "c-shipping#4"}
    # the manifest describes what is there now, so a later check of the set passes
    data = (out / "train.jsonl").read_bytes() + (out / "valid.jsonl").read_bytes()
    assert after["data_sha256"] == hashlib.sha256(data).hexdigest() != before["data_sha256"]
    assert after["files"] == {
        n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in ("train.jsonl", "valid.jsonl", "heldout.jsonl")
    }
    assert after["counts"]["pairs"] == before["counts"]["pairs"] - 2 and after["counts"]["heldout"] == 0
    assert after["counts"]["train"] == len(pairs["train.jsonl"]) and after["erased"]["pairs"] == 3
    assert read_pairs(out).data_sha256 == after["data_sha256"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    # nothing of theirs left: nothing rewritten
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert erase_from_pairs(out, ["c-shipping"]) == 0 and erase_from_pairs(out, []) == 0
    assert (out / "manifest.json").stat().st_mtime_ns == stamp


def test_erase_also_drops_evidence_taken_from_an_erased_conversation(tmp_path):
    out = tmp_path / "pairs"
    out.mkdir()
    pair = {
        "id": "a#1",
        "conversation_id": "a",
        "turn": 1,
        "context": [{"role": "customer", "text": "hi"}],
        "evidence": [
            {"id": "imported-7#t1", "text": "their words", "score": 0.9},
            {"id": "kb-returns#c0", "text": "policy", "score": 0.5},
        ],
        "target": "hello",
        "target_kind": "agent",
        "source": "store",
    }
    (out / "train.jsonl").write_text(json.dumps(pair) + "\n")
    (out / "valid.jsonl").write_text("")
    assert erase_from_pairs(out, ["imported-7"]) == 0  # no pair removed, but its text is gone
    [kept] = read_set(out)["train.jsonl"]
    assert [e["id"] for e in kept["evidence"]] == ["kb-returns#c0"]
    (out / "valid.jsonl").write_text("{broken\n")
    with pytest.raises(CsbotError, match=r"valid.jsonl:1 is not JSON"):
        erase_from_pairs(out, ["a"])
    assert json.loads((out / "train.jsonl").read_text()) == kept  # a failed erase rewrites nothing


def test_find_pairs_dirs_finds_every_set_in_a_workspace(store, index, embedder, tmp_path):
    ws = tmp_path / "ws"
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=0)
    rounds = [ws / "finetune" / "rounds" / f"round-{i}" / "pairs" for i in (1, 2)]
    for d in [*rounds, ws / "my-pairs"]:
        write_pairs(result, d)
    (ws / "finetune" / "rounds" / "round-1" / "run" / "final").mkdir(parents=True)
    (ws / "index" / "gen-1").mkdir(parents=True)
    (ws / "index" / "gen-1" / "manifest.json").write_text("{}")
    crashed = ws / "finetune" / "rounds" / "round-2" / ".pairs.tmp-abc"  # a write that died half-way
    crashed.mkdir()
    (crashed / "train.jsonl").write_text("")
    assert find_pairs_dirs(ws) == sorted([*rounds, ws / "my-pairs", crashed])
    assert find_pairs_dirs(tmp_path / "missing") == []
    assert sum(erase_from_pairs(d, ["c-edit"]) for d in find_pairs_dirs(ws)) == 3


# -- through the installed CLI -------------------------------------------------------


@pytest.mark.e2e
def test_cli_builds_pairs_from_logged_turns_and_a_transcript_file(demo_workspace, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    for name in ("store.db", "store.db-wal", "store.db-shm"):  # other tests' turns are not ours
        (ws / name).unlink(missing_ok=True)
    first = last_json(run_csbot("ask", "can I pay with paypal?", workspace=ws).stdout)
    assert first["action"] == "answer"
    run_csbot("ask", "I want to talk to a person", "--conversation", first["conversation_id"], workspace=ws)

    out = tmp_path / "pairs"
    proc = run_csbot(
        "finetune",
        "pairs",
        "--out",
        str(out),
        "--transcripts",
        str(REPO / "data" / "conversations.jsonl"),
        "--format",
        "jsonl",
        "--evidence-k",
        "2",
        workspace=ws,
    )
    summary = last_json(proc.stdout)
    assert "retrieving evidence" in proc.stderr
    # the bot's answer to an anonymous visitor is not learned unless asked for
    assert "store" not in summary["source"] and summary["excluded"]["untrusted_bot_reply"] == 1
    assert summary["source"]["conversations.jsonl"] > 1000
    assert summary["train"] + summary["valid"] == summary["pairs"]
    assert summary["excluded"]["failed_before_handoff"] == 1
    assert summary["excluded"]["after_lookup"] > 0  # the demo's replies stating a looked-up order
    assert summary["pii_scrubbed"]["order_id"] > 0
    # no agent worked in the panel: no suggestions, and the kinds are all counted
    assert summary["suggestions"] == {"shown": 0, "sent": 0, "edited": 0, "discarded": 0}
    assert set(summary["target_kind"]) == {"agent", "suggested", "edited", "bot"}
    assert summary["excluded"]["discarded_suggestion"] == 0
    pairs = [json.loads(line) for name in ("train", "valid") for line in (out / f"{name}.jsonl").open()]
    assert len(pairs) == summary["pairs"]
    assert all(not e["id"].startswith(p["conversation_id"] + "#") for p in pairs for e in p["evidence"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data_sha256"] == summary["data_sha256"]
    written = (out / "train.jsonl").read_text() + (out / "valid.jsonl").read_text()
    assert "priya.smith@example.net" not in written and "{{Email}}" in written

    kept = last_json(
        run_csbot(
            "finetune",
            "pairs",
            "--out",
            str(tmp_path / "kept"),
            "--transcripts",
            str(REPO / "data" / "conversations.jsonl"),
            "--evidence-k",
            "2",
            "--keep-after-lookup",
            workspace=ws,
        ).stdout
    )
    assert kept["excluded"]["after_lookup"] == 0
    assert kept["pairs"] == summary["pairs"] + summary["excluded"]["after_lookup"]

    refused = run_csbot(
        "finetune",
        "pairs",
        "--out",
        str(tmp_path / "none"),
        "--min-pairs",
        "100000",
        "--include-bot-replies",
        workspace=ws,
        check=False,
    )
    assert refused.returncode == 1
    assert "need at least 100000 pairs, have 1" in refused.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.e2e
def test_cli_without_a_built_workspace_says_how_to_build_one(tmp_path):
    proc = run_csbot("finetune", "pairs", "--out", str(tmp_path / "out"), workspace=tmp_path / "nope", check=False)
    assert proc.returncode == 1
    assert "csbot build" in proc.stderr and proc.stderr.count("\n") <= 3
