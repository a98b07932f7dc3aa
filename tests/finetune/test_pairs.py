"""Fine-tuning pairs from a real store, a real MiniLM and a real FAISS index."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from bot.errors import CsbotError
from bot.store import ConversationStore, DialogueState, MessageRecord
from finetune.pairs import TooFewPairsError, build_pairs, write_pairs
from retrieval.types import Unit
from tests.helpers import REPO, last_json, run_csbot

ANSWER = dict(action="answer", composer="retrieval", intent="shipping_time", confidence=0.9)


@pytest.fixture(scope="module")
def embedder():
    from retrieval.embedder import SentenceEmbedder

    return SentenceEmbedder().load()


@pytest.fixture(scope="module")
def index(embedder):
    from retrieval.index import VectorIndex

    units = [
        # the store conversation c-shipping's own unit: its answer, which a pair must never see
        Unit("c-shipping#t0", "transcript", "how long does shipping take to Ohio?",
             reply="Standard shipping takes 3-5 business days.", source_id="c-shipping", turn=0),
        Unit("c-other#t0", "transcript", "how long does delivery take?",
             reply="Thanks, Maria! Standard delivery takes 3-5 business days.", source_id="c-other", turn=0),
        Unit("kb-shipping#c0", "kb", "Shipping times: Standard 3-5 business days, Express 1-2. "
             "Questions about freight: ops.lead@example.org", source_id="kb-shipping", title="Shipping"),
        Unit("c-refund#t0", "transcript", "can I get my money back?",
             reply="Refunds reach your card within 5 business days.", source_id="c-refund", turn=0),
    ]
    vectors = embedder.encode([u.text for u in units])
    return VectorIndex.build(units, vectors, embedder_id=embedder.model_id)


def turn(store, cid, customer, reply, handoff=None, **bot):
    return store.record_turn(
        cid, MessageRecord("customer", customer), MessageRecord("bot", reply, **bot),
        DialogueState(handed_off=handoff is not None), handoff_reason=handoff,
    )


@pytest.fixture
def store(tmp_path):
    with ConversationStore(tmp_path / "store.db").open() as s:
        # answered by the bot (up-voted), then by an agent who greets the customer by name
        c = s.create_conversation(conversation_id="c-shipping")
        up = turn(s, c, "how long does shipping take to Ohio? I'm Jo Doe.", "Standard shipping takes 3-5 business days.", **ANSWER)
        s.add_feedback(up, "up")
        turn(s, c, "ok and where is #40318275? mail me at jo.doe@example.com", "One moment please.",
             action="clarify", composer="retrieval", intent="order_status")
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
        turn(s, c, "a person please", "Connecting you with a human.", handoff="customer asked for a human",
             action="handoff", composer="policy", intent="human")
        s.record_agent_message(c, "I'm sorry about the kettle - please stop using it; a replacement is on its way.")
        # an agent edited the bot's suggestion before sending it
        c = s.create_conversation(conversation_id="c-edit")
        turn(s, c, "where is my order", "Could you tell me your order number?", action="clarify", composer="policy")
        s.record_agent_message(c, "It left today with ParcelCo; tracking follows by email.",
                               edited_from="Your order has shipped.")
        # two identical conversations: the second pair is a duplicate
        for cid in ("c-dup1", "c-dup2"):
            c = s.create_conversation(conversation_id=cid)
            turn(s, c, "do you ship abroad?", "Connecting you with a human.", handoff="customer asked for a human",
                 action="handoff", composer="policy")
            s.record_agent_message(c, "Yes, we ship to 40 countries.")
        yield s


def pairs_by_id(result):
    return {p["id"]: p for p in result.pairs}


pytestmark = pytest.mark.slow


def test_agent_replies_and_good_bot_replies_are_targets(store, index, embedder):
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=2)
    pairs = pairs_by_id(result)
    assert pairs["c-shipping#1"]["target_kind"] == "bot"
    assert pairs["c-shipping#1"]["target"] == "Standard shipping takes 3-5 business days."
    assert pairs["c-shipping#4"]["target_kind"] == "agent"
    assert pairs["c-handoff#1"]["target_kind"] == "bot"  # the answer before things went wrong
    assert pairs["c-handoff#8"]["target_kind"] == "agent"
    assert set(pairs) == {"c-shipping#1", "c-shipping#4", "c-handoff#1", "c-handoff#8", "c-edit#2", "c-dup1#2"}
    assert all(p["source"] == "store" for p in result.pairs)
    # context: the turns before the target, bot turns as "agent", oldest first
    assert [c["role"] for c in pairs["c-shipping#4"]["context"]] == ["customer", "agent", "customer", "agent"]
    assert pairs["c-handoff#8"]["context"][-1] == {"role": "agent", "text": "Connecting you with a human."}


def test_down_voted_failed_and_policy_replies_are_excluded_and_counted(store, index, embedder):
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=2)
    assert "c-down#1" not in pairs_by_id(result)
    assert result.excluded["negative_feedback"] == 1
    # c-handoff: small talk after the last answer, the fallback and the handoff; c-dup1/2: their handoffs
    assert result.excluded["failed_before_handoff"] == 5
    assert result.excluded["policy"] == 1  # c-edit's fixed slot question
    assert result.excluded["not_an_answer"] == 1  # c-shipping's composer clarify
    assert result.excluded["duplicate"] == 1  # c-dup2's copy of c-dup1


def test_an_edited_suggestion_trains_on_the_agents_edited_text(store, index, embedder):
    pair = pairs_by_id(build_pairs(store, index, embedder, min_pairs=1, evidence_k=2))["c-edit#2"]
    assert pair["target_kind"] == "edited"
    assert pair["target"] == "It left today with ParcelCo; tracking follows by email."


def test_no_pair_takes_evidence_from_its_own_conversation(store, index, embedder):
    from retrieval.entities import mask_entities

    # without the rule, c-shipping's own unit is the best evidence for its first pair
    query = embedder.encode([mask_entities("how long does shipping take to Ohio? I'm {{Name}}.")[0]])
    assert index.search(query, k=1)[0].unit.source_id == "c-shipping"
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=3)
    for pair in result.pairs:
        assert len(pair["evidence"]) == 3
        assert all(index.get(e["id"]).source_id != pair["conversation_id"] for e in pair["evidence"])
        assert [e["score"] for e in pair["evidence"]] == sorted((e["score"] for e in pair["evidence"]), reverse=True)
    assert "c-shipping#t0" not in {e["id"] for e in pairs_by_id(result)["c-shipping#1"]["evidence"]}


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
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=1, valid_fraction=0.5, seed=3)
    manifest = write_pairs(result, tmp_path / "out")
    read = {name: [json.loads(line) for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]
            for name in ("train", "valid")}
    train_ids = {p["conversation_id"] for p in read["train"]}
    valid_ids = {p["conversation_id"] for p in read["valid"]}
    assert train_ids and valid_ids and not train_ids & valid_ids
    assert manifest["counts"]["train"] == len(read["train"]) and manifest["counts"]["valid"] == len(read["valid"])
    again = build_pairs(store, index, embedder, min_pairs=1, evidence_k=1, valid_fraction=0.5, seed=3)
    assert again.train == result.train and again.valid == result.valid


def test_the_written_set_follows_the_schema_and_its_manifest(store, index, embedder, tmp_path):
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=2)
    out = tmp_path / "out"
    manifest = write_pairs(result, out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.jsonl", "valid.jsonl"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    data = (out / "train.jsonl").read_bytes() + (out / "valid.jsonl").read_bytes()
    assert manifest["data_sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["counts"]["target_kind"] == {"agent": 3, "bot": 2, "edited": 1}
    assert manifest["embedder_id"] == embedder.model_id
    assert manifest["parameters"]["evidence_k"] == 2 and manifest["filters"]["excluded"]
    for line in data.decode().splitlines():
        pair = json.loads(line)
        assert list(pair) == ["id", "conversation_id", "turn", "context", "evidence", "target", "target_kind", "source"]
        assert pair["id"] == f"{pair['conversation_id']}#{pair['turn']}"
        assert all(set(c) == {"role", "text"} and c["role"] in ("customer", "agent") for c in pair["context"])
        assert all(set(e) == {"id", "text", "score"} for e in pair["evidence"])
    # writing again replaces the set whole; a directory of other files is refused
    write_pairs(build_pairs(store, index, embedder, min_pairs=1, evidence_k=1), out)
    assert json.loads((out / "manifest.json").read_text())["parameters"]["evidence_k"] == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CsbotError, match="holds other files"):
        write_pairs(result, other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_transcript_conversations_become_pairs_named_by_their_file(store, index, embedder):
    extra = [{
        "id": "c-other", "intent": "shipping_time", "outcome": "resolved", "source": "old.jsonl",
        "turns": [
            {"role": "agent", "text": "Welcome to the shop!"},
            {"role": "customer", "text": "how long does delivery take?"},
            {"role": "system", "text": "lookup: ok"},
            {"role": "agent", "text": "Thanks, Maria! Standard delivery takes 3-5 business days."},
        ],
    }]
    result = build_pairs(store, index, embedder, min_pairs=1, evidence_k=2, extra_conversations=extra)
    pair = pairs_by_id(result)["c-other#3"]
    assert pair["source"] == "old.jsonl" and pair["target_kind"] == "agent"
    assert pair["target"] == "Thanks, {{Name}}! Standard delivery takes 3-5 business days."
    assert pair["context"] == [{"role": "agent", "text": "Welcome to the shop!"},
                               {"role": "customer", "text": "how long does delivery take?"}]
    assert "c-other#t0" not in {e["id"] for e in pair["evidence"]}
    assert result.excluded["no_customer_turn"] == 1  # the opening greeting
    with pytest.raises(CsbotError, match="in both store and again.jsonl"):
        build_pairs(store, index, embedder, min_pairs=1, extra_conversations=[
            {"id": "c-edit", "source": "again.jsonl", "turns": [{"role": "customer", "text": "hi"},
                                                              {"role": "agent", "text": "hello"}]}])


def test_too_few_pairs_are_refused_with_the_counts_and_nothing_is_written(store, index, embedder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TooFewPairsError, match=r"need at least 20 pairs, have 6 .*1 negative feedback") as info:
        build_pairs(store, index, embedder)
    assert isinstance(info.value, CsbotError) and (info.value.need, info.value.have) == (20, 6)
    assert not out.exists()


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
    proc = run_csbot("finetune", "pairs", "--out", str(out), "--transcripts", str(REPO / "data" / "conversations.jsonl"),
                     "--format", "jsonl", "--evidence-k", "2", workspace=ws)
    summary = last_json(proc.stdout)
    assert "retrieving evidence" in proc.stderr
    assert summary["source"]["store"] == 1 and summary["source"]["conversations.jsonl"] > 1000
    assert summary["train"] + summary["valid"] == summary["pairs"]
    assert summary["excluded"]["failed_before_handoff"] == 1
    assert summary["pii_scrubbed"]["order_id"] > 0
    pairs = [json.loads(line) for name in ("train", "valid") for line in (out / f"{name}.jsonl").open()]
    assert len(pairs) == summary["pairs"]
    assert all(not e["id"].startswith(p["conversation_id"] + "#") for p in pairs for e in p["evidence"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data_sha256"] == summary["data_sha256"]
    written = (out / "train.jsonl").read_text() + (out / "valid.jsonl").read_text()
    assert "priya.smith@example.net" not in written and "{{Email}}" in written

    refused = run_csbot("finetune", "pairs", "--out", str(tmp_path / "none"), "--min-pairs", "100000",
                        workspace=ws, check=False)
    assert refused.returncode == 1
    assert "need at least 100000 pairs, have 1" in refused.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.e2e
def test_cli_without_a_built_workspace_says_how_to_build_one(tmp_path):
    proc = run_csbot("finetune", "pairs", "--out", str(tmp_path / "out"), workspace=tmp_path / "nope", check=False)
    assert proc.returncode == 1
    assert "csbot build" in proc.stderr and proc.stderr.count("\n") <= 3
