"""retrieval.text: what plain text keeps and loses."""

from retrieval.text import without_control_characters


def test_control_characters_and_lone_surrogates_go_newlines_and_tabs_stay() -> None:
    assert without_control_characters("a\x00b\x07c\x1b\r\nd\te\ud800f\u00e9") == "abc\nd\tef\u00e9"


def test_text_without_them_is_unchanged() -> None:
    text = "Where is order #40318275? Ça va — merci 🙂"
    assert without_control_characters(text) == text
