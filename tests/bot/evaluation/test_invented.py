"""The evaluation's own count of invented values: what it finds, what grounds a value, and
that it can disagree with the grounding guard."""

import pytest

from bot.evaluation.invented import invented_values, values_in
from finetune.guard import GroundingGuard

QUESTION = "how long do refunds take"
EVIDENCE = ["Refunds take a few business days. Visit the help centre for details."]


def kinds(text: str) -> list[tuple[str, str]]:
    return [(v.kind, v.text) for v in values_in(text)]


def test_each_kind_of_value_is_found_once():
    text = (
        "Order {{Order Number}} ships on March 5, 2026 at 3 pm; call +1 (555) 123-4567 or mail "
        "help@shop.com, see www.shop.com/returns. Refund $1,499.00 (10% off), code 40318275."
    )
    assert kinds(text) == [
        ("placeholder", "{{Order Number}}"),
        ("email", "help@shop.com"),
        ("url", "www.shop.com/returns."),
        ("date", "March 5, 2026"),
        ("amount", "$1,499.00"),
        ("percent", "10%"),
        ("time", "3 pm"),
        ("phone", "+1 (555) 123-4567"),
        ("digits", "40318275"),
    ]


def test_plain_text_names_no_value():
    assert values_in("I can help you with that. Could you tell me more?") == []


@pytest.mark.parametrize(
    ("reply", "source"),
    [
        ("A refund of $25.00 is on its way.", "refunds up to 25 USD"),
        ("Your order 40318275 has shipped.", "where is order #40318275"),
        ("Open {{Account Settings}} to change it.", "Go to {{account   settings}}."),
        ("Write to help@shop.com.", "Contact HELP@shop.com for help"),
        ("It costs 1,499 dollars.", "The price is $1499."),
    ],
)
def test_a_value_the_sources_name_in_any_writing_is_not_invented(reply, source):
    assert invented_values(reply, [source]) == []


def test_values_absent_from_the_question_and_the_evidence_are_invented():
    found = invented_values("Your refund of $26 for {{Order Number}} arrives in 14 days.", ["order 123", "refunds"])
    assert [(v.kind, v.key) for v in found] == [("placeholder", "{{order number}}"), ("amount", "26"), ("digits", "14")]


@pytest.mark.parametrize(
    "reply",
    [
        "Refunds take 14 business days.",
        "Call us between 9 am and 5 pm.",
        "Your refund of 20% is on its way.",
        "See {{Refund Policy}} for details.",
    ],
)
def test_it_counts_values_the_guard_lets_through(reply):
    # a metric that reused the guard's extractor would score these replies zero by construction
    guard = GroundingGuard([], 0.0)
    assert guard.check(reply, conversation=[QUESTION], evidence=EVIDENCE).ok
    assert invented_values(reply, [QUESTION, *EVIDENCE])
