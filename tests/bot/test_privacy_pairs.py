"""A privacy request reaches the fine-tuning pairs: pairs are built from the store, so a
customer forgotten by email is absent from every pair built afterwards, the pairs built
before are rewritten without them, and the log says what went by id and count only.
A real SQLite store and a real FAISS index (of the hashing embedder in tests/fakes.py; the
pairs take no evidence from it: the index holds no store conversation, only transcripts)."""

from __future__ import annotations

import json
import logging

import pytest

from bot.privacy import forget_customer
from bot.store import ConversationStore, DialogueState, MessageRecord
from finetune.pairs import build_pairs, write_pairs
from retrieval.index import VectorIndex
from retrieval.types import Unit
from tests.fakes import HashingEmbedder

EMAIL = "dana.lee@example.org"
# words only the forgotten customer's conversation holds (not personal data the scrubber masks)
THEIR_WORDS = ("teapot", "lid")


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def index(embedder: HashingEmbedder) -> VectorIndex:
    units = [
        Unit("kb-returns#c0", "kb", "Returns: send items back within 30 days.", source_id="kb-returns"),
        Unit("kb-shipping#c0", "kb", "Shipping takes 3-5 business days.", source_id="kb-shipping"),
    ]
    return VectorIndex.build(units, embedder.encode([u.text for u in units]), embedder_id=embedder.model_id)


def _answered(store: ConversationStore, conversation_id: str, customer: str, agent: str) -> None:
    """A conversation the bot handed over and a human agent answered (a trusted pair target)."""
    store.create_conversation(conversation_id=conversation_id)
    store.record_turn(
        conversation_id,
        MessageRecord("customer", customer),
        MessageRecord("bot", "Connecting you with a person.", action="handoff", composer="policy"),
        DialogueState(handed_off=True),
        handoff_reason="customer asked for a human",
    )
    store.record_agent_message(conversation_id, agent)


def _pairs_text(result) -> str:
    return json.dumps(result.pairs, ensure_ascii=False).lower()


def test_a_customer_forgotten_by_email_is_absent_from_pairs_built_afterwards(tmp_path, index, caplog):
    workspace = tmp_path / "ws"
    with ConversationStore(workspace / "store.db") as store:
        _answered(
            store,
            "c-dana",
            f"hi, {EMAIL} here: the teapot lid arrived cracked",
            "Sorry about the teapot lid! A new lid ships today.",
        )
        _answered(store, "c-other", "my kettle is late", "Your kettle ships tomorrow with ParcelCo.")
        before = build_pairs(store, index, None, min_pairs=1, evidence_k=0, valid_fraction=0)
        assert {p["conversation_id"] for p in before.pairs} == {"c-dana", "c-other"}
        assert all(word in _pairs_text(before) for word in THEIR_WORDS)
        pairs_dir = workspace / "finetune" / "rounds" / "r1" / "pairs"
        write_pairs(before, pairs_dir)

        with caplog.at_level(logging.INFO, logger="csbot.privacy"):
            report = forget_customer(store, workspace, EMAIL)
        assert report.conversations == ["c-dana"] and report.pairs == 1

        after = build_pairs(store, index, None, min_pairs=1, evidence_k=0, valid_fraction=0)
    assert {p["conversation_id"] for p in after.pairs} == {"c-other"}
    assert not any(word in _pairs_text(after) for word in THEIR_WORDS)
    # the pairs written before the request are rewritten without the conversation
    on_disk = " ".join(p.read_text().lower() for p in pairs_dir.glob("*.jsonl"))
    assert "c-dana" not in on_disk and not any(word in on_disk for word in THEIR_WORDS)
    assert "c-other" in on_disk
    # logged by id and count, never by content or the address that found it
    logged = caplog.text.lower()
    assert "c-dana" in logged and "request by email" in logged
    assert EMAIL not in logged and "dana.lee" not in logged
    assert not any(word in logged for word in THEIR_WORDS)
