"""Plain text as csbot keeps it: no control characters but newlines and tabs."""

from __future__ import annotations

import unicodedata


def without_control_characters(text: str) -> str:
    """`text` without control characters (Unicode Cc) and lone surrogates (Cs), newlines
    and tabs kept. Customers' messages, platform messages and generated replies all pass
    through it before they are stored: none of those belongs in a reply, and PostgreSQL
    refuses NUL in text."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
