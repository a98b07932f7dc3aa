"""PII scrubbing for fine-tuning data (fast: regular expressions only)."""

import pytest

from finetune.scrub import find_names, scrub

COMPANY = ["Larkspur Goods", "help@larkspurgoods.example", "ParcelCo", "Atlas Post"]


@pytest.mark.parametrize(
    ("text", "expected", "slot"),
    [
        ("my email is jo.doe+orders@example.com", "my email is {{Email}}", "email"),
        ("call me on 555-123-4567 please", "call me on {{Phone Number}} please", "phone"),
        ("card 4111 1111 1111 1111 was charged twice", "card {{Card Number}} was charged twice", "card_number"),
        ("where is order #40318275?", "where is order {{Order Number}}?", "order_id"),
        ("ORD-40318275 never came", "{{Order Number}} never came", "order_id"),
    ],
)
def test_each_pii_type_becomes_its_placeholder_and_is_counted(text, expected, slot):
    scrubbed, counts = scrub(text)
    assert scrubbed == expected
    assert counts == {slot: 1}


def test_counts_add_up_per_type_within_one_text():
    scrubbed, counts = scrub("orders #40318275 and #40318276, mail a@b.com or c@d.org")
    assert scrubbed == "orders {{Order Number}} and {{Order Number}}, mail {{Email}} or {{Email}}"
    assert counts == {"order_id": 2, "email": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi, my name is Anna Smith and I need help", "Hi, my name is {{Name}} and I need help"),
        ("my name's Tomas.", "my name's {{Name}}."),
        ("I'm Maria Lopez.", "I'm {{Name}}."),
        ("i am Kevin", "i am {{Name}}"),
        ("This is Sarah from accounts.", "This is {{Name}} from accounts."),
        ("Hi Anna, thanks for waiting.", "Hi {{Name}}, thanks for waiting."),
        ("Thanks, Tom!", "Thanks, {{Name}}!"),
        ("Thank you Priya.", "Thank you {{Name}}."),
        ("Dear Mr Okafor,", "Dear Mr {{Name}},"),
    ],
)
def test_names_in_the_supported_patterns_become_the_name_placeholder(text, expected):
    scrubbed, counts = scrub(text)
    assert scrubbed == expected
    assert counts == {"name": 1}


@pytest.mark.parametrize(
    "text",
    [
        "I'm Sorry.",
        "I'm Fine, thanks",
        "I'm Looking for a kettle",  # capitalised but not followed by punctuation
        "i'm going to Paris next week",
        "Hello Team,",
        "Hi there, this is support.",
        "Thanks Again!",
        "My order is late and Anna said it shipped",  # a name with no cue is not guessed
        "Express shipping costs more than Standard.",
    ],
)
def test_capitalised_words_without_a_name_cue_are_left_alone(text):
    assert scrub(text) == (text, {})


def test_the_companys_own_words_and_contact_details_are_never_scrubbed():
    text = ("Good morning Larkspur! This is Larkspur Goods support. Write to help@larkspurgoods.example; "
            "ParcelCo or Atlas Post deliver it. Thanks, ParcelCo!")
    scrubbed, counts = scrub(text, protect=COMPANY)
    assert scrubbed == text and counts == {}
    # a customer's own email next to the company's is still scrubbed
    scrubbed, counts = scrub("copy help@larkspurgoods.example and me at jo@x.com", protect=COMPANY)
    assert scrubbed == "copy help@larkspurgoods.example and me at {{Email}}"
    assert counts == {"email": 1}


def test_a_name_found_once_is_masked_wherever_else_it_appears_in_the_conversation():
    names = find_names("Hello, my name is Anna Kowalski.")
    assert names == ["Anna Kowalski"]
    scrubbed, counts = scrub("Anna Kowalski, your refund is on its way. Annabel is not Anna Kowalski's twin.",
                             known_names=names)
    assert scrubbed == "{{Name}}, your refund is on its way. Annabel is not {{Name}}'s twin."
    assert counts == {"name": 2}


def test_placeholders_already_in_the_text_are_kept():
    text = "Hi {{Name}}, order {{Order Number}} shipped."
    assert scrub(text) == (text, {})
