"""`PiiScrubber`: finds the personal values in a text or a conversation and masks them with
their placeholders (the package docstring says what it finds). Numbers, addresses and
handles come from `retrieval.pii.codes`; names are found here, from the cues of
`retrieval.pii.name_cues` and the gazetteer, because they depend on the protected words."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from retrieval.entities import EMAIL, PLACEHOLDER_RE
from retrieval.pii.codes import find_addresses, find_numbers, find_usernames, find_zips
from retrieval.pii.gazetteer import Gazetteer, default_gazetteer
from retrieval.pii.name_cues import ASKS_NAME, CAP_TOKEN_RE, LOWER_NAME_CUE, NAME_CUES
from retrieval.pii.spans import PiiSpan, apply_spans, resolve_spans
from retrieval.pii.text import ScanText
from retrieval.pii.vocabulary import FUNCTION_WORDS, NOT_SURNAMES, STOP_WORDS, TOKEN_RE, words


class PiiScrubber:
    """Finds and masks personal values; see the `retrieval.pii` docstring for what it finds.

    Cheap to build (the gazetteer is read once per process), so a caller may build one per
    protect list. `protect`: the company's own words and contact details, never masked.
    """

    def __init__(self, *, protect: Iterable[str] = (), gazetteer: Gazetteer | None = None):
        self.protect = tuple(p for p in (str(x).strip() for x in protect) if len(p) >= 3)
        self.gazetteer = gazetteer or default_gazetteer()
        self._protect_lowered = tuple((p, p.lower()) for p in self.protect)
        self._not_names = STOP_WORDS | frozenset(w.lower() for p in self.protect for w in words(p))
        self._personal_phrases: dict[str, bool] = {}  # protected phrase -> does it look like PII

    # -- public -----------------------------------------------------------------------
    def find(self, text: str, *, known: Mapping[str, str] | None = None) -> list[PiiSpan]:
        """Personal values in `text`, in order, not overlapping. `known`: values found
        elsewhere in the same conversation (value -> kind), masked wherever they stand as
        whole words."""
        t = ScanText.of(text)
        return resolve_spans([*self._candidates(t), *self._known(t, known or {})], self._blocked(t))

    def scrub(self, text: str, *, known: Mapping[str, str] | None = None) -> tuple[str, Counter[str]]:
        """`text` with every personal value replaced by its placeholder, and counts per kind."""
        return apply_spans(text, self.find(text, known=known))

    def find_conversation(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """`find` for each turn of one conversation, with what every turn revealed (see
        `known_values`); a short turn right after one that asks for a name is a name."""
        ts = [ScanText.of(text) for text in texts]
        candidates = [self._candidates(t) for t in ts]
        blocked = [self._blocked(t) for t in ts]
        known: dict[str, str] = {}
        for i, t in enumerate(ts):
            if i > 0 and ASKS_NAME.search(texts[i - 1]):
                answer = self._name_answer(t.text)
                if answer is not None:
                    candidates[i].append(answer)
            for value, kind in self.known_values(t.text, resolve_spans(candidates[i], blocked[i])).items():
                known.setdefault(value, kind)
        return [resolve_spans([*c, *self._known(t, known)], b) for t, c, b in zip(ts, candidates, blocked, strict=True)]

    def scrub_conversation(self, texts: Sequence[str]) -> list[tuple[str, Counter[str]]]:
        """Each turn of one conversation masked (`find_conversation`), with counts per kind."""
        return [apply_spans(text, spans) for text, spans in zip(texts, self.find_conversation(texts), strict=True)]

    def known_values(self, text: str, spans: Sequence[PiiSpan] | None = None) -> dict[str, str]:
        """Values worth masking elsewhere in the same conversation (value -> kind): names and
        each part of them, usernames (with and without "@"), the local part of an email
        that looks like a handle (ABCD's usernames are their email's local part), and
        addresses, account and tracking numbers."""
        spans = self.find(text) if spans is None else spans
        out: dict[str, str] = {}
        for s in spans:
            value = text[s.start : s.end].strip()
            if s.kind == "name":
                # a lone word that only a cue called a name ("Good morning Larkspur") may be
                # the shop's own: it is masked where found, not carried to other turns
                parts = self.name_parts(value)
                if len(parts) < 2 and not any(self.gazetteer.kind(w) for w in parts):
                    continue
                for v in self.name_values(value):
                    out.setdefault(v, "name")
            elif s.kind == "username":
                out.setdefault(value, "username")
                out.setdefault(value.lstrip("@"), "username")
            elif s.kind == "email":
                local = value.split("@", 1)[0]
                if len(local) >= 5 and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]*\d[A-Za-z0-9_.]*", local):
                    out.setdefault(local, "username")
            elif len(value) >= 6 and s.kind in ("street_address", "account_number", "tracking_number"):
                out.setdefault(value, s.kind)
        return out

    def name_parts(self, name: str) -> list[str]:
        """The words of `name` that can stand alone for it (not "Mr", not the shop's words)."""
        return [w for w in words(name) if len(w) >= 3 and w.lower() not in self._not_names | FUNCTION_WORDS]

    def name_values(self, name: str) -> list[str]:
        """`name` and each of its parts: what to mask elsewhere once `name` is known."""
        name = name.strip()
        return [name, *(p for p in self.name_parts(name) if p != name)] if name else []

    # -- what is never masked ------------------------------------------------------------
    def _blocked(self, t: ScanText) -> list[tuple[int, int]]:
        """Placeholders already in the text, and protected phrases that look like PII."""
        # a placeholder is never masked again, unless it holds a value ("{{732201349959}}")
        spans = (
            [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(t.text) if not re.search(r"[\d@]", m.group(1))]
            if "{{" in t.text
            else []
        )
        for phrase, p in self._protect_lowered:
            if p not in t.lowered or not self._looks_personal(phrase):
                continue
            start = t.lowered.find(p)
            while start != -1:
                spans.append((start, start + len(p)))
                start = t.lowered.find(p, start + 1)
        return spans

    def _looks_personal(self, phrase: str) -> bool:
        if phrase not in self._personal_phrases:
            bare = PiiScrubber(gazetteer=self.gazetteer)
            self._personal_phrases[phrase] = any(s.kind != "name" for s in bare.find(phrase))
        return self._personal_phrases[phrase]

    # -- finders ---------------------------------------------------------------------------
    def _candidates(self, t: ScanText) -> list[PiiSpan]:
        """Every finding of every finder, overlaps and all (`_resolve` picks among them)."""
        candidates: list[PiiSpan] = []
        if "@" in t.text:
            candidates += [PiiSpan(m.start(), m.end(), "email") for m in EMAIL.pattern.finditer(t.text)]
        if t.near_digits:
            candidates += find_numbers(t)
            candidates += find_addresses(t)
            candidates += find_zips(t, candidates)
        candidates += find_usernames(t)
        candidates += self._names(t)
        return candidates

    def _names(self, t: ScanText) -> list[PiiSpan]:
        out: list[PiiSpan] = []
        for cue in NAME_CUES:
            for m in cue.finditer(t):
                span = self._cut_name(t.text, m.start("name"), m.end("name"))
                if span is None:
                    continue
                name_words = t.text[span.start : span.end].split()
                if cue.weak and len(name_words) < 2 and self.gazetteer.kind(name_words[0]) is None:
                    continue
                out.append(span)
        for m in LOWER_NAME_CUE.finditer(t):
            first, last = m.group("first"), m.group("last")
            if first in self._not_names or self.gazetteer.kind(first) != "name":
                continue
            whole = last and m.group("end") is not None and last not in FUNCTION_WORDS | self._not_names
            out.append(PiiSpan(m.start("first"), m.end("last") if whole else m.end("first"), "name"))
        out += self._gazetteer_names(t.text)
        whole_message = self._whole_message_name(t.text)
        if whole_message is not None:
            out.append(whole_message)
        return out

    def _cut_name(self, text: str, start: int, end: int) -> PiiSpan | None:
        """A cue's capitalised words, cut before the first that cannot be part of a name."""
        kept: list[re.Match[str]] = []
        for token in TOKEN_RE.finditer(text, start, end):
            w = token.group(0).lower()
            if w in self._not_names or (kept and w in NOT_SURNAMES):
                break
            kept.append(token)
        return PiiSpan(kept[0].start(), kept[-1].end(), "name") if kept else None

    def _gazetteer_names(self, text: str) -> list[PiiSpan]:
        """Capitalised first names from the gazetteer, with the capitalised words right after
        them (up to two: the surname). A word-name needs a surname to count."""
        out: list[PiiSpan] = []
        tokens = list(CAP_TOKEN_RE.finditer(text))
        i = 0
        while i < len(tokens):
            word = tokens[i].group(0)
            kind = self.gazetteer.kind(word)
            if kind is None or word.lower() in self._not_names:
                i += 1
                continue
            j = i
            while j + 1 < len(tokens) and j - i < 2 and self._continues_name(text, tokens[j], tokens[j + 1]):
                j += 1
            if kind == "name" or j > i:
                out.append(PiiSpan(tokens[i].start(), tokens[j].end(), "name"))
            i = j + 1
        return out

    def _continues_name(self, text: str, prev: re.Match[str], nxt: re.Match[str]) -> bool:
        gap = text[prev.end() : nxt.start()]
        w = nxt.group(0)
        return (
            bool(gap)
            and gap.strip(" \t") == ""
            and w.lower() not in self._not_names
            and w.lower() not in NOT_SURNAMES
            and self.gazetteer.kind(w) != "word"
        )

    def _whole_message_name(self, text: str) -> PiiSpan | None:
        """A message that is only a name ("Crystal Minh", "alessandro phoenix")."""
        stripped = text.strip().rstrip(".!")
        tokens = stripped.split()
        if not 1 <= len(tokens) <= 3 or not all(TOKEN_RE.fullmatch(w) for w in tokens):
            return None
        if any(w.lower() in self._not_names or w.lower() in FUNCTION_WORDS for w in tokens):
            return None
        first = self.gazetteer.kind(tokens[0])
        if all(w[:1].isupper() and w[1:].islower() for w in tokens):
            ok = first is not None and (len(tokens) > 1 or first == "name")
        else:
            ok = first == "name" and len(tokens) > 1 and stripped.islower()
        if not ok:
            return None
        start = text.find(stripped)
        return PiiSpan(start, start + len(stripped), "name")

    def _name_answer(self, text: str) -> PiiSpan | None:
        """The reply to a name question when it is a few plain words ("Crystal Minh")."""
        stripped = re.sub(r"(?i)^(?:it's|its|it is|sure,?|yes,?|yeah,?)[ \t]+", "", text.strip().rstrip(".!"))
        tokens = stripped.split()
        if not 1 <= len(tokens) <= 4 or not all(TOKEN_RE.fullmatch(w) for w in tokens):
            return None
        if any(w.lower() in self._not_names or w.lower() in FUNCTION_WORDS for w in tokens):
            return None
        start = text.find(stripped)
        return PiiSpan(start, start + len(stripped), "name")

    def _known(self, t: ScanText, known: Mapping[str, str]) -> list[PiiSpan]:
        out: list[PiiSpan] = []
        for value, kind in known.items():
            if not value.strip() or value.lower() not in t.lowered:
                continue
            if kind == "name" and value.lower() in self._not_names:
                continue
            # a known name that is also a word ("Grace") only where it is capitalised
            flags = 0 if (kind == "name" and self.gazetteer.kind(value) == "word") else re.IGNORECASE
            out += [
                PiiSpan(m.start(), m.end(), kind)
                for m in re.finditer(rf"(?<![\w{{@.]){re.escape(value)}(?![\w}}@])", t.text, flags)
            ]
        return out
