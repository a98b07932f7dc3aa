"""retrieval.pii: the one PII scrubber (regular expressions and a name list: fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.pii import PII_KINDS, PLACEHOLDERS, Gazetteer, PiiScrubber, default_gazetteer, iban_is_valid

REPO = Path(__file__).resolve().parents[2]
COMPANY = ["Larkspur Goods", "help@larkspurgoods.example", "1-800-LARKSPUR", "ParcelCo", "Atlas Post", "Columbus, Ohio"]


def scrub(text: str, protect: list[str] | None = None) -> str:
    return PiiScrubber(protect=protect or ()).scrub(text)[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at dana.whitfield@gmail.com", "mail me at {{Email}}"),
        ("card 4111 1111 1111 1111 was charged twice", "card {{Card Number}} was charged twice"),
        ("call me on (415) 555-0132 after 5", "call me on {{Phone Number}} after 5"),
        ("my number is +44 20 7946 0958", "my number is {{Phone Number}}"),
        ("ring 07700 900123 please", "ring {{Phone Number}} please"),
        ("where is order #40318275?", "where is order {{Order Number}}?"),
        ("refund to GB82 WEST 1234 5698 7654 32 instead", "refund to {{IBAN}} instead"),
        ("IBAN: CH9300762011623852957", "IBAN: {{IBAN}}"),
        ("UPS says 1Z999AA10123456784 is late", "UPS says {{Tracking Number}} is late"),
        ("registered mail RR123456785DE is lost", "registered mail {{Tracking Number}} is lost"),
        ("tracking number 7489 2736 4512 from FedEx", "tracking number {{Tracking Number}} from FedEx"),
        ("the tracking says 9400111899223817171234", "the tracking says {{Tracking Number}}"),
        ("my account number is 00123456789", "my account number is {{Account Number}}"),
        ("acct # 7781-2234-99 please", "acct # {{Account Number}} please"),
        ("Ship it to 1234 Elm Street today", "Ship it to {{Street Address}} today"),
        ("send it to 55 Main St, Apt 4?", "send it to {{Street Address}}?"),
        ("it went to 8865 lexington ave", "it went to {{Street Address}}"),
        ("PO Box 4417 is mine", "{{Street Address}} is mine"),
        ("zip code is 94110", "zip code is {{Zip Code}}"),
        ("Springfield, IL 62704", "Springfield, IL {{Zip Code}}"),
        ("postcode SW1A 1AA", "postcode {{Zip Code}}"),
        ("I'm @jsmith there", "I'm {{Username}} there"),
        ("username: cminh730", "username: {{Username}}"),
        ("my user name is mrogers", "my user name is {{Username}}"),
        ("cminh730", "{{Username}}"),
        ("Hi, my name is Priya Sharma and I need help", "Hi, my name is {{Name}} and I need help"),
        ("Spoke to Jessica yesterday", "Spoke to {{Name}} yesterday"),
        ("My husband Carlos Mendoza ordered it", "My husband {{Name}} ordered it"),
        ("Could you check it for Mrs Nakamura?", "Could you check it for Mrs {{Name}}?"),
        ("Will Turner here, no email yet", "{{Name}} here, no email yet"),
        ("i am jose rodriguez, my order is late", "i am {{Name}}, my order is late"),
        ("Crystal Minh", "{{Name}}"),
        ("alessandro phoenix", "{{Name}}"),
        ("The parcel went to Kenji Watanabe next door", "The parcel went to {{Name}} next door"),
    ],
)
def test_each_kind_of_personal_value_becomes_its_placeholder(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Will this kettle work on an induction hob?",
        "May I change the delivery address?",
        "Mark the second item as a gift please.",
        "Bill me for the difference, that's fine.",
        "Is the Rose Gold toaster back in stock?",
        "Grace period for returns is 30 days, right?",
        "Hope you can help, the lid cracked.",
        "Do you have an outlet in Georgia or Virginia?",
        "Ty for the help!",
        "I bought 2 items on the way home.",
        "The SKU on the box is KT-2045 and the model is X12 Pro.",
        "I placed the order on 2024-03-15 and paid $24.99 for Next Day.",
        "card ending in 4242 was declined",
        "my login details are wrong",
        "Your ticket number is 48213.",
        "The tracking page shows no updates.",
        "Is the 4 Way power strip covered?",
    ],
)
def test_words_numbers_and_codes_that_are_no_ones_data_are_left_alone(text: str) -> None:
    assert PiiScrubber().scrub(text) == (text, {})


def test_an_iban_must_pass_its_checksum() -> None:
    assert iban_is_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_is_valid("GB82 WEST 1234 5698 7654 33")  # one digit mistyped
    assert "iban" not in PiiScrubber().scrub("refund to GB82 WEST 1234 5698 7654 33")[1]


def test_a_cue_led_finding_wins_over_a_bare_shape() -> None:
    # twelve digits in groups of four read as a phone number, but the cue says tracking
    assert PiiScrubber().scrub("tracking number 7489 2736 4512")[1] == {"tracking_number": 1}
    assert PiiScrubber().scrub("account 88201734 is locked")[1] == {"account_number": 1}


def test_counts_are_per_kind() -> None:
    text = "I'm Dmitri. Orders #40318275 and #40318276, mail a@b.com, zip code 94110"
    assert PiiScrubber().scrub(text) == (
        "I'm {{Name}}. Orders {{Order Number}} and {{Order Number}}, mail {{Email}}, zip code {{Zip Code}}",
        {"name": 1, "order_id": 2, "email": 1, "zip_code": 1},
    )


def test_the_companys_own_words_and_contact_details_are_never_masked() -> None:
    text = "Good morning Larkspur! Write to help@larkspurgoods.example or call 1-800-LARKSPUR; ParcelCo delivers."
    assert PiiScrubber(protect=COMPANY).scrub(text) == (text, {})
    # the customer's own email next to the company's is still masked
    assert scrub("copy help@larkspurgoods.example and me at jo@x.com", COMPANY) == (
        "copy help@larkspurgoods.example and me at {{Email}}"
    )


def test_placeholders_are_kept_unless_they_hold_a_value() -> None:
    assert PiiScrubber().scrub("Hi {{Name}}, order {{Order Number}} shipped.") == (
        "Hi {{Name}}, order {{Order Number}} shipped.",
        {},
    )
    assert scrub("your order number {{732201349959}} is on its way") == (
        "your order number {{Order Number}} is on its way"
    )


def test_a_name_or_username_given_once_is_masked_in_every_turn_of_the_conversation() -> None:
    turns = [
        "sure, may I have your name please?",
        "Crystal Minh",
        "Account has been pulled up for Crystal Minh.",
        "thanks so much! What is your membership level Crystal?",
        "my email is cminh730@email.com",
        "ok, is cminh730 your username?",
    ]
    assert [t for t, _ in PiiScrubber().scrub_conversation(turns)] == [
        "sure, may I have your name please?",
        "{{Name}}",
        "Account has been pulled up for {{Name}}.",
        "thanks so much! What is your membership level {{Name}}?",
        "my email is {{Email}}",
        "ok, is {{Username}} your username?",
    ]


def test_a_short_answer_to_a_name_question_is_a_name_even_when_the_list_lacks_it() -> None:
    turns = ["who am I speaking with?", "Zephyrine Okonkwo-Baptiste", "Zephyrine Okonkwo-Baptiste again, hi"]
    assert [t for t, _ in PiiScrubber().scrub_conversation(turns)] == [
        "who am I speaking with?",
        "{{Name}}",
        "{{Name}} again, hi",
    ]


def test_a_lone_word_only_a_greeting_called_a_name_is_not_carried_to_other_turns() -> None:
    # "Larkspur" after "Good morning" may be the shop: masked there, not everywhere
    turns = ["Good morning Larkspur", "Hello! You're chatting with Larkspur Goods support."]
    assert [t for t, _ in PiiScrubber().scrub_conversation(turns)] == [
        "Good morning {{Name}}",
        "Hello! You're chatting with Larkspur Goods support.",
    ]


def test_the_shipped_name_list_holds_a_few_thousand_names_and_flags_the_ones_that_are_words() -> None:
    gazetteer = default_gazetteer()
    assert 3000 <= len(gazetteer.names) <= 6000
    assert {gazetteer.kind(w) for w in ("Will", "May", "Grace", "Georgia", "Ty")} == {"word"}
    assert {gazetteer.kind(w) for w in ("Jessica", "Alessandro", "Priya", "kevin")} == {"name"}
    assert gazetteer.kind("Kettle") is None


def test_a_gazetteer_file_marks_word_names_with_a_tab(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_text("# comment\nAnna\nWill\tword\n\n", encoding="utf-8")
    assert Gazetteer.read(path) == Gazetteer(frozenset({"Anna", "Will"}), frozenset({"Will"}))


def test_every_kind_has_a_placeholder_in_the_codebase_style() -> None:
    assert set(PII_KINDS) == set(PLACEHOLDERS)
    assert all(p.startswith("{{") and p.endswith("}}") for p in PLACEHOLDERS.values())
    assert PLACEHOLDERS["order_id"] == "{{Order Number}}" and PLACEHOLDERS["name"] == "{{Name}}"


def test_the_labelled_sample_is_well_formed_with_a_fixed_test_third() -> None:
    lines = (REPO / "data" / "pii_labelled.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) >= 150 and len({r["id"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"tune", "test"}
    assert 0.25 <= sum(r["split"] == "test" for r in rows) / len(rows) <= 0.4
    assert sum(not r["spans"] for r in rows) >= 50  # hard negatives
    for r in rows:
        for s in r["spans"]:
            assert r["text"][s["start"] : s["end"]] == s["text"] and s["kind"] in PII_KINDS, r["id"]
            if s["kind"] == "iban":
                assert iban_is_valid(s["text"]), r["id"]
    assert {s["kind"] for r in rows for s in r["spans"]} == set(PII_KINDS)
