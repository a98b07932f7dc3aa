"""The helpers the platform adapters share: long replies cut where a reader expects,
lengths counted the way platforms count them, and odd JSON read as absent."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.channels.payloads import id_of, obj, objects, secret_value, split_text, text_of, truncate, truncate_utf8


def test_a_short_text_is_one_piece():
    assert split_text("hello", 10) == ["hello"]
    assert split_text("", 10) == [""]
    assert split_text("x" * 10, 10) == ["x" * 10]


def test_a_long_text_is_cut_at_a_line_break_then_a_space_then_anywhere():
    assert split_text("aaaa bbbb\ncccc dddd", 12) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("aaaa bbbb cccc", 12) == ["aaaa bbbb", "cccc"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_no_piece_is_empty():
    assert split_text("x" * 10 + " ", 10) == ["x" * 10]
    assert split_text("a" * 8 + " " * 12 + "b", 10) == ["a" * 8, "b"]


def test_no_piece_is_longer_than_the_limit():
    text = " ".join(f"w{i}" * (i % 7 + 1) for i in range(500))
    pieces = split_text(text, 100)
    assert all(0 < len(p) <= 100 for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_truncation_counts_characters_or_bytes():
    assert truncate("Returns and exchanges", 20) == "Returns and exchang…"
    assert truncate("Refunds", 20) == "Refunds"
    assert truncate_utf8("ab€", 4) == "ab"  # the euro sign is 3 bytes: not split
    assert truncate_utf8("ab€", 5) == "ab€"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(123, "123"), (-100123, "-100123"), ("abc", "abc"), ("", None), (True, None), (1.5, None), (None, None)],
)
def test_ids_are_text(value, expected):
    assert id_of(value) == expected


def test_odd_shapes_read_as_empty():
    assert obj([1]) == {} and obj("x") == {} and obj({"a": 1}) == {"a": 1}
    assert objects({"a": 1}) == [] and objects([{"a": 1}, 2, "x", None]) == [{"a": 1}]
    assert text_of("  ") is None and text_of(5) is None and text_of(" hi ") == " hi "


def test_an_empty_secret_is_no_secret():
    assert secret_value(None) is None
    assert secret_value(SecretStr("")) is None
    assert secret_value(SecretStr("k")) == "k"
