"""retrieval.entities: finding and masking personal values."""

from __future__ import annotations

import pytest

from retrieval.entities import find_entities, mask_entities, masked_card, placeholders_in, redact_card_numbers


@pytest.mark.parametrize(
    "text, value",
    [
        ("My order #40318275 hasn't arrived", "#40318275"),
        ("where is ORD-40318275?", "ORD-40318275"),
        ("order 732201349959 please", "732201349959"),
        ("Order ID: 3348917502", "3348917502"),
    ],
)
def test_find_entities_reads_order_numbers_in_common_spellings(text: str, value: str) -> None:
    assert find_entities(text) == {"order_id": value}


@pytest.mark.parametrize(
    "text, value",
    [
        ("call +1 415-555-0123 please", "+1 415-555-0123"),
        ("my number is (977) 625-2661", "(977) 625-2661"),
        ("ring 020 7946 0958", "020 7946 0958"),
        ("it's 415.555.0123", "415.555.0123"),
    ],
)
def test_find_entities_reads_phone_numbers_not_as_order_numbers(text: str, value: str) -> None:
    assert find_entities(text) == {"phone": value}


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"])
def test_find_entities_reads_card_numbers_not_as_order_numbers(card: str) -> None:
    assert find_entities(f"charge card {card} again") == {"card_number": card}


def test_find_entities_reads_email_without_taking_its_digits_as_an_order_number() -> None:
    assert find_entities("I'm cminh730@email.com") == {"email": "cminh730@email.com"}
    assert find_entities("mail jo.doe+shop@mail.co.uk now") == {"email": "jo.doe+shop@mail.co.uk"}


def test_find_entities_reads_several_types_and_the_last_of_each_wins() -> None:
    found = find_entities("order 11111111, no wait, order #22222222; email a@b.com, phone 555-123-4567")
    assert found == {"order_id": "#22222222", "email": "a@b.com", "phone": "555-123-4567"}


@pytest.mark.parametrize(
    "text",
    [
        "I ordered 2 items on 2019-11-06",
        "zip 75227",
        "it cost $94.50 and took 10 days",
        "my order hasn't arrived",
    ],
)
def test_find_entities_leaves_quantities_dates_and_short_numbers_alone(text: str) -> None:
    assert find_entities(text) == {}
    assert mask_entities(text) == (text, {})


def test_mask_entities_replaces_each_value_with_its_placeholder_and_counts_them() -> None:
    masked, counts = mask_entities(
        "Order #40318275 and 732201349959 for a@b.com, call (977) 625-2661, card 4111 1111 1111 1111"
    )
    assert masked == (
        "Order {{Order Number}} and {{Order Number}} for {{Email}}, call {{Phone Number}}, card {{Card Number}}"
    )
    assert counts == {"order_id": 2, "email": 1, "phone": 1, "card_number": 1}


def test_mask_entities_is_idempotent_on_masked_text() -> None:
    once, _ = mask_entities("order #40318275 for a@b.com")
    assert mask_entities(once) == (once, {})


def test_placeholders_in_lists_placeholders_in_order_as_written() -> None:
    text = "Track {{Order Number}} on {{ Website URL }} or call {{Customer Support Phone Number}}"
    assert placeholders_in(text) == [
        "{{Order Number}}",
        "{{ Website URL }}",
        "{{Customer Support Phone Number}}",
    ]


@pytest.mark.parametrize("card", ["4111 1111 1111 4242", "4111-1111-1111-4242", "4111111111114242"])
def test_a_card_number_is_shown_by_its_last_four_digits_only(card: str) -> None:
    assert masked_card(card) == "**** **** **** 4242"
    assert masked_card(masked_card(card)) == "**** **** **** 4242"


def test_redact_card_numbers_keeps_the_last_four_and_the_rest_of_the_text() -> None:
    text = "charge 4111 1111 1111 1111 or 378282246310005, not order #40318275"
    assert redact_card_numbers(text) == ("charge **** **** **** 1111 or **** **** **** 0005, not order #40318275")
