"""PII scrubbing for fine-tuning data: personal values become typed placeholders.

Emails, phone numbers, card numbers and order ids go through the same patterns the rest
of csbot uses (`retrieval.entities.mask_entities`), so `{{Order Number}}` in a training
pair means what it means in the index and in the composer. Personal names become
`{{Name}}`, but only where a cue says a name is there - names cannot be told from other
capitalised words in general, so the patterns are conservative:

- "my name is Anna", "my name's Anna Smith", "name is Anna" (the name capitalised);
- "I'm Anna Smith." / "I am Anna!" - capitalised, and followed by punctuation or the end;
- "this is Anna", "this is Anna from ..." (followed by punctuation, the end, "from",
  "with", "here" or "speaking");
- salutations: "Hi Anna,", "Hello Anna!", "Thanks, Anna!", "Thank you Anna.", "Dear Anna".

A word on the stop list ("Fine", "Sorry", "Support", "Team", ...) or among the company's
own words (`protect`) is never taken for a name, and a match that contains one is left
alone whole; a protected phrase that looks like PII (the support email, the company's
phone number) is left as it is. A name found once can be masked wherever else it appears in the same
conversation (`find_names` + `known_names`), e.g. "Anna, your refund is on its way".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from retrieval.entities import mask_entities

NAME_PLACEHOLDER = "{{Name}}"
NAME_SLOT = "name"

_WORD = r"[A-Z][a-z]+(?:['-][A-Z]?[a-z]+)?"
_NAME = rf"{_WORD}(?:[ \t]+{_WORD})?"
_TITLE = r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr)\.?[ \t]+)?"  # "Dear Mr Smith" -> "Dear Mr {{Name}}"
_END = r"(?=[ \t]*(?:[.,!?;:)\n]|$))"

_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(rf"\b(?i:my[ \t]+name[ \t]+is|my[ \t]+name's|name[ \t]+is|call[ \t]+me)[ \t]+{_TITLE}(?P<name>{_NAME})\b"),
    re.compile(rf"\b(?i:i'm|i[ \t]+am|im|i’m)[ \t]+{_TITLE}(?P<name>{_NAME}){_END}"),
    re.compile(
        rf"\b(?i:this[ \t]+is)[ \t]+{_TITLE}(?P<name>{_NAME})"
        rf"(?=[ \t]*(?:[.,!?;:)\n]|$)|[ \t]+(?:from|with|here|speaking)\b)"
    ),
    re.compile(
        rf"(?:^|(?<=[\s.,!?;:(]))(?i:hi|hello|hey|dear|thanks|thank[ \t]+you|thx|cheers|bye|goodbye|"
        rf"good[ \t]+(?:morning|afternoon|evening))[ \t]*,?[ \t]+{_TITLE}(?P<name>{_NAME}){_END}"
    ),
)

# Capitalised words that follow these cues without being names ("I'm Sorry.", "Hi Team,").
STOP_WORDS = frozenset(
    w.lower()
    for w in """
    Fine Good Great Ok Okay Sorry Here There Back Done Ready Sure Happy Glad Confused Lost
    Interested Not New Still Just Well Alright Right Correct Calling Writing Trying Looking
    Waiting Afraid Unsure Frustrated Upset Annoyed Angry Disappointed Tired Satisfied Curious
    Again All Everyone Everybody Guys Folks Team Support Sir Madam Mam Maam Friend Friends
    Bot Assistant Agent Customer Service Help Helpdesk Desk Care Mate Buddy Dude Man Bro Anyone
    Someone Somebody Nobody Mr Mrs Ms Miss Dr The A An It This That Yes No Yeah Yep Nope
    Please Thanks Thank You Hi Hello Hey Dear Bye Goodbye Morning Afternoon Evening Night Day
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday Today Tomorrow Yesterday
    January February March April May June July August September October November December
    Visa Mastercard Paypal Apple Google Amazon Express Standard Order Refund Return Account
    English Spanish French German American Canadian British Human Real Person Robot Chat
    """.split()
)


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'-]*", text)


def _protected_words(protect: Iterable[str]) -> frozenset[str]:
    words: set[str] = set()
    for phrase in protect:
        words.update(w.lower() for w in _words(str(phrase)))
    return frozenset(words)


def find_names(text: str, protect: Iterable[str] = ()) -> list[str]:
    """Personal names that a cue (see the module docstring) marks in `text`, in order."""
    blocked = STOP_WORDS | _protected_words(protect)
    found: list[str] = []
    for pattern in _PATTERNS:
        for m in pattern.finditer(text):
            name = m.group("name")
            if any(w.lower() in blocked for w in _words(name)):
                continue
            if name not in found:
                found.append(name)
    return found


def scrub(text: str, *, protect: Iterable[str] = (), known_names: Iterable[str] = ()) -> tuple[str, Counter[str]]:
    """`text` with personal values replaced by typed placeholders, and the count per type.

    Counter keys: `email`, `card_number`, `phone`, `order_id` (as in
    `retrieval.entities`) and `name`. `protect`: the company's own words and phrases,
    never masked as names. `known_names`: names already found elsewhere in the same
    conversation, masked wherever they stand as whole words.
    """
    protect = tuple(str(p) for p in protect)
    # the company's own contact details (its support email, its phone) are no one's PII:
    # set them aside before masking and put them back after
    kept = sorted({p for p in protect if p and p in text and mask_entities(p)[1]}, key=len, reverse=True)
    for i, phrase in enumerate(kept):
        text = text.replace(phrase, f"\x00{i}\x00")
    masked, counts = mask_entities(text)
    for i, phrase in enumerate(kept):
        masked = masked.replace(f"\x00{i}\x00", phrase)
    blocked = STOP_WORDS | _protected_words(protect)
    names = find_names(masked, ())
    names += [n for n in known_names if n not in names]
    # one name may hold another ("Anna Smith", "Anna"): longest first
    names = sorted(
        {n for n in names if n.strip() and not any(w.lower() in blocked for w in _words(n))},
        key=len, reverse=True,
    )
    n_names = 0
    if names:
        pattern = re.compile(r"(?<![\w{])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w}])")
        masked, n_names = pattern.subn(NAME_PLACEHOLDER, masked)
    if n_names:
        counts[NAME_SLOT] += n_names
    return masked, counts
