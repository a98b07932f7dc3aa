"""Values a reply names that neither the customer nor the evidence gave: the evaluation's own
count of invented values.

Written apart from the grounding guard (`finetune.guard`) on purpose: a metric that reused
the guard's extractor would agree with the guard by construction, and a reply the guard
passed would always score zero. These patterns are broader and blunter than the guard's:

- every run of digits, wherever it stands (an order number, a price, a quantity, a year);
- amounts with a currency sign or word, and percentages;
- clock times (`3 pm`, `14:30`) and dates (`2026-03-01`, `3/1/2026`, `March 1`, `1 March`);
- emails, URLs and web addresses (`www.example.com`, `example.com/returns`);
- phone numbers written with separators;
- `{{Placeholders}}` (the masked slots of Bitext-style data).

A value is invented when its key is in none of the sources. Numbers are keyed by their
digits alone, so `$1,499.00` in a reply is grounded by `1499.00` or `1,499.00` in the
evidence; text values are keyed lower-cased without surrounding punctuation. A month name
alone is not a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
_URL = re.compile(
    r"\b(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|co|uk|de|fr|app|shop)(?:/\S*)?\b",
    re.IGNORECASE,
)
_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    "sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE = re.compile(
    rf"\b\d{{4}}-\d{{1,2}}-\d{{1,2}}\b|\b\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}\b"
    rf"|\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b(?:,?\s+\d{{4}})?",
    re.IGNORECASE,
)
_TIME = re.compile(r"\b\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\.?)(?![a-z])|\b\d{1,2}:\d{2}\b", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d{1,4}\)?(?:[\s.-]\(?\d{2,4}\)?){2,5}(?![\w])")
_AMOUNT = re.compile(
    r"[$€£¥]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:dollars?|euros?|pounds?|usd|eur|gbp)\b",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"\b\d+(?:\.\d+)?\s?(?:%|percent\b)", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")

# most specific first: each pattern takes its text out before the next looks
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", _EMAIL),
    ("url", _URL),
    ("date", _DATE),
    ("amount", _AMOUNT),
    ("percent", _PERCENT),
    ("time", _TIME),
    ("phone", _PHONE),
)
_NUMERIC = {"date", "time", "phone", "amount", "percent", "digits"}


@dataclass(frozen=True)
class Value:
    """One value a text names: its kind, the text as written, and the key it is matched by."""

    kind: str
    text: str
    key: str


def values_in(text: str) -> list[Value]:
    """Every value `text` names (see the module docstring for the kinds)."""
    found = [
        Value("placeholder", m.group(0), "{{" + " ".join(m.group(1).lower().split()) + "}}")
        for m in _PLACEHOLDER.finditer(text)
    ]
    rest = _PLACEHOLDER.sub(" ", text)
    for kind, pattern in _KINDS:
        for m in pattern.finditer(rest):
            found.append(Value(kind, m.group(0), _key(kind, m.group(0))))
        rest = pattern.sub(" ", rest)
    found += [Value("digits", m.group(0), m.group(0)) for m in _DIGITS.finditer(rest)]
    return [v for v in found if v.key]


def _key(kind: str, written: str) -> str:
    if kind in _NUMERIC:
        digits = re.sub(r"\D", "", written)
        if kind == "amount" and "." in written:  # $25.00 and 25 name the same amount
            whole, _, cents = re.sub(r"[^\d.]", "", written).partition(".")
            digits = whole if set(cents) <= {"0"} else whole + cents
        return digits
    return written.lower().strip(".,;:!?()[]<>\"'").removeprefix("https://").removeprefix("http://").rstrip("/")


def _source_keys(sources: Iterable[str]) -> set[str]:
    keys: set[str] = set()
    for s in sources:
        for v in values_in(s):
            keys.add(v.key)
        keys.update(_DIGITS.findall(s))  # a number the source writes in any way grounds its digits
    return keys


def invented_values(reply: str, sources: Sequence[str]) -> list[Value]:
    """The values of `reply` found in none of `sources` (the customer's words, the evidence)."""
    known = _source_keys(sources)
    return [v for v in values_in(reply) if v.key not in known]
