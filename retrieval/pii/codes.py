"""The PII scrubber's finders of numbers, codes, addresses and handles: IBANs, tracking,
account, card, phone and order numbers, street addresses, zip codes and usernames.

Numbers and addresses are looked for only near digits (`ScanText.scan`), cue-led codes only
where their cue words are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from retrieval.entities import CARD, ORDER_ID, PHONE
from retrieval.pii.spans import PiiSpan
from retrieval.pii.text import DIGITS, Cue, ScanText
from retrieval.pii.vocabulary import FUNCTION_WORDS, word_list

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
_US_STATES = word_list(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC"
)
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

_STREET_TYPES = word_list(
    "street st avenue ave av road rd boulevard blvd lane ln drive dr court ct place pl way terrace ter circle cir "
    "parkway pkwy highway hwy square sq trail trl crescent cres close row alley loop plaza grove mews"
)
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
_USERNAME_CUE = Cue(
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
_HANDLE_BEFORE_CUE = Cue(
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


def iban_is_valid(value: str) -> bool:
    """ISO 13616: 15-34 letters and digits whose mod-97 checksum (country and check digits
    moved to the end, letters as 10..35) is 1, so one mistyped character fails it."""
    s = re.sub(r"\s+", "", value).upper()
    if not (15 <= len(s) <= 34 and re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", s)):
        return False
    return int("".join(str(int(ch, 36)) for ch in s[4:] + s[:4])) % 97 == 1


def find_numbers(t: ScanText) -> list[PiiSpan]:
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


def find_addresses(t: ScanText) -> list[PiiSpan]:
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


def find_zips(t: ScanText, found: Sequence[PiiSpan]) -> list[PiiSpan]:
    patterns = list(_ZIP_SHAPE_CUES) + (list(_ZIP_WORD_CUES) if t.has(_ZIP_WORDS) else [])
    out = [PiiSpan(m.start("code"), m.end("code"), "zip_code") for p in patterns for m in t.scan(p)]
    for s in found:
        if s.kind == "street_address":
            m = _ZIP_AFTER_ADDRESS.match(t.text, s.end)
            if m:
                out.append(PiiSpan(m.start("code"), m.end("code"), "zip_code"))
    return out


def find_usernames(t: ScanText) -> list[PiiSpan]:
    out: list[PiiSpan] = []
    if "@" in t.text:
        out += [PiiSpan(m.start(), m.end(), "username") for m in _HANDLE.finditer(t.text)]
    for cue in (_USERNAME_CUE, _HANDLE_BEFORE_CUE):
        for m in cue.finditer(t):
            value = m.group("code")
            if re.search(r"[\d_.@]", value) or _plain_handle(t.text, m, cue is _HANDLE_BEFORE_CUE):
                out.append(PiiSpan(m.start("code"), m.end("code"), "username"))
    # a message that is nothing but a handle: "cminh730"
    stripped = t.text.strip().rstrip(".!")
    if _BARE_HANDLE.fullmatch(stripped) and DIGITS.search(stripped) and len(re.findall(r"[A-Za-z]", stripped)) >= 3:
        start = t.text.find(stripped)
        out.append(PiiSpan(start, start + len(stripped), "username"))
    return out


def _plain_handle(text: str, m: re.Match[str], before_cue: bool) -> bool:
    """A plain lowercase word is a handle only when introduced as one: "username:
    mrogers", "mrogers is my login" - not "username changed", "login details"."""
    value = m.group("code")
    if not value.islower() or len(value) < 4 or value in FUNCTION_WORDS:
        return False
    if re.search(r"(?:ed|ing|details|page|link|screen)$", value):
        return False
    return before_cue or re.search(r"(?i)(?:\bis|:|=)[ \t]*@?$", text[: m.start("code")]) is not None
