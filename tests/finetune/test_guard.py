"""finetune.guard: invented values are rejected, given ones pass, overlap is calibrated on real replies,
and a reply cut at the token limit is judged up to its last whole sentence."""

from __future__ import annotations

import json

import pytest

from finetune.guard import (
    GroundingGuard,
    calibrate_min_overlap,
    claimed_actions,
    clean_generated_text,
    company_facts_from,
    extract_entities,
    overlap,
)
from tests.helpers import REPO

COMPANY = json.loads((REPO / "data" / "company.json").read_text(encoding="utf-8"))
EVIDENCE = [
    "Good news - order {{Order Number}} has left our warehouse and is on its way. "
    "Standard delivery takes 3-5 business days."
]
CONVERSATION = ["Hi, where is my order?", "It's ORD-40318275, my email is anna@example.org"]


@pytest.fixture(scope="module")
def guard() -> GroundingGuard:
    return GroundingGuard(company_facts_from(COMPANY), min_overlap=0.0)


@pytest.mark.parametrize(
    "reply, label, value",
    [
        ("Your order #99887766 has left our warehouse.", "order", "#99887766"),
        ("We emailed the label to someone@mail.example.com.", "email", "someone@mail.example.com"),
        ("Delivery on this order costs $7.49.", "amount", "$7.49"),
        ("We refunded 45 dollars to your card.", "amount", "45 dollars"),
        ("You were charged 19.00 USD.", "amount", "19.00 USD"),
        ("It will arrive on 2026-03-02.", "date", "2026-03-02"),
        ("It will arrive on 03/02/2026.", "date", "03/02/2026"),
        ("It will arrive on March 2.", "date", "March 2"),
        ("It will arrive on 2 March 2026.", "date", "2 March 2026"),
        ("Track it at https://track.parcel.example/abc123.", "URL", "https://track.parcel.example/abc123"),
        ("See www.cheap-deals.com for a coupon.", "URL", "www.cheap-deals.com"),
        ("Call our warehouse on 555-201-3344.", "phone number", "555-201-3344"),
    ],
)
def test_an_invented_value_is_rejected_naming_it(guard, reply, label, value) -> None:
    v = guard.check(reply, conversation=CONVERSATION, evidence=EVIDENCE)
    assert not v.ok and v.rule == "entity"
    assert v.reason.startswith(f"names {label} {value}")
    assert "which is in neither the conversation nor the evidence" in v.reason
    assert v.entities and v.entities[0].rstrip(".") == value


def test_the_invented_order_number_message(guard) -> None:
    v = guard.check("Order #99887766 has shipped.", conversation=CONVERSATION, evidence=EVIDENCE)
    assert v.reason == "names order #99887766, which is in neither the conversation nor the evidence"


@pytest.mark.parametrize(
    "reply, where",
    [
        ("Order #40318275 has left our warehouse.", "conversation"),  # ORD-40318275 given, written otherwise
        ("We will email anna@example.org.", "conversation"),
        ("Delivery costs $7.49.", "evidence"),
        ("We refunded 45 dollars.", "evidence"),
        ("It will arrive on March 2.", "evidence"),
        ("It will arrive on 03/02/2026.", "evidence"),
        ("Track it at https://track.parcel.example/abc123.", "evidence"),
        ("Call us on 555-201-3344.", "conversation"),
        ("Express costs $12.99 and Next Day $24.99.", "facts"),
        ("Free shipping starts at $50.", "facts"),  # threshold_usd: 50.0
        ("Write to help@larkspurgoods.example or see larkspurgoods.example/contact.", "facts"),
        ("Call 1-800-LARKSPUR.", "facts"),
    ],
)
def test_a_value_from_the_conversation_evidence_or_company_facts_passes(guard, reply, where) -> None:
    extra = {
        "conversation": ["my phone is (555) 201-3344"],
        "evidence": [
            "A refund of $45 was issued; it will arrive 2026-03-02 for $7.49. Track at track.parcel.example/abc123"
        ],
    }
    conversation = CONVERSATION + (extra["conversation"] if where == "conversation" else [])
    evidence = EVIDENCE + (extra["evidence"] if where == "evidence" else [])
    v = guard.check(reply, conversation=conversation, evidence=evidence)
    assert v.ok, v.reason


def test_an_amount_is_not_grounded_by_an_unrelated_integer(guard) -> None:
    # "3-5 business days" is in the evidence; "$5" is still invented
    v = guard.check("Standard delivery costs $5.", conversation=CONVERSATION, evidence=EVIDENCE)
    assert not v.ok and "amount $5" in v.reason


def test_placeholders_are_not_values(guard) -> None:
    v = guard.check(
        "Order {{Order Number}} is on its way; we wrote to {{Email}}.",
        conversation=["where is my order"],
        evidence=EVIDENCE,
    )
    assert v.ok and v.entities == []
    assert extract_entities("{{Order Number}} {{Phone Number}} {{Card Number}}") == []


def test_overlap_below_the_threshold_is_rejected_with_the_share() -> None:
    strict = GroundingGuard([], min_overlap=0.5)
    grounded = "Your order has left our warehouse and is on its way."
    assert strict.check(grounded, conversation=[], evidence=EVIDENCE).ok
    v = strict.check("Purple elephants dance quietly on its way.", conversation=[], evidence=EVIDENCE)
    assert not v.ok and v.rule == "overlap"
    assert v.overlap == pytest.approx(1 / 5)  # "way" of: purple elephants dance quietly way
    assert v.reason == "only 20% of the reply's words are in the evidence (needs 50%)"
    # the conversation counts as a source too
    assert strict.check(
        "Purple elephants dance quietly.", conversation=["purple elephants dance quietly?"], evidence=EVIDENCE
    ).ok


def test_overlap_ignores_stop_words_and_placeholders() -> None:
    assert overlap("Yes, it is.", []) == 1.0  # nothing to ground
    assert overlap("Order {{Order Number}} shipped", ["order shipped"]) == 1.0
    assert overlap("the parcel shipped", ["shipped"]) == 0.5


def test_the_claims_a_text_makes_are_its_first_person_completed_actions() -> None:
    text = "Thanks. I've logged a complaint; we have just issued a refund. I’ve gone ahead and sent the label."
    assert claimed_actions(text) == ["logged", "issued", "sent"]
    # having something is not doing something
    assert claimed_actions("I have a question. We have your order. We haven't heard back.") == []


def test_an_action_claimed_done_that_nobody_claims_is_rejected(guard) -> None:
    # what a small model wrote in a live turn where no complaint was logged
    reply = "Thanks for that. I've logged a formal complaint against your order; a team lead will contact you."
    verdict = guard.check(reply, conversation=CONVERSATION, evidence=EVIDENCE)
    assert not verdict.ok and verdict.rule == "claim"
    assert verdict.reason == "claims an action is done ('logged') that neither the conversation nor the evidence claims"
    # the same claim in the evidence (an agent's escalation reply) or earlier in the conversation passes
    claimed = ["I've logged a formal complaint and asked the team lead to contact you."]
    assert guard.check(reply, conversation=CONVERSATION, evidence=EVIDENCE + claimed).ok
    assert guard.check(reply, conversation=CONVERSATION + claimed, evidence=EVIDENCE).ok
    # and a guard told not to check claims lets it through
    lenient = GroundingGuard(company_facts_from(COMPANY), min_overlap=0.0, check_claims=False)
    assert lenient.check(reply, conversation=CONVERSATION, evidence=EVIDENCE).ok


def test_an_empty_reply_is_rejected(guard) -> None:
    assert guard.check("  ", conversation=[], evidence=[]).rule == "empty"


def test_a_reply_without_words_is_rejected_even_though_it_invents_nothing(guard) -> None:
    verdict = guard.check(", , . ...", conversation=[], evidence=["anything"])
    assert not verdict.ok and verdict.reason == "the reply has no words"
    assert guard.check("OK!", conversation=[], evidence=["OK"]).ok


def test_calibration_lets_all_but_the_quantile_of_real_replies_pass() -> None:
    pairs = [json.loads(line) for line in (REPO / "data" / "conversations.jsonl").read_text().splitlines()[:60]]
    data = []
    for conv in pairs:  # each agent reply against the customer turn and the replies around it
        turns = [t for t in conv["turns"] if t["role"] in ("customer", "agent")]
        agent = [t["text"] for t in turns if t["role"] == "agent"]
        for i, reply in enumerate(agent):
            data.append((reply, agent[:i] + agent[i + 1 :]))
    threshold = calibrate_min_overlap(data, quantile=0.1)
    assert 0.0 <= threshold <= 1.0
    passed = [GroundingGuard([], threshold).check(r, conversation=[], evidence=e).rule != "overlap" for r, e in data]
    assert sum(passed) / len(passed) >= 0.9
    assert calibrate_min_overlap(data, quantile=0.0) <= threshold <= calibrate_min_overlap(data, quantile=0.5)
    with pytest.raises(ValueError, match="got none"):
        calibrate_min_overlap([])


def test_company_facts_flatten_every_string_and_number() -> None:
    facts = company_facts_from(
        {"name": "X", "n": 3, "ok": True, "none": None, "a": [{"price": "$4.99", "price_usd": 4.99}, "y"]}
    )
    assert facts == ["X", "3", "$4.99", "4.99", "y"]
    demo = company_facts_from(COMPANY)
    assert "help@larkspurgoods.example" in demo and "1-800-LARKSPUR" in demo


def test_a_reply_cut_at_the_limit_ends_at_its_last_sentence_and_drops_the_name() -> None:
    assert clean_generated_text(" Thanks, {{Name}}! Your order  ships today. It will", ended=False) == (
        "Thanks! Your order ships today."
    )
    assert clean_generated_text("It will", ended=True) == "It will"


def test_control_characters_a_model_decoded_never_reach_the_reply() -> None:
    # a byte-level tokenizer decodes any byte: NUL, BEL, an escape, a stray surrogate
    assert clean_generated_text("Your order\x00 ships\x07 today.\x1b", ended=True) == "Your order ships today."
    assert clean_generated_text("Line one.\nLine\ttwo.\ud800", ended=True) == "Line one. Line two."
