"""PII scrubbing for fine-tuning data: `finetune.scrub` over the product's one scrubber
(fast: regular expressions and a name list only)."""

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
        "Express shipping costs more than Standard.",
    ],
)
def test_capitalised_words_without_a_name_cue_are_left_alone(text):
    assert scrub(text) == (text, {})


def test_the_companys_own_words_and_contact_details_are_never_scrubbed():
    text = (
        "Good morning Larkspur! This is Larkspur Goods support. Write to help@larkspurgoods.example; "
        "ParcelCo or Atlas Post deliver it. Thanks, ParcelCo!"
    )
    scrubbed, counts = scrub(text, protect=COMPANY)
    assert scrubbed == text and counts == {}
    # a customer's own email next to the company's is still scrubbed
    scrubbed, counts = scrub("copy help@larkspurgoods.example and me at jo@x.com", protect=COMPANY)
    assert scrubbed == "copy help@larkspurgoods.example and me at {{Email}}"
    assert counts == {"email": 1}


def test_a_name_found_once_is_masked_wherever_else_it_appears_in_the_conversation():
    names = find_names("Hello, my name is Anna Kowalski.")
    assert names == ["Anna Kowalski"]
    scrubbed, counts = scrub(
        "Anna Kowalski, your refund is on its way. Annapolis is not Anna Kowalski's home.", known_names=names
    )
    assert scrubbed == "{{Name}}, your refund is on its way. Annapolis is not {{Name}}'s home."
    assert counts == {"name": 2}


def test_each_part_of_a_known_name_is_masked_too():
    scrubbed, counts = scrub("Thanks so much! What is your membership level, Minh?", known_names=["Crystal Minh"])
    assert scrubbed == "Thanks so much! What is your membership level, {{Name}}?"
    assert counts == {"name": 1}


def test_a_first_name_from_the_name_list_is_masked_without_a_cue():
    assert scrub("My order is late and Jessica said it shipped") == (
        "My order is late and {{Name}} said it shipped",
        {"name": 1},
    )


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("my username is tgarcia512", "my username is {{Username}}", "username"),
        ("Send it to 55 Main St, Apt 4 please", "Send it to {{Street Address}} please", "street_address"),
        ("UPS says 1Z999AA10123456784 is late", "UPS says {{Tracking Number}} is late", "tracking_number"),
        ("refund to IBAN GB82 WEST 1234 5698 7654 32", "refund to IBAN {{IBAN}}", "iban"),
        ("acct no. 4459221087 please", "acct no. {{Account Number}} please", "account_number"),
    ],
)
def test_the_fine_tuning_scrubber_covers_what_the_index_scrubber_covers(text, expected, kind):
    assert scrub(text) == (expected, {kind: 1})


def test_placeholders_already_in_the_text_are_kept():
    text = "Hi {{Name}}, order {{Order Number}} shipped."
    assert scrub(text) == (text, {})
