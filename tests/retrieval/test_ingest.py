"""retrieval.ingest: conversations, articles and QA rows into units."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from retrieval.ingest import (
    chunk_text,
    sha256_file,
    units_from_articles,
    units_from_conversations,
    units_from_qa,
)


def conv(
    turns: list[tuple[str, str]], cid: str = "c1", intent: str | None = "track_order", outcome: str | None = "resolved"
) -> dict:
    return {"id": cid, "intent": intent, "outcome": outcome, "turns": [{"role": r, "text": t} for r, t in turns]}


def test_each_answered_customer_message_becomes_one_transcript_unit() -> None:
    units = units_from_conversations(
        [
            conv(
                [
                    ("agent", "Hi, how can I help?"),
                    ("customer", "Where is my parcel?"),
                    ("agent", "Let me check that for you."),
                    ("customer", "It was due Monday."),
                    ("agent", "It ships tomorrow."),
                ]
            )
        ]
    )
    assert [u.id for u in units] == ["c1#t1", "c1#t3"]
    first = units[0]
    assert (first.kind, first.text, first.reply) == ("transcript", "Where is my parcel?", "Let me check that for you.")
    assert (first.source_id, first.turn, first.intent, first.outcome) == ("c1", 1, "track_order", "resolved")


def test_consecutive_customer_turns_join_and_the_following_agent_turns_form_the_reply() -> None:
    units = units_from_conversations(
        [
            conv(
                [
                    ("customer", "Hello"),
                    ("customer", "my parcel is late"),
                    ("system", "Order looked up."),
                    ("agent", "Sorry to hear that."),
                    ("system", "Refund issued."),
                    ("agent", "I've refunded the shipping."),
                    ("customer", "thanks"),
                ]
            )
        ]
    )
    assert len(units) == 1
    assert units[0].id == "c1#t0"
    assert units[0].text == "Hello my parcel is late"
    assert units[0].reply == "Sorry to hear that. I've refunded the shipping."


def test_customer_message_without_agent_reply_produces_no_unit() -> None:
    units = units_from_conversations(
        [
            conv(
                [
                    ("customer", "hi"),
                    ("agent", "hello"),
                    ("customer", "bye"),
                ]
            )
        ]
    )
    assert [u.id for u in units] == ["c1#t0"]


def test_context_holds_up_to_n_previous_turns_oldest_first_with_roles() -> None:
    turns = [
        ("agent", "a0"),
        ("customer", "c1"),
        ("agent", "a2"),
        ("system", "s3"),
        ("customer", "c4"),
        ("agent", "a5"),
    ]
    units = units_from_conversations([conv(turns)], context_turns=3)
    assert units[0].context == ("agent: a0",)
    assert units[1].context == ("customer: c1", "agent: a2", "system: s3")
    assert units_from_conversations([conv(turns)], context_turns=0)[1].context == ()


def test_personal_values_are_masked_in_text_reply_and_context() -> None:
    units = units_from_conversations(
        [
            conv(
                [
                    ("customer", "my email is jo@shop.com"),
                    ("agent", "Thanks jo@shop.com, noted."),
                    ("customer", "order #40318275 is late"),
                    ("agent", "Order #40318275 ships today; we'll call (977) 625-2661."),
                ]
            )
        ]
    )
    second = units[1]
    assert second.text == "order {{Order Number}} is late"
    assert second.reply == "Order {{Order Number}} ships today; we'll call {{Phone Number}}."
    assert second.context == ("customer: my email is {{Email}}", "agent: Thanks {{Email}}, noted.")
    assert "40318275" not in repr(units) and "jo@shop.com" not in repr(units)


def test_negative_context_turns_is_rejected() -> None:
    with pytest.raises(ValueError, match="context_turns"):
        units_from_conversations([], context_turns=-1)


def test_articles_are_chunked_on_paragraph_boundaries_with_title_in_text() -> None:
    paragraphs = [" ".join([f"w{p}"] * 40) for p in range(5)]  # five 40-word paragraphs
    units = units_from_articles(
        [{"id": "kb-returns", "title": "Returns", "text": "\n\n".join(paragraphs), "intents": ["return", "refund"]}],
        chunk_words=100,
    )
    assert [u.id for u in units] == ["kb-returns#c0", "kb-returns#c1", "kb-returns#c2"]
    assert all(u.kind == "kb" and u.intent == "return" and u.title == "Returns" for u in units)
    assert units[0].text.startswith("Returns\n\n")
    # two whole paragraphs fit in 100 words, a third would not
    assert units[0].text.count("w0") == 40 and units[0].text.count("w1") == 40 and "w2" not in units[0].text
    assert units[0].reply == "" and units[0].evidence_text == units[0].text


def test_article_without_intents_has_no_intent() -> None:
    units = units_from_articles([{"id": "a", "title": "T", "text": "short text", "intents": []}], chunk_words=50)
    assert len(units) == 1 and units[0].intent is None


def test_a_paragraph_longer_than_the_budget_is_split_on_sentences_then_words() -> None:
    long_sentence = " ".join(["word"] * 25) + "."
    text = f"First sentence here. {long_sentence}"
    chunks = chunk_text(text, 10)
    assert all(len(c.split()) <= 10 for c in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(text.split())


def test_qa_rows_become_masked_units_with_positional_ids() -> None:
    units = units_from_qa(
        [
            ("cancel order 732201349959", "Order 732201349959 is cancelled.", "cancel_order"),
            ("hello", "Hi! How can I help?", None),
        ],
        source="faq.csv",
    )
    assert [u.id for u in units] == ["faq.csv#r0", "faq.csv#r1"]
    assert units[0].text == "cancel order {{Order Number}}"
    assert units[0].reply == "Order {{Order Number}} is cancelled."
    assert (units[0].kind, units[0].intent, units[1].intent) == ("qa", "cancel_order", None)


def test_sha256_file_is_the_hex_digest_of_the_bytes(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc" * 1_000_000)
    assert sha256_file(f) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()


def test_article_chunks_keep_list_items_on_their_own_lines() -> None:
    from retrieval.ingest import chunk_text

    [chunk] = chunk_text("Steps:\n- one   thing\n- another thing\n\nDone.", chunk_words=50)
    assert chunk == "Steps:\n- one thing\n- another thing\n\nDone."


def test_names_usernames_and_addresses_are_masked_in_every_turn_of_a_conversation() -> None:
    units = units_from_conversations(
        [
            conv(
                [
                    ("agent", "sure, may I have your name please?"),
                    ("customer", "Crystal Minh"),
                    ("agent", "thanks Crystal! And your username?"),
                    ("customer", "Username: cminh730"),
                    ("agent", "Thanks, I'll ship to 6821 1st ave again."),
                ]
            )
        ]
    )
    assert [(u.text, u.reply) for u in units] == [
        ("{{Name}}", "thanks {{Name}}! And your username?"),
        ("Username: {{Username}}", "Thanks, I'll ship to {{Street Address}} again."),
    ]
    assert units[1].context == (
        "agent: sure, may I have your name please?",
        "customer: {{Name}}",
        "agent: thanks {{Name}}! And your username?",
    )


def test_qa_rows_are_masked_by_the_same_scrubber() -> None:
    [unit] = units_from_qa(
        [
            (
                "I'm Priya Sharma, where is 1Z999AA10123456784?",
                "Hi Priya, UPS has 1Z999AA10123456784 out for delivery.",
                None,
            )
        ],
        source="faq.csv",
    )
    assert (unit.text, unit.reply) == (
        "I'm {{Name}}, where is {{Tracking Number}}?",
        "Hi {{Name}}, UPS has {{Tracking Number}} out for delivery.",
    )


def _personal_values(scenario: dict) -> set[str]:
    """What ABCD's scenario says belongs to the customer (a name also by its parts)."""
    fields = {
        "personal": ("customer_name", "username", "email", "phone", "account_id"),
        "order": ("order_id", "street_address", "zip_code"),
    }
    values = {str(scenario.get(section, {}).get(f) or "").strip() for section, names in fields.items() for f in names}
    values |= set(str(scenario.get("personal", {}).get("customer_name", "")).split())
    return {v.lower() for v in values if len(v) >= 3}


@pytest.mark.shared
def test_the_abcd_sample_imported_leaves_no_customer_value_in_the_index(shared_datasets: Path) -> None:
    import json
    import re

    from retrieval.importers import load_import

    path = shared_datasets / "abcd" / "abcd_sample.json"
    batch = load_import(path, "abcd")
    dialogues = {f"abcd-{d['convo_id']}": d for d in json.loads(path.read_text(encoding="utf-8"))}
    checked = 0
    for unit in batch.units:
        values = _personal_values(dialogues[unit.source_id]["scenario"])
        stored = " ".join([unit.text, unit.reply, *unit.context]).lower()
        digits = re.sub(r"\D", "", stored)
        for value in values:
            assert not re.search(rf"(?<!\w){re.escape(value)}(?!\w)", stored), (unit.id, value)
            if re.fullmatch(r"[\d() .-]+", value):  # a phone written any other way
                assert re.sub(r"\D", "", value) not in digits, (unit.id, value)
        checked += len(values)
    assert len(batch.units) >= 10 and checked >= 50
