"""PII scrubbing for fine-tuning data: the product's one scrubber, with this package's API.

Training pairs are masked by `retrieval.pii.PiiScrubber`, the scrubber that also masks the
index at ingestion, so `{{Order Number}}` or `{{Name}}` in a training pair means what it
means in the index and in the composer. It finds emails, phone, card, order, tracking and
account numbers, IBANs, street addresses, zip codes, usernames and people's names (after a
cue such as "my name is", "Hi Anna,", "my wife Ingrid", or from a gazetteer of first
names); see `retrieval.pii` for what each kind covers.

`protect` is the company's own words and contact details: its words are never names, and
a protected phrase that looks like PII (the support email, the company's phone) is left as
it is. A name found once can be masked wherever else it appears in the same conversation
(`find_names` + `known_names`), e.g. "Anna, your refund is on its way": each part of a
known full name is masked too ("Crystal Minh", then "... level Crystal?").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from retrieval.pii import PLACEHOLDERS, STOP_WORDS, PiiScrubber

NAME_SLOT = "name"
NAME_PLACEHOLDER = PLACEHOLDERS[NAME_SLOT]

__all__ = ["NAME_PLACEHOLDER", "NAME_SLOT", "STOP_WORDS", "find_names", "scrub"]


def find_names(text: str, protect: Iterable[str] = ()) -> list[str]:
    """Personal names in `text`, in order of appearance, each once."""
    found: list[str] = []
    for span in PiiScrubber(protect=protect).find(text):
        name = text[span.start : span.end]
        if span.kind == NAME_SLOT and name not in found:
            found.append(name)
    return found


def scrub(text: str, *, protect: Iterable[str] = (), known_names: Iterable[str] = ()) -> tuple[str, Counter[str]]:
    """`text` with personal values replaced by typed placeholders, and the count per kind.

    Counter keys are the kinds of `retrieval.pii.PLACEHOLDERS` (`email`, `card_number`,
    `phone`, `order_id`, `name`, `username`, ...). `protect`: the company's own words and
    phrases, never masked. `known_names`: names found elsewhere in the same conversation,
    masked (with each of their parts) wherever they stand as whole words.
    """
    scrubber = PiiScrubber(protect=protect)
    known = {value: NAME_SLOT for name in known_names for value in scrubber.name_values(name)}
    return scrubber.scrub(text, known=known)
