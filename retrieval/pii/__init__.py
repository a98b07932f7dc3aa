"""One PII scrubber for everything csbot indexes, exports or learns from.

Ingestion (`retrieval.ingest`), the store's training exports and the fine-tuning pairs
(`finetune.scrub`) all mask personal values with `PiiScrubber`, so a `{{Name}}` or an
`{{Order Number}}` means the same thing in the index, in a training pair and in the
composer. Each kind of value has a placeholder in the `{{Order Number}}` style that the
Bitext corpus and our own data already use:

| kind | placeholder | found by |
| --- | --- | --- |
| `email` | `{{Email}}` | the pattern in `retrieval.entities` |
| `card_number` | `{{Card Number}}` | the pattern in `retrieval.entities` (13-16 digits) |
| `phone` | `{{Phone Number}}` | `retrieval.entities`, plus `+44 ...`, `07700 900123` and cue-led numbers |
| `order_id` | `{{Order Number}}` | the pattern in `retrieval.entities` |
| `iban` | `{{IBAN}}` | shape, then the ISO 13616 mod-97 checksum |
| `tracking_number` | `{{Tracking Number}}` | UPS `1Z...` and UPU `RR123456785DE` shapes; any code after "tracking" |
| `account_number` | `{{Account Number}}` | a code with digits after "account", "acct", "a/c" |
| `street_address` | `{{Street Address}}` | number, street, street type ("55 Main St, Apt 4"); "18 Via Roma"; PO boxes |
| `zip_code` | `{{Zip Code}}` | after "zip", "postal code", a US state or a street address; UK, Canadian shapes |
| `username` | `{{Username}}` | "@handle", after "username"/"login"/"handle", or a message that is only a handle |
| `name` | `{{Name}}` | cues ("my name is", "Hi Anna,", "my wife Ingrid", "Mr ..."), then a gazetteer of first names |

Names cannot be told from other capitalised words by shape, so the gazetteer
(`retrieval/pii/first_names.txt`, about 3,500 names) is used with care: a name that is also a common
word, place or brand ("Will", "May", "Grace", "Georgia", "Dell") counts only with more
evidence than its capital letter - a cue, a surname after it, or a message that is
nothing but a name. Lowercase names are taken only after a strong cue ("my name is jose")
or as a whole message ("alessandro phoenix").

`protect` is the company's own words and contact details (`company.json`): its words are
never names, and a protected phrase that looks like PII (the support email, the company's
phone) is left as it is. Placeholders already in the text are never masked again, unless
they hold a value (Bitext writes "{{732201349959}}": it becomes "{{Order Number}}").

Across a conversation (`scrub_conversation`), values found in one turn are masked in every
other turn too ("Crystal Minh" once, then "... level Crystal?"), and a short reply to
"may I have your name?" is taken for a name.

The package is on the ground floor: it imports nothing from `bot/` or `finetune/`. Its modules:
`spans` (kinds, placeholders, overlaps), `vocabulary` (special words), `gazetteer` (first
names), `text` (where to look), `name_cues` and `codes` (what to look for), `scrubber`
(`PiiScrubber`).
"""

from retrieval.pii.codes import iban_is_valid
from retrieval.pii.gazetteer import GAZETTEER_PATH, Gazetteer, default_gazetteer
from retrieval.pii.scrubber import PiiScrubber
from retrieval.pii.spans import PII_KINDS, PLACEHOLDERS, PiiSpan
from retrieval.pii.vocabulary import FUNCTION_WORDS, STOP_WORDS

__all__ = [
    "FUNCTION_WORDS",
    "GAZETTEER_PATH",
    "PII_KINDS",
    "PLACEHOLDERS",
    "STOP_WORDS",
    "Gazetteer",
    "PiiScrubber",
    "PiiSpan",
    "default_gazetteer",
    "iban_is_valid",
]
