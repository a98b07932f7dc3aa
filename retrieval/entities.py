"""Personal values in support text: find them (slots) and mask them (typed placeholders).

These patterns serve the dialogue manager: it fills slots from customer turns
(`find_entities`) and masks a turn before encoding it (`mask_entities`), as the indexed
transcripts were masked. Ingestion and the fine-tuning pipeline use the fuller scrubber in
`retrieval.pii`, which builds on the same email, card, phone and order patterns and adds
names, usernames, addresses and more. Placeholders use the `{{Order Number}}` style of the
Bitext corpus so imported and own data read alike. A card number is never stored or shown
whole: `masked_card` keeps only its last four digits.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class EntityType:
    slot: str  # the dialogue slot name
    placeholder: str  # how it appears in masked text
    pattern: re.Pattern[str]


EMAIL = EntityType("email", "{{Email}}", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b"))
CARD = EntityType("card_number", "{{Card Number}}", re.compile(r"\b(?:\d[ -]?){12,15}\d\b"))
PHONE = EntityType(
    "phone",
    "{{Phone Number}}",
    re.compile(r"(?<![\w#])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}\b"),
)
# Order numbers: "#40318275", "40318275", "ORD-40318275" (6 to 12 digits; Bitext uses 12).
ORDER_ID = EntityType(
    "order_id",
    "{{Order Number}}",
    re.compile(r"(?:\b[A-Z]{2,4}-|#|\b)\d{6,12}\b"),
)

# Order matters: emails before numbers, cards and phones before bare order numbers.
ENTITY_TYPES: tuple[EntityType, ...] = (EMAIL, CARD, PHONE, ORDER_ID)
PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
SLOT_BY_PLACEHOLDER = {e.placeholder: e.slot for e in ENTITY_TYPES}


def find_entities(text: str) -> dict[str, str]:
    """Slot values in `text` (the last occurrence of each type wins)."""
    found: dict[str, str] = {}
    remaining = text
    for etype in ENTITY_TYPES:
        for m in etype.pattern.finditer(remaining):
            found[etype.slot] = m.group(0).strip()
        remaining = etype.pattern.sub(" ", remaining)
    return found


def mask_entities(text: str) -> tuple[str, Counter[str]]:
    """`text` with every personal value replaced by its placeholder, and counts per slot."""
    counts: Counter[str] = Counter()
    for etype in ENTITY_TYPES:
        text, n = etype.pattern.subn(etype.placeholder, text)
        if n:
            counts[etype.slot] += n
    return text, counts


def placeholders_in(text: str) -> list[str]:
    """Placeholders such as `{{Order Number}}` in `text`, in order, as written."""
    return [m.group(0) for m in PLACEHOLDER_RE.finditer(text)]


def masked_card(card: str) -> str:
    """A card number as it may be stored or shown: `**** **** **** 4242` (the last four
    digits, as on a receipt). Masking a masked number changes nothing."""
    return f"**** **** **** {re.sub(r'[^0-9]', '', card)[-4:]}"


def redact_card_numbers(text: str) -> str:
    """`text` with every card number replaced by its `masked_card` form."""
    return CARD.pattern.sub(lambda m: masked_card(m.group(0)), text)
