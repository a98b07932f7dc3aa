"""What counts as a message, before any model runs."""

import pytest

from bot.dialogue import validate_message
from bot.errors import InvalidMessageError, MessageTooLongError


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00\x07"])
def test_empty_or_whitespace_messages_are_refused(text):
    with pytest.raises(InvalidMessageError, match="empty"):
        validate_message(text, 4000)


def test_a_message_over_the_limit_names_the_limit():
    with pytest.raises(MessageTooLongError, match="4000"):
        validate_message("a" * 4001, 4000)


def test_control_characters_are_dropped_and_text_is_kept():
    assert validate_message("  where\x00 is my\x1b order?\n", 4000) == "where is my order?"


def test_emoji_and_other_scripts_pass_through():
    assert validate_message("مرحبا 👋", 4000) == "مرحبا 👋"
