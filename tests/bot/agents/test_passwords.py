"""Password hashes: scrypt with its parameters in the stored string, salted, checked in
constant time; malformed stored strings match nothing; the strength rule."""

from __future__ import annotations

import pytest

from bot.agents import InvalidAgentInputError, check_password_strength, hash_password, verify_password


def test_a_hash_carries_its_parameters_and_verifies_only_its_password() -> None:
    stored = hash_password("correct horse battery")
    kind, n, r, p, salt, key = stored.split("$")
    assert (kind, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert salt and key and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("", stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("correct horse battery") != hash_password("correct horse battery")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain text",
        "bcrypt$16384$8$1$AAAA$AAAA",
        "scrypt$16384$8$1$not base64!$AAAA",
        "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # n not a power of two
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # more work than any hash of ours asks
        "scrypt$16384$8$1$$",
    ],
)
def test_a_malformed_stored_hash_matches_nothing(stored: str) -> None:
    assert not verify_password("correct horse battery", stored)


def test_non_text_never_verifies() -> None:
    stored = hash_password("correct horse battery")
    assert not verify_password(None, stored)  # type: ignore[arg-type]
    assert not verify_password(b"correct horse battery", stored)  # type: ignore[arg-type]


def test_strength_wants_ten_to_1024_characters_of_text() -> None:
    check_password_strength("x" * 10)
    check_password_strength("x" * 1024)
    with pytest.raises(InvalidAgentInputError, match="at least 10"):
        check_password_strength("short pw")
    with pytest.raises(InvalidAgentInputError, match="at most 1024"):
        check_password_strength("x" * 1025)
    with pytest.raises(InvalidAgentInputError, match="text"):
        check_password_strength(1234567890123)  # type: ignore[arg-type]
