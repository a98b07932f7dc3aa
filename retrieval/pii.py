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
(`first_names.txt`, about 3,500 names) is used with care: a name that is also a common
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

This module is the ground floor: it imports nothing from `bot/` or `finetune/`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from retrieval.entities import CARD, EMAIL, ORDER_ID, PHONE, PLACEHOLDER_RE

PLACEHOLDERS: dict[str, str] = {
    "email": "{{Email}}",
    "card_number": "{{Card Number}}",
    "phone": "{{Phone Number}}",
    "order_id": "{{Order Number}}",
    "iban": "{{IBAN}}",
    "tracking_number": "{{Tracking Number}}",
    "account_number": "{{Account Number}}",
    "street_address": "{{Street Address}}",
    "zip_code": "{{Zip Code}}",
    "username": "{{Username}}",
    "name": "{{Name}}",
}
PII_KINDS: tuple[str, ...] = tuple(PLACEHOLDERS)

GAZETTEER_PATH = Path(__file__).with_name("first_names.txt")

# When two findings overlap, the one with the lower rank wins (then the longer one): a
# validated or cue-led finding beats a bare shape ("tracking 7489 2736 4512" is no phone).
_RANK = {
    "email": 0,
    "iban": 1,
    "tracking_number": 1,
    "account_number": 2,
    "card_number": 3,
    "street_address": 3,
    "phone": 4,
    "zip_code": 4,
    "username": 5,
    "order_id": 6,
    "name": 7,
}

# Capitalised words that follow name cues without being names ("I'm Sorry.", "Hi Team,").
STOP_WORDS = frozenset(
    w.lower()
    for w in ["Fine", "Good", "Great", "Ok", "Okay", "Sorry", "Here", "There", "Back", "Done", "Ready", "Sure", "Happy", "Glad", "Confused", "Lost", "Interested", "Not", "New", "Still", "Just", "Well", "Alright", "Right", "Correct", "Calling", "Writing", "Trying", "Looking", "Waiting", "Afraid", "Unsure", "Frustrated", "Upset", "Annoyed", "Angry", "Disappointed", "Tired", "Satisfied", "Curious", "Again", "All", "Everyone", "Everybody", "Guys", "Folks", "Team", "Support", "Sir", "Madam", "Mam", "Maam", "Friend", "Friends", "Bot", "Assistant", "Agent", "Customer", "Service", "Help", "Helpdesk", "Desk", "Care", "Mate", "Buddy", "Dude", "Man", "Bro", "Anyone", "Someone", "Somebody", "Nobody", "Mr", "Mrs", "Ms", "Miss", "Dr", "The", "A", "An", "It", "This", "That", "Yes", "No", "Yeah", "Yep", "Nope", "Please", "Thanks", "Thank", "You", "Hi", "Hello", "Hey", "Dear", "Bye", "Goodbye", "Morning", "Afternoon", "Evening", "Night", "Day", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Today", "Tomorrow", "Yesterday", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December", "Visa", "Mastercard", "Paypal", "Apple", "Google", "Amazon", "Express", "Standard", "Order", "Refund", "Return", "Account", "English", "Spanish", "French", "German", "American", "Canadian", "British", "Human", "Real", "Person", "Robot", "Chat"]
)
# Title-case product and shop words that never continue a name ("Rose Gold", "Summer Sale").
_NOT_SURNAMES = frozenset(
    w.lower()
    for w in ["Gold", "Silver", "Bronze", "Platinum", "Red", "Green", "Blue", "Black", "White", "Grey", "Gray", "Pink", "Purple", "Orange", "Yellow", "Beige", "Cream", "Navy", "Teal", "Glass", "Wood", "Steel", "Linen", "Cotton", "Wool", "Leather", "Ceramic", "Set", "Sets", "Collection", "Edition", "Series", "Range", "Line", "Sale", "Sales", "Deal", "Deals", "Pro", "Max", "Mini", "Plus", "Lite", "Ultra", "Card", "Cards", "Pay", "Period", "Policy", "Store", "Shop", "Goods", "Week", "Month", "Year", "Package", "Bundle", "Kit", "Size", "Delivery", "Shipping", "Returns", "Membership", "Member", "Gift", "Gifts", "Code", "Number", "Street", "Avenue", "Road"]
)
# Lowercase words that are never (part of) a name or a handle.
FUNCTION_WORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "so", "of", "to", "in", "on", "at", "by", "for", "from", "with", "about", "into", "over", "under", "after", "before", "is", "am", "are", "was", "were", "be", "been", "being", "do", "does", "did", "have", "has", "had", "will", "would", "can", "could", "shall", "should", "may", "might", "must", "not", "no", "yes", "i", "me", "my", "mine", "we", "us", "our", "you", "your", "he", "him", "his", "she", "her", "it", "its", "they", "them", "their", "this", "that", "these", "those", "here", "there", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "all", "any", "some", "each", "every", "both", "either", "neither", "one", "two", "just", "also", "too", "very", "really", "still", "already", "again", "please", "thanks", "thank", "hi", "hello", "hey", "ok", "okay", "sure", "well", "now", "then", "than", "as", "up", "down", "out", "off", "back", "looking", "trying", "calling", "writing", "waiting", "wondering", "hoping", "going", "getting", "sorry", "fine", "good", "great", "happy", "glad", "new", "order", "orders", "account", "email", "phone", "number", "name", "card", "help", "support", "customer"]
)

_CAP = r"[A-ZÀ-ÖØ-Þ]"
_LOW = r"[a-zß-öø-ÿ]"
_WORD = rf"{_CAP}{_LOW}+(?:{_CAP}{_LOW}+)?(?:['’-](?!s\b){_CAP}?{_LOW}+)?"  # Anna, McDonald, O'Brien (not Anna's)
_NAME = rf"{_WORD}(?:[ \t]+{_WORD}){{0,2}}"
_LWORD = rf"{_LOW}+(?:['’-]{_LOW}+)?"
_TITLE = r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?[ \t]+)"
_END = r"(?=[ \t]*(?:[.,!?;:)\n]|$))"
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_CAP_TOKEN_RE = re.compile(rf"(?<![\w'’-]){_WORD}(?![\w'’-])")
_LOWER_WORDS_RE = re.compile(r"[a-zß-öø-ÿ]+")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class _Text:
    """One text and what several finders look up in it: its lowercase form, its lowercase
    words, and the stretches around its digits (the only places a number can be)."""

    text: str
    lowered: str
    words: frozenset[str]
    near_digits: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, text: str) -> _Text:
        lowered = text.lower()
        if len(lowered) != len(text):  # lowercasing changed the length: keep positions aligned
            lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        digits = [(m.start(), m.end()) for m in _DIGITS.finditer(text)]
        return cls(text, lowered, frozenset(_LOWER_WORDS_RE.findall(lowered)), tuple(_windows(text, digits, 45, 60)))

    def has(self, words: Iterable[str]) -> bool:
        return not self.words.isdisjoint(words)

    def scan(
        self, pattern: re.Pattern[str], windows: Sequence[tuple[int, int]] | None = None
    ) -> Iterable[re.Match[str]]:
        """`pattern.finditer` inside each window (by default: near the digits) only;
        lookbehinds still see the text before a window."""
        for a, b in self.near_digits if windows is None else windows:
            yield from pattern.finditer(self.text, a, b)


def _windows(text: str, hits: Iterable[tuple[int, int]], back: int, ahead: int) -> list[tuple[int, int]]:
    """Merged ranges from `back` characters before to `ahead` after each hit, widened to
    whitespace so that no word is cut."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(hits):
        a, b = max(0, start - back), min(len(text), end + ahead)
        while a > 0 and not text[a - 1].isspace():
            a -= 1
        while b < len(text) and not text[b].isspace():
            b += 1
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class _Cue:
    """A pattern with a `name` or `code` group, tried only near its `triggers` (lowercase
    words or phrases, as whole words). Python's regular expressions try every position of
    a text, which for a long reply costs far more than finding a few words first. The
    pattern may start `back` characters before a trigger and end `ahead` after it.
    `weak`: the name must then be in the gazetteer or have two words."""

    pattern: re.Pattern[str]
    triggers: tuple[str, ...]
    weak: bool = False
    back: int = 12
    ahead: int = 80
    gate: frozenset[str] = field(init=False)  # the triggers' first words: a cheap first test

    def __post_init__(self) -> None:
        object.__setattr__(self, "gate", frozenset(_LOWER_WORDS_RE.match(t).group(0) for t in self.triggers))

    def finditer(self, t: _Text) -> Iterable[re.Match[str]]:
        if t.words.isdisjoint(self.gate):
            return
        hits: list[tuple[int, int]] = []
        for trigger in self.triggers:
            i = t.lowered.find(trigger)
            while i != -1:
                j = i + len(trigger)
                if (i == 0 or not t.lowered[i - 1].isalnum()) and (j == len(t.lowered) or not t.lowered[j].isalnum()):
                    hits.append((i, j))
                i = t.lowered.find(trigger, i + 1)
        if hits:
            yield from t.scan(self.pattern, _windows(t.text, hits, self.back, self.ahead))


# --- names -----------------------------------------------------------------------------

_SALUTATIONS = (
    "hi",
    "hello",
    "hey",
    "dear",
    "thanks",
    "thank you",
    "thx",
    "cheers",
    "bye",
    "goodbye",
    "good morning",
    "good afternoon",
    "good evening",
)
_RELATIVES = (
    "wife",
    "husband",
    "partner",
    "son",
    "daughter",
    "mother",
    "mum",
    "mom",
    "father",
    "dad",
    "sister",
    "brother",
    "friend",
    "neighbour",
    "neighbor",
    "colleague",
    "boss",
    "manager",
    "grandmother",
    "grandma",
    "grandfather",
    "grandpa",
    "aunt",
    "uncle",
    "cousin",
    "niece",
    "nephew",
    "fiance",
    "fiancee",
    "fiancé",
    "fiancée",
    "girlfriend",
    "boyfriend",
    "roommate",
    "flatmate",
    "landlord",
    "landlady",
    "tenant",
    "child",
    "kid",
)
_NAME_CUES: tuple[_Cue, ...] = (
    _Cue(
        re.compile(
            rf"\b(?i:my[ \t]+name[ \t]+is|my[ \t]+name's|name[ \t]+is|name[ \t]+was|call[ \t]+me|"
            rf"full[ \t]+name[ \t]*:?|name[ \t]*:|account[ \t]+holder[ \t]*:?)[ \t]+{_TITLE}?"
            rf"(?P<name>{_NAME})\b"
        ),
        ("name", "name's", "call me", "holder"),
    ),
    _Cue(
        re.compile(rf"\b(?i:i'm|i[ \t]+am|im|i’m)[ \t]+{_TITLE}?(?P<name>{_NAME}){_END}"), ("i'm", "i am", "im", "i’m")
    ),
    _Cue(
        re.compile(
            rf"\b(?i:this[ \t]+is)[ \t]+{_TITLE}?(?P<name>{_NAME})"
            rf"(?=[ \t]*(?:[.,!?;:)\n]|$)|[ \t]+(?:from|with|here|speaking|again)\b)"
        ),
        ("this is",),
    ),
    _Cue(
        re.compile(
            rf"\b(?i:it's|it’s|its|it[ \t]+is)[ \t]+(?P<name>{_NAME})"
            rf"(?=[ \t]*(?:[.,!?;:)\n]|$)|[ \t]+(?:from|with|here|speaking|again)\b)"
        ),
        ("it's", "it’s", "its", "it is"),
        weak=True,
    ),
    _Cue(
        re.compile(
            rf"\b(?i:hi|hello|hey|dear|thanks|thank[ \t]+you|thx|cheers|bye|goodbye|"
            rf"good[ \t]+(?:morning|afternoon|evening))[ \t]*,?[ \t]+{_TITLE}?(?P<name>{_NAME}){_END}"
        ),
        _SALUTATIONS,
    ),
    # sign-offs, capitalised, at the start of a line or sentence: "Best, Julia", "Regards,\nTom"
    _Cue(
        re.compile(
            rf"(?:^|(?<=\n)|(?<=[.!?][ \t]))(?:Best|Regards|Best regards|Kind regards|Warm regards|"
            rf"Many thanks|Sincerely|Yours|Yours truly|Warmly|Cheers|Thanks)[ \t]*,[ \t\n]*{_TITLE}?"
            rf"(?P<name>{_NAME}){_END}"
        ),
        ("best", "regards", "thanks", "sincerely", "yours", "warmly", "cheers"),
    ),
    # "Will Turner here", "Chen Wei speaking"
    _Cue(
        re.compile(rf"(?:^|(?<=[\n.!?,;:][ \t]))[ \t]*(?P<name>{_NAME})[ \t]+(?i:here|speaking)\b"),
        ("here", "speaking"),
        weak=True,
        back=70,
        ahead=12,
    ),
    _Cue(re.compile(rf"(?P<name>{_NAME})[ \t]+(?i:is[ \t]+my[ \t]+name)\b"), ("is my name",), back=70, ahead=12),
    # "Victoria from the billing team", "Sam from returns"
    _Cue(
        re.compile(
            rf"(?P<name>{_NAME})[ \t]+from[ \t]+(?:the[ \t]+|our[ \t]+|your[ \t]+)?[\w-]+[ \t]+"
            rf"(?i:team|department|desk)\b"
        ),
        ("team", "department", "desk"),
        weak=True,
        back=90,
        ahead=6,
    ),
    # "my wife Ingrid", "My neighbour Tom Becker", "my father, George Adeyemi"
    _Cue(
        re.compile(
            rf"\b(?i:my|our|his|her|their)[ \t]+(?i:{'|'.join(_RELATIVES)})[ \t]*,?[ \t]+"
            rf"(?P<name>{_NAME})"
        ),
        _RELATIVES,
        back=8,
    ),
    # "spoke to Jessica", "talked with Mark Davies"
    _Cue(
        re.compile(
            rf"\b(?i:spoke|spoken|speak|talked|talking|chatted|chatting)[ \t]+(?i:to|with)[ \t]+"
            rf"(?P<name>{_NAME})"
        ),
        ("spoke", "spoken", "speak", "talked", "talking", "chatted", "chatting"),
        weak=True,
    ),
    # "can you tell Anna", "signed for by Sam Cole"
    _Cue(
        re.compile(
            rf"\b(?i:tell|ask|asked|ask[ \t]+for|named|signed[ \t]+for[ \t]+by|addressed[ \t]+to|"
            rf"on[ \t]+behalf[ \t]+of|attention|attn:?)[ \t]+(?P<name>{_NAME})"
        ),
        ("tell", "ask", "asked", "named", "signed", "addressed", "behalf", "attention", "attn"),
        weak=True,
    ),
    # a title and a capitalised word: "Mrs Nakamura", "Dr. Okafor"
    _Cue(
        re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?[ \t]+(?P<name>{_NAME})"),
        ("mr", "mrs", "ms", "miss", "mx", "dr", "prof"),
    ),
)
# Strong cues after which a lowercase word from the gazetteer is a name ("my name is jose").
_LOWER_NAME_CUE = _Cue(
    re.compile(
        rf"\b(?i:my[ \t]+name[ \t]+is|my[ \t]+name's|name[ \t]*:|call[ \t]+me|i[ \t]+am|i'm|im|i’m|this[ \t]+is)"
        rf"[ \t]+(?P<first>{_LWORD})(?:[ \t]+(?P<last>{_LWORD}))?(?P<end>{_END})?"
    ),
    ("name", "name's", "call me", "i am", "i'm", "im", "i’m", "this is"),
)
# Someone asking for a name: a short message right after it is one.
_ASKS_NAME = re.compile(
    r"\b(?:your|ur)[ \t]+(?:full[ \t]+|first[ \t]+|last[ \t]+|account[ \t]+)?name\b|"
    r"\bwho[ \t]+am[ \t]+i[ \t]+(?:speaking|talking|chatting)[ \t]+(?:to|with)\b|\bname[ \t]+please\b",
    re.IGNORECASE,
)

# --- numbers and codes (looked for only near digits) -----------------------------------

_IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{1,4}){3,9}\b", re.IGNORECASE)
_UPS = re.compile(r"\b1Z(?:[ ]?[0-9A-Z]){16}\b", re.IGNORECASE)
_S10 = re.compile(r"\b[A-Z]{2}\d{9}[A-Z]{2}\b")  # UPU S10: registered mail, EMS, most national posts
# a code after a cue: letters and digits, with digits, and single spaces or dashes inside
_CODE = r"(?=[A-Z0-9-]*\d)[A-Z0-9](?:[A-Z0-9-]|[ ](?=[A-Z0-9-]*\d)){5,40}[A-Z0-9]"
_TRACKING_WORDS = ("tracking", "waybill", "consignment")
_TRACKING_CUE = re.compile(
    rf"\b(?:{'|'.join(_TRACKING_WORDS)})(?:[ \t]+(?:number|no\.?|nr|num|code|id|ref))?"
    rf"(?:[ \t]*(?:is|was|says|shows|reads|:|#|=|-))*[ \t]*(?P<code>{_CODE})\b",
    re.IGNORECASE,
)
_ACCOUNT_WORDS = ("account", "acct")
_ACCOUNT_CUE = re.compile(
    rf"\b(?:account|acct|a/c)\.?(?:[ \t]+(?:number|no\.?|num|nr|id|#))?"
    rf"(?:[ \t]*(?:is|was|:|#|=|-))*[ \t]*(?P<code>{_CODE})\b",
    re.IGNORECASE,
)
_INTERNATIONAL_PHONE = re.compile(r"(?<![\w#+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){2,5}\b")  # +48 601 234 567
_TRUNK_PHONE = re.compile(r"(?<![\w#])0\d{2,4}[ .-]\d{5,8}\b")  # 07700 900123
_PHONE_WORDS = ("phone", "mobile", "cell", "tel", "call", "text", "whatsapp", "reach")
_PHONE_CUE = re.compile(
    rf"\b(?:{'|'.join(_PHONE_WORDS)})\b(?:[ \t]+(?:me|us|number|no\.?|at|on|is|:))*"
    r"[ \t]*(?P<code>\+?\d[\d .-]{8,14}\d)\b",
    re.IGNORECASE,
)
_US_STATES = ["AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC"]
_WORD_STATES = frozenset({"ID", "OK", "OR", "IN", "ME", "HI"})  # also words: only after a comma
_ZIP_VALUE = r"\d{5}(?:-\d{4})?|[A-Z]\d[A-Z][ ]?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}|\d{4,6}"
_ZIP_WORDS = ("zip", "postal", "post", "postcode")
_ZIP_WORD_CUES = (
    re.compile(
        rf"\b(?:zip|zip[ \t]*code|postal[ \t]*code|post[ \t]*code|postcode)\b"
        rf"(?:[ \t]*(?:is|was|:|#|=|to|of))*[ \t]*(?P<code>{_ZIP_VALUE})\b",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b(?P<code>{_ZIP_VALUE})[ \t]+(?:is[ \t]+)?(?:for[ \t]+)?(?:the[ \t]+|my[ \t]+)?"
        rf"(?:zip|postal|post)[ \t]*code\b",
        re.IGNORECASE,
    ),
)
_ZIP_SHAPE_CUES = (
    re.compile(
        rf"\b(?:{'|'.join(s for s in _US_STATES if s not in _WORD_STATES)})\.?,?[ \t]+"
        rf"(?P<code>\d{{5}}(?:-\d{{4}})?)\b"
    ),
    re.compile(rf",[ \t]*(?i:{'|'.join(_US_STATES)})[ \t]+(?P<code>\d{{5}}(?:-\d{{4}})?)\b"),
    # UK ("SW1A 1AA") and Canadian ("M5V 3L9") postcodes: their shape is the cue
    re.compile(r"\b(?P<code>[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2}|[A-Z]\d[A-Z][ ]\d[A-Z]\d)\b"),
)
# right after a street address: ", 00184 Rome", ", Springfield, IL 62704"
_ZIP_AFTER_ADDRESS = re.compile(
    r"[ \t]*,?[ \t]*(?:[A-Za-z .'’-]{1,30},[ \t]*)?(?:[A-Z]{2}[ \t]+)?(?P<code>\d{5}(?:-\d{4})?|\d{4})\b"
)

# --- addresses (near digits too) -------------------------------------------------------

_STREET_TYPES = ["street", "st", "avenue", "ave", "av", "road", "rd", "boulevard", "blvd", "lane", "ln", "drive", "dr", "court", "ct", "place", "pl", "way", "terrace", "ter", "circle", "cir", "parkway", "pkwy", "highway", "hwy", "square", "sq", "trail", "trl", "crescent", "cres", "close", "row", "alley", "loop", "plaza", "grove", "mews"]
_UNIT = r"(?:apt|apartment|suite|ste|unit|flat|fl|floor|#)\.?[ \t]*[A-Za-z0-9-]+"
# "1234 Elm Street", "55 Main St, Apt 4", "1600 Pennsylvania Avenue NW", "6821 1st ave"
_STREET = re.compile(
    rf"\b(?P<number>\d{{1,6}}[A-Za-z]?)[ \t]+(?P<street>(?:[\w'’.-]+[ \t]+){{1,4}}?)"
    rf"(?:{'|'.join(_STREET_TYPES)})\b\.?(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b)?(?:,?[ \t]*\b{_UNIT})?",
    re.IGNORECASE,
)
_UNIT_BEFORE = re.compile(rf"\b{_UNIT},?[ \t]+$", re.IGNORECASE)  # "Apt 5B, 310 W 99th St"
_STREET_FIRST_WORDS = ("via", "viale", "rue", "calle", "avenida", "piazza", "rua", "corso", "chemin", "carrer")
_STREET_NAME_FIRST = (
    rf"(?:{'|'.join(w.capitalize() for w in _STREET_FIRST_WORDS)})"
    r"(?:[ \t]+(?:de|del|della|di|da|la|le|des|du|dos|das|[A-ZÀ-Þ][\w'’-]+)){1,4}"
)
# "18 Via Roma", "Calle Mayor 5": the street type first, a house number on either side
_STREET_FIRST = re.compile(
    rf"\b\d{{1,5}}[a-z]?,?[ \t]+{_STREET_NAME_FIRST}|\b{_STREET_NAME_FIRST},?[ \t]+\d{{1,5}}[a-z]?\b"
)
_GERMANIC_SUFFIXES = ("straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "laan", "straat", "gade", "vej")
_STREET_GERMANIC = re.compile(  # "Hauptstraße 5", "Kerkstraat 12"
    rf"\b[A-ZÄÖÜ][a-zäöüß-]+(?:{'|'.join(re.escape(s) for s in _GERMANIC_SUFFIXES)})[ \t]+\d{{1,4}}[a-z]?\b"
)
_PO_BOX = re.compile(r"\bP\.?[ \t]?O\.?[ \t]+Box[ \t]+\d{1,6}\b", re.IGNORECASE)

# --- usernames -------------------------------------------------------------------------

_HANDLE = re.compile(r"(?<![\w.@])@[A-Za-z0-9_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?")
_USERNAME_CUE = _Cue(
    re.compile(
        r"\b(?:user[ \t]*name|user[ \t]*id|login|log-in|handle|screen[ \t]*name|gamertag|nickname)\b"
        r"(?:[ \t]*(?:is|was|:|=|-|there|here|on[ \t]+the[ \t]+\w+|under))*[ \t]*"
        r"(?P<code>@?[A-Za-z0-9][A-Za-z0-9_.-]{1,30}[A-Za-z0-9_])",
        re.IGNORECASE,
    ),
    (
        "username",
        "user name",
        "user",
        "userid",
        "login",
        "log-in",
        "handle",
        "screen",
        "screenname",
        "gamertag",
        "nickname",
    ),
)
_HANDLE_BEFORE_CUE = _Cue(
    re.compile(
        r"\b(?P<code>[A-Za-z][A-Za-z0-9_.-]{1,30}[A-Za-z0-9_])[ \t]+is[ \t]+my[ \t]+"
        r"(?:user[ \t]*name|login|handle|user[ \t]*id)\b",
        re.IGNORECASE,
    ),
    ("is my",),
    back=40,
    ahead=30,
)
_BARE_HANDLE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{2,29}")


@dataclass(frozen=True)
class PiiSpan:
    """One personal value in a text: `text[start:end]` is of `kind` (a key of PLACEHOLDERS)."""

    start: int
    end: int
    kind: str

    @property
    def placeholder(self) -> str:
        return PLACEHOLDERS[self.kind]


@dataclass(frozen=True)
class Gazetteer:
    """First names; `words` are those that are also a common word, place or brand."""

    names: frozenset[str]
    words: frozenset[str]

    @classmethod
    def read(cls, path: str | Path) -> Gazetteer:
        """A file of one name per line ("<name><TAB>word" for a word-name; # comments)."""
        names: set[str] = set()
        words: set[str] = set()
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            name, _, flag = line.partition("\t")
            names.add(name.strip())
            if flag.strip() == "word":
                words.add(name.strip())
        return cls(frozenset(names), frozenset(words))

    def kind(self, word: str) -> str | None:
        """ "name" (a first name), "word" (a first name that is also a word), or None."""
        w = word[:1].upper() + word[1:].lower()
        if w in self.words:
            return "word"
        return "name" if w in self.names else None


@cache
def default_gazetteer() -> Gazetteer:
    """The shipped first-name list, read once per process (it is immutable package data)."""
    return Gazetteer.read(GAZETTEER_PATH)


def iban_is_valid(value: str) -> bool:
    """ISO 13616: 15-34 letters and digits whose mod-97 checksum (country and check digits
    moved to the end, letters as 10..35) is 1, so one mistyped character fails it."""
    s = re.sub(r"\s+", "", value).upper()
    if not (15 <= len(s) <= 34 and re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", s)):
        return False
    return int("".join(str(int(ch, 36)) for ch in s[4:] + s[:4])) % 97 == 1


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", text)


class PiiScrubber:
    """Finds and masks personal values; see the module docstring for what it finds.

    Cheap to build (the gazetteer is read once per process), so a caller may build one per
    protect list. `protect`: the company's own words and contact details, never masked.
    """

    def __init__(self, *, protect: Iterable[str] = (), gazetteer: Gazetteer | None = None):
        self.protect = tuple(p for p in (str(x).strip() for x in protect) if len(p) >= 3)
        self.gazetteer = gazetteer or default_gazetteer()
        self._protect_lowered = tuple((p, p.lower()) for p in self.protect)
        self._not_names = STOP_WORDS | frozenset(w.lower() for p in self.protect for w in _words(p))
        self._personal_phrases: dict[str, bool] = {}  # protected phrase -> does it look like PII

    # -- public -----------------------------------------------------------------------
    def find(self, text: str, *, known: Mapping[str, str] | None = None) -> list[PiiSpan]:
        """Personal values in `text`, in order, not overlapping. `known`: values found
        elsewhere in the same conversation (value -> kind), masked wherever they stand as
        whole words."""
        t = _Text.of(text)
        return _resolve([*self._candidates(t), *self._known(t, known or {})], self._blocked(t))

    def scrub(self, text: str, *, known: Mapping[str, str] | None = None) -> tuple[str, Counter[str]]:
        """`text` with every personal value replaced by its placeholder, and counts per kind."""
        return _apply(text, self.find(text, known=known))

    def find_conversation(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """`find` for each turn of one conversation, with what every turn revealed (see
        `known_values`); a short turn right after one that asks for a name is a name."""
        ts = [_Text.of(text) for text in texts]
        candidates = [self._candidates(t) for t in ts]
        blocked = [self._blocked(t) for t in ts]
        known: dict[str, str] = {}
        for i, t in enumerate(ts):
            if i > 0 and _ASKS_NAME.search(texts[i - 1]):
                answer = self._name_answer(t.text)
                if answer is not None:
                    candidates[i].append(answer)
            for value, kind in self.known_values(t.text, _resolve(candidates[i], blocked[i])).items():
                known.setdefault(value, kind)
        return [_resolve([*c, *self._known(t, known)], b) for t, c, b in zip(ts, candidates, blocked)]

    def scrub_conversation(self, texts: Sequence[str]) -> list[tuple[str, Counter[str]]]:
        """Each turn of one conversation masked (`find_conversation`), with counts per kind."""
        return [_apply(text, spans) for text, spans in zip(texts, self.find_conversation(texts))]

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
        return [w for w in _words(name) if len(w) >= 3 and w.lower() not in self._not_names | FUNCTION_WORDS]

    def name_values(self, name: str) -> list[str]:
        """`name` and each of its parts: what to mask elsewhere once `name` is known."""
        name = name.strip()
        return [name, *(p for p in self.name_parts(name) if p != name)] if name else []

    # -- what is never masked ------------------------------------------------------------
    def _blocked(self, t: _Text) -> list[tuple[int, int]]:
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
    def _candidates(self, t: _Text) -> list[PiiSpan]:
        """Every finding of every finder, overlaps and all (`_resolve` picks among them)."""
        candidates: list[PiiSpan] = []
        if "@" in t.text:
            candidates += [PiiSpan(m.start(), m.end(), "email") for m in EMAIL.pattern.finditer(t.text)]
        if t.near_digits:
            candidates += self._numbers(t)
            candidates += self._addresses(t)
            candidates += self._zips(t, candidates)
        candidates += self._usernames(t)
        candidates += self._names(t)
        return candidates

    def _numbers(self, t: _Text) -> list[PiiSpan]:
        """IBANs, tracking, account, card, phone and order numbers."""
        out: list[PiiSpan] = []
        for m in t.scan(_IBAN_CANDIDATE):
            groups = list(re.finditer(r"\S+", m.group(0)))
            for n in range(len(groups), 0, -1):  # the longest run of groups that validates
                candidate = m.group(0)[: groups[n - 1].end()]
                if iban_is_valid(candidate):
                    out.append(PiiSpan(m.start(), m.start() + len(candidate), "iban"))
                    break
        if "1z" in t.lowered:
            out += [PiiSpan(m.start(), m.end(), "tracking_number") for m in t.scan(_UPS)]
        out += [PiiSpan(m.start(), m.end(), "tracking_number") for m in t.scan(_S10)]
        if t.has(_TRACKING_WORDS):
            for m in t.scan(_TRACKING_CUE):
                compact = re.sub(r"[ -]", "", m.group("code"))
                if 8 <= len(compact) <= 34 and sum(c.isdigit() for c in compact) >= 6:
                    out.append(PiiSpan(m.start("code"), m.end("code"), "tracking_number"))
        if t.has(_ACCOUNT_WORDS) or "a/c" in t.lowered:
            out += [
                PiiSpan(m.start("code"), m.end("code"), "account_number")
                for m in t.scan(_ACCOUNT_CUE)
                if sum(c.isdigit() for c in m.group("code")) >= 5
            ]
        out += [PiiSpan(m.start(), m.end(), "card_number") for m in t.scan(CARD.pattern)]
        out += [PiiSpan(m.start(), m.end(), "phone") for m in t.scan(PHONE.pattern)]
        extra = [_TRUNK_PHONE] + ([_INTERNATIONAL_PHONE] if "+" in t.text else [])
        out += [
            PiiSpan(m.start(), m.end(), "phone")
            for p in extra
            for m in t.scan(p)
            if 8 <= sum(c.isdigit() for c in m.group(0)) <= 15
        ]
        if t.has(_PHONE_WORDS):
            out += [
                PiiSpan(m.start("code"), m.end("code"), "phone")
                for m in t.scan(_PHONE_CUE)
                if 8 <= sum(c.isdigit() for c in m.group("code")) <= 15
            ]
        out += [PiiSpan(m.start(), m.end(), "order_id") for m in t.scan(ORDER_ID.pattern)]
        return out

    def _addresses(self, t: _Text) -> list[PiiSpan]:
        out: list[PiiSpan] = []
        if t.has(_STREET_TYPES):
            for m in t.scan(_STREET):
                if any(w.lower().strip(".,") in FUNCTION_WORDS for w in m.group("street").split()):
                    continue  # "2 items on the way" is not an address
                unit = _UNIT_BEFORE.search(t.text, max(0, m.start() - 20), m.start())
                out.append(PiiSpan(unit.start() if unit else m.start(), m.end(), "street_address"))
        if t.has(_STREET_FIRST_WORDS):
            out += [PiiSpan(m.start(), m.end(), "street_address") for m in t.scan(_STREET_FIRST)]
        if any(s in t.lowered for s in _GERMANIC_SUFFIXES):
            out += [PiiSpan(m.start(), m.end(), "street_address") for m in t.scan(_STREET_GERMANIC)]
        if "box" in t.words:
            out += [PiiSpan(m.start(), m.end(), "street_address") for m in t.scan(_PO_BOX)]
        return out

    def _zips(self, t: _Text, found: Sequence[PiiSpan]) -> list[PiiSpan]:
        patterns = list(_ZIP_SHAPE_CUES) + (list(_ZIP_WORD_CUES) if t.has(_ZIP_WORDS) else [])
        out = [PiiSpan(m.start("code"), m.end("code"), "zip_code") for p in patterns for m in t.scan(p)]
        for s in found:
            if s.kind == "street_address":
                m = _ZIP_AFTER_ADDRESS.match(t.text, s.end)
                if m:
                    out.append(PiiSpan(m.start("code"), m.end("code"), "zip_code"))
        return out

    def _usernames(self, t: _Text) -> list[PiiSpan]:
        out: list[PiiSpan] = []
        if "@" in t.text:
            out += [PiiSpan(m.start(), m.end(), "username") for m in _HANDLE.finditer(t.text)]
        for cue in (_USERNAME_CUE, _HANDLE_BEFORE_CUE):
            for m in cue.finditer(t):
                value = m.group("code")
                if re.search(r"[\d_.@]", value) or self._plain_handle(t.text, m, cue is _HANDLE_BEFORE_CUE):
                    out.append(PiiSpan(m.start("code"), m.end("code"), "username"))
        # a message that is nothing but a handle: "cminh730"
        stripped = t.text.strip().rstrip(".!")
        if (
            _BARE_HANDLE.fullmatch(stripped)
            and _DIGITS.search(stripped)
            and len(re.findall(r"[A-Za-z]", stripped)) >= 3
        ):
            start = t.text.find(stripped)
            out.append(PiiSpan(start, start + len(stripped), "username"))
        return out

    @staticmethod
    def _plain_handle(text: str, m: re.Match[str], before_cue: bool) -> bool:
        """A plain lowercase word is a handle only when introduced as one: "username:
        mrogers", "mrogers is my login" - not "username changed", "login details"."""
        value = m.group("code")
        if not value.islower() or len(value) < 4 or value in FUNCTION_WORDS:
            return False
        if re.search(r"(?:ed|ing|details|page|link|screen)$", value):
            return False
        return before_cue or re.search(r"(?i)(?:\bis|:|=)[ \t]*@?$", text[: m.start("code")]) is not None

    def _names(self, t: _Text) -> list[PiiSpan]:
        out: list[PiiSpan] = []
        for cue in _NAME_CUES:
            for m in cue.finditer(t):
                span = self._cut_name(t.text, m.start("name"), m.end("name"))
                if span is None:
                    continue
                words = t.text[span.start : span.end].split()
                if cue.weak and len(words) < 2 and self.gazetteer.kind(words[0]) is None:
                    continue
                out.append(span)
        for m in _LOWER_NAME_CUE.finditer(t):
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
        for token in _TOKEN_RE.finditer(text, start, end):
            w = token.group(0).lower()
            if w in self._not_names or (kept and w in _NOT_SURNAMES):
                break
            kept.append(token)
        return PiiSpan(kept[0].start(), kept[-1].end(), "name") if kept else None

    def _gazetteer_names(self, text: str) -> list[PiiSpan]:
        """Capitalised first names from the gazetteer, with the capitalised words right after
        them (up to two: the surname). A word-name needs a surname to count."""
        out: list[PiiSpan] = []
        tokens = list(_CAP_TOKEN_RE.finditer(text))
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
            and w.lower() not in _NOT_SURNAMES
            and self.gazetteer.kind(w) != "word"
        )

    def _whole_message_name(self, text: str) -> PiiSpan | None:
        """A message that is only a name ("Crystal Minh", "alessandro phoenix")."""
        stripped = text.strip().rstrip(".!")
        tokens = stripped.split()
        if not 1 <= len(tokens) <= 3 or not all(_TOKEN_RE.fullmatch(w) for w in tokens):
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
        if not 1 <= len(tokens) <= 4 or not all(_TOKEN_RE.fullmatch(w) for w in tokens):
            return None
        if any(w.lower() in self._not_names or w.lower() in FUNCTION_WORDS for w in tokens):
            return None
        start = text.find(stripped)
        return PiiSpan(start, start + len(stripped), "name")

    def _known(self, t: _Text, known: Mapping[str, str]) -> list[PiiSpan]:
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


def _resolve(candidates: Iterable[PiiSpan], blocked: Sequence[tuple[int, int]]) -> list[PiiSpan]:
    """Non-overlapping spans: by rank, then the longer; none that touches a blocked range."""
    chosen: list[PiiSpan] = []
    taken: list[tuple[int, int]] = list(blocked)
    for s in sorted(candidates, key=lambda s: (_RANK[s.kind], -(s.end - s.start), s.start)):
        if s.end <= s.start or any(s.start < e and b < s.end for b, e in taken):
            continue
        chosen.append(s)
        taken.append((s.start, s.end))
    return sorted(chosen, key=lambda s: s.start)


def _apply(text: str, spans: Sequence[PiiSpan]) -> tuple[str, Counter[str]]:
    counts: Counter[str] = Counter()
    out: list[str] = []
    pos = 0
    for s in spans:
        start, end = s.start, s.end
        if text[start - 2 : start] == "{{" and text[end : end + 2] == "}}":  # "{{732201349959}}"
            start, end = start - 2, end + 2
        out += [text[pos:start], s.placeholder]
        counts[s.kind] += 1
        pos = end
    out.append(text[pos:])
    return "".join(out), counts
