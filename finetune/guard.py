"""The grounding guard: a generated reply may only state what it was given.

Three checks, all cheap and pure Python (no torch):

- **entities**: a reply that names an order number, email, card or phone number, amount of
  money, date or URL must find that value in the conversation, the evidence or the
  company's own facts (`company.json`). Values are compared normalised: `#40318275`,
  `ORD-40318275` and `40318275` are one order; `$12.99`, `12.99 USD` and `12.99` one amount;
  `2026-03-02`, `03/02/2026`, `March 2` and `2 March 2026` one date. Placeholders
  (`{{Order Number}}`) are not values: the composer fills them from slots afterwards.
- **claims**: a reply that says an action is done ("I've cancelled ...", "we have issued
  ...") must find the same verb claimed in the evidence or the conversation. A model that
  learned agents' replies written after a real order lookup, refund or escalation would
  otherwise tell a customer that something happened which nobody did.
- **overlap**: the share of the reply's content words (lowercased, stop words removed) that
  occur in the evidence or the conversation. A reply below `min_overlap` says something the
  evidence does not; `calibrate_min_overlap` sets the threshold from real agent replies so
  that nearly all of them pass.

The guard judges a generated reply as `clean_generated_text` makes it: whitespace folded, a
reply cut at the token limit trimmed to its last whole sentence.

    guard = GroundingGuard(company_facts_from(company), min_overlap=0.45)
    verdict = guard.check(clean_generated_text(text, ended), conversation=[...], evidence=[...])
    if not verdict.ok: print(verdict.reason)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from retrieval.entities import CARD, EMAIL, ORDER_ID, PHONE, PLACEHOLDER_RE
from retrieval.text import without_control_characters

_MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_MONTH = (
    r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"

# dates: ISO, numeric with slashes, "March 2(, 2026)", "2(nd of) March( 2026)"
DATE_ISO_RE = re.compile(r"\b(?P<year>(?:19|20)\d{2})-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)\b")
DATE_SLASH_RE = re.compile(r"\b(?P<a>[0-3]?\d)/(?P<b>[0-3]?\d)/(?P<year>(?:19|20)?\d{2})\b")
DATE_MONTH_DAY_RE = re.compile(rf"\b{_MONTH}\s+{_DAY}\b(?:,?\s+{_YEAR}\b)?", re.IGNORECASE)
DATE_DAY_MONTH_RE = re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR}\b)?", re.IGNORECASE)
# money: "$12.99", "$ 1,200", "€5", "12.99 USD", "45 dollars"
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
AMOUNT_RE = re.compile(
    rf"(?:[$€£]\s?(?P<a>{_NUMBER}))|(?:\b(?P<b>{_NUMBER})\s?(?:usd|eur|gbp|cad|aud|dollars?|bucks|euros?|pounds?)\b)",
    re.IGNORECASE,
)
# URLs: with a scheme or www., or a bare domain with a common top-level domain
_TLDS = r"(?:com|org|net|io|co|us|uk|ca|au|de|fr|eu|info|biz|shop|store|app|dev|ai|example)"
URL_RE = re.compile(
    rf"\bhttps?://[^\s<>\"']+|\bwww\.[^\s<>\"']+|\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*\.{_TLDS}\b(?:/[^\s<>\"']*)?",
    re.IGNORECASE,
)
_ANY_NUMBER_RE = re.compile(_NUMBER)
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Words that carry no claim: a reply made of them is neither grounded nor ungrounded.
_STOP_WORDS_TEXT = """
a an the and or but if so of to in on at by for from with as is are was were be been being am it its
it's this that these those there here i i'm i'll i've i'd me my we we're we'll we've our ours us you
you're you'll you've your yours he she they them their do does did done have has had having can
could will would shall should may might must not no yes please thanks thank hi hello hey sorry just
also very really then than too what which who whom when where why how all any some each more most
other such only own same up down out about into over again once let let's get got sure ok okay
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

ENTITY_LABELS = {
    "email": "email",
    "url": "URL",
    "date": "date",
    "card": "card number",
    "phone": "phone number",
    "order": "order",
    "amount": "amount",
}


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's answer. `entities`: the values the reply names that nothing grounds (as
    written in the reply); `overlap`: share of its content words found in the evidence or
    the conversation; `rule`: which check failed ("entity", "claim", "overlap", "empty"), or None."""

    ok: bool
    reason: str | None
    entities: list[str] = field(default_factory=list)
    overlap: float = 1.0
    rule: str | None = None


def _dec(text: str) -> str | None:
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f").rstrip("0")


def _date_keys(m: re.Match[str], kind: str) -> set[tuple[int | None, int, int]]:
    """(year or None, month, day) readings of a date match (m/d/y and d/m/y for slashes)."""
    g = m.groupdict()
    year = int(g["year"]) if g.get("year") else None
    if year is not None and year < 100:
        year += 2000
    if kind == "iso":
        pairs = [(int(g["m"]), int(g["d"]))]
    elif kind == "slash":
        a, b = int(g["a"]), int(g["b"])
        pairs = [(a, b), (b, a)]
    else:
        pairs = [(_MONTHS[g["mon"].lower()[:3]], int(g["day"]))]
    return {(year, mo, d) for mo, d in pairs if 1 <= mo <= 12 and 1 <= d <= 31}


def _norm_url(url: str) -> str:
    url = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.lower())
    return url.rstrip(".,;:!?)]}'\"/")


def extract_entities(text: str) -> list[tuple[str, str, set]]:
    """The values `text` names, as (kind, text as written, normalised keys), placeholders
    skipped. Kinds: email, url, date, card, phone, order, amount. Each pattern removes what
    it matched before the next runs, so an email's domain is not also a URL, a phone number
    not also an order number."""
    rest = PLACEHOLDER_RE.sub(" ", text)
    found: list[tuple[str, str, set]] = []

    def take(kind: str, pattern: re.Pattern[str], keys) -> None:
        nonlocal rest
        for m in pattern.finditer(rest):
            k = keys(m)
            if k:
                found.append((kind, m.group(0).strip(), k))
        rest = pattern.sub(" ", rest)

    take("email", EMAIL.pattern, lambda m: {("email", m.group(0).lower())})
    take("url", URL_RE, lambda m: {("url", _norm_url(m.group(0)))})
    take("date", DATE_ISO_RE, lambda m: {("date", k) for k in _date_keys(m, "iso")})
    take("date", DATE_SLASH_RE, lambda m: {("date", k) for k in _date_keys(m, "slash")})
    take("date", DATE_MONTH_DAY_RE, lambda m: {("date", k) for k in _date_keys(m, "name")})
    take("date", DATE_DAY_MONTH_RE, lambda m: {("date", k) for k in _date_keys(m, "name")})

    def digits(m: re.Match[str]) -> set[tuple[str, str]]:
        return {("digits", re.sub(r"\D", "", m.group(0)))}

    take("card", CARD.pattern, digits)
    take("phone", PHONE.pattern, digits)
    take("order", ORDER_ID.pattern, digits)
    take("amount", AMOUNT_RE, lambda m: {("number", _dec(m.group("a") or m.group("b")))} - {("number", None)})
    return found


def _grounding_keys(text: str) -> set:
    """Every normalised value `text` could ground: its entities; every digit run (so
    "ORD-40318275" grounds "#40318275"); every number written with cents ("4.99" grounds
    "$4.99"; a `price_usd` of 50.0 grounds "$50"). A bare integer in running text ("3-5 days")
    does not ground an amount ("$5")."""
    keys: set = set()
    for kind, _, k in extract_entities(text):
        keys |= k
        if kind == "date":
            # a source date with a year also grounds the same day named without one
            keys |= {("date", (None, mo, d)) for _, (_, mo, d) in k}
    bare = PLACEHOLDER_RE.sub(" ", text)
    for m in _ANY_NUMBER_RE.finditer(bare):
        keys.add(("digits", m.group(0).replace(",", "").replace(".", "")))
        if "." in m.group(0):
            keys.add(("number", _dec(m.group(0))))
    return keys


def content_tokens(text: str) -> list[str]:
    """Lowercased words of `text` minus stop words and placeholders."""
    return [w for w in _WORD_RE.findall(PLACEHOLDER_RE.sub(" ", text).lower()) if w not in STOP_WORDS]


def overlap(reply: str, sources: Iterable[str]) -> float:
    """Share of `reply`'s content tokens found among `sources`' words (1.0 when it has none)."""
    tokens = content_tokens(reply)
    if not tokens:
        return 1.0
    vocab: set[str] = set()
    for s in sources:
        vocab.update(_WORD_RE.findall(s.lower()))
    return sum(t in vocab for t in tokens) / len(tokens)


# "I've cancelled", "we have just issued", "I’ve gone ahead and refunded": a first-person
# claim that something is done; the verb is what must be grounded
CLAIM_RE = re.compile(
    r"\b(?:i|we)\s*(?:'ve|’ve|\s+have)\s+(?:(?:just|already|now|also|gone ahead and)\s+)*([a-z]+)",
    re.IGNORECASE,
)


# past participles that do not end in -ed ("I've sent", "we have made")
IRREGULAR_PARTICIPLES = frozenset(
    [
        "sent",
        "made",
        "put",
        "set",
        "got",
        "gotten",
        "done",
        "taken",
        "given",
        "written",
        "gone",
        "found",
        "seen",
        "spoken",
        "told",
        "paid",
        "kept",
        "left",
        "brought",
        "bought",
        "begun",
        "run",
        "held",
        "shown",
        "sold",
        "won",
    ]
)


def claimed_actions(text: str) -> list[str]:
    """The verbs of the first-person completed-action claims in `text`, lowercased, in order
    ("I have a question" claims nothing: only past participles count)."""
    verbs = (m.group(1).lower() for m in CLAIM_RE.finditer(text))
    return [v for v in verbs if v.endswith("ed") or v in IRREGULAR_PARTICIPLES]


class GroundingGuard:
    """Rejects replies that name values from nowhere, claim actions nobody took, or stray
    from the evidence. `check_claims=False` leaves the claim check out."""

    def __init__(self, company_facts: Iterable[str], min_overlap: float, *, check_claims: bool = True):
        self.company_facts = [str(f) for f in company_facts]
        self.min_overlap = float(min_overlap)
        self.check_claims = check_claims
        self._fact_keys: set = set()
        self._fact_text = " ".join(self.company_facts).lower()
        for fact in self.company_facts:
            self._fact_keys |= _grounding_keys(fact)

    def check(self, reply: str, *, conversation: Sequence[str], evidence: Sequence[str]) -> GuardVerdict:
        if not reply.strip():
            return GuardVerdict(False, "the reply is empty", [], 0.0, "empty")
        if not any(c.isalpha() for c in reply):
            # punctuation or digits only: an untrained or broken model, not an answer
            return GuardVerdict(False, "the reply has no words", [], 0.0, "empty")
        sources = [*conversation, *evidence]
        score = overlap(reply, sources)
        keys = set(self._fact_keys)
        for s in sources:
            keys |= _grounding_keys(s)
        source_text = " ".join(sources).lower() + " " + self._fact_text
        ungrounded: list[tuple[str, str]] = []
        for kind, written, k in extract_entities(reply):
            if k & keys:
                continue
            if kind == "url" and any(u in source_text for _, u in k):
                continue
            ungrounded.append((kind, written))
        if ungrounded:
            kind, written = ungrounded[0]
            label = ENTITY_LABELS[kind]
            more = f" (and {len(ungrounded) - 1} more)" if len(ungrounded) > 1 else ""
            return GuardVerdict(
                False,
                f"names {label} {written}, which is in neither the conversation nor the evidence{more}",
                [w for _, w in ungrounded],
                round(score, 4),
                "entity",
            )
        if self.check_claims:
            said = {verb for source in sources for verb in claimed_actions(source)}
            unsaid = [verb for verb in claimed_actions(reply) if verb not in said]
            if unsaid:
                return GuardVerdict(
                    False,
                    f"claims an action is done ({unsaid[0]!r}) that neither the conversation nor the evidence claims",
                    [],
                    round(score, 4),
                    "claim",
                )
        if score < self.min_overlap:
            return GuardVerdict(
                False,
                f"only {score:.0%} of the reply's words are in the evidence (needs {self.min_overlap:.0%})",
                [],
                round(score, 4),
                "overlap",
            )
        return GuardVerdict(True, None, [], round(score, 4), None)


def calibrate_min_overlap(replies_and_evidence: Sequence[tuple[str, Sequence[str]]], quantile: float = 0.05) -> float:
    """The overlap threshold that a `1 - quantile` share of real agent replies clears against
    their own evidence: the `quantile`-th lowest overlap (rounded down to 0.01)."""
    if not replies_and_evidence:
        raise ValueError("calibrating the overlap threshold needs (reply, evidence) pairs; got none")
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"quantile must be in [0, 1); got {quantile}")
    scores = sorted(overlap(reply, evidence) for reply, evidence in replies_and_evidence)
    value = scores[int(quantile * len(scores))]
    return int(value * 100) / 100


def company_facts_from(company_json: Any) -> list[str]:
    """Every string and number in a company.json document, flattened (booleans and nulls
    skipped): names, prices, phone, hours, addresses..."""
    out: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, bool) or x is None:
            return
        if isinstance(x, (str, int, float)):
            out.append(str(x))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(company_json)
    return out


# placeholders the bot never fills but may simply leave out ("Thanks, {{Name}}!" -> "Thanks!")
_DROPPABLE = ("{{Name}}",)


def clean_generated_text(generated_text: str, ended: bool) -> str:
    """A generated reply as the guard judges it (before placeholders are filled): control
    characters dropped (a byte-level tokenizer can decode any byte, NUL included, which no
    customer should see and PostgreSQL refuses to store), whitespace folded, a reply cut at
    the token limit trimmed to its last whole sentence, droppable placeholders left out."""
    text = " ".join(without_control_characters(generated_text).split())
    if not ended:
        text = _trim_to_sentence(text)
    for p in _DROPPABLE:
        text = _drop_placeholder(text, p)
    return text


def _drop_placeholder(text: str, placeholder: str) -> str:
    """`text` without `placeholder` and the comma or space that led to it."""
    out = re.sub(r",?\s*" + re.escape(placeholder), "", text)
    return " ".join(out.split())


def _trim_to_sentence(text: str) -> str:
    """A reply cut at max_new_tokens, back to its last full sentence (when it has one)."""
    cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    end = text.rstrip()
    if end.endswith((".", "!", "?")):
        return end
    return text[: cut + 1] if cut > 0 else text
