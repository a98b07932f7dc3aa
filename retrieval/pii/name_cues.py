"""The patterns that find personal names by their cues: "my name is ...", "Hi Anna,",
"my wife Ingrid", "Mr ...", sign-offs, and a question that asks for a name."""

from __future__ import annotations

import re

from retrieval.pii.text import Cue

_CAP = r"[A-ZÀ-ÖØ-Þ]"
_LOW = r"[a-zß-öø-ÿ]"
_WORD = rf"{_CAP}{_LOW}+(?:{_CAP}{_LOW}+)?(?:['’-](?!s\b){_CAP}?{_LOW}+)?"  # Anna, McDonald, O'Brien (not Anna's)
_NAME = rf"{_WORD}(?:[ \t]+{_WORD}){{0,2}}"
_LWORD = rf"{_LOW}+(?:['’-]{_LOW}+)?"
_TITLE = r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?[ \t]+)"
_END = r"(?=[ \t]*(?:[.,!?;:)\n]|$))"
CAP_TOKEN_RE = re.compile(rf"(?<![\w'’-]){_WORD}(?![\w'’-])")

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
NAME_CUES: tuple[Cue, ...] = (
    Cue(
        re.compile(
            rf"\b(?i:my[ \t]+name[ \t]+is|my[ \t]+name's|name[ \t]+is|name[ \t]+was|call[ \t]+me|"
            rf"full[ \t]+name[ \t]*:?|name[ \t]*:|account[ \t]+holder[ \t]*:?)[ \t]+{_TITLE}?"
            rf"(?P<name>{_NAME})\b"
        ),
        ("name", "name's", "call me", "holder"),
    ),
    Cue(
        re.compile(rf"\b(?i:i'm|i[ \t]+am|im|i’m)[ \t]+{_TITLE}?(?P<name>{_NAME}){_END}"), ("i'm", "i am", "im", "i’m")
    ),
    Cue(
        re.compile(
            rf"\b(?i:this[ \t]+is)[ \t]+{_TITLE}?(?P<name>{_NAME})"
            rf"(?=[ \t]*(?:[.,!?;:)\n]|$)|[ \t]+(?:from|with|here|speaking|again)\b)"
        ),
        ("this is",),
    ),
    Cue(
        re.compile(
            rf"\b(?i:it's|it’s|its|it[ \t]+is)[ \t]+(?P<name>{_NAME})"
            rf"(?=[ \t]*(?:[.,!?;:)\n]|$)|[ \t]+(?:from|with|here|speaking|again)\b)"
        ),
        ("it's", "it’s", "its", "it is"),
        weak=True,
    ),
    Cue(
        re.compile(
            rf"\b(?i:hi|hello|hey|dear|thanks|thank[ \t]+you|thx|cheers|bye|goodbye|"
            rf"good[ \t]+(?:morning|afternoon|evening))[ \t]*,?[ \t]+{_TITLE}?(?P<name>{_NAME}){_END}"
        ),
        _SALUTATIONS,
    ),
    # sign-offs, capitalised, at the start of a line or sentence: "Best, Julia", "Regards,\nTom"
    Cue(
        re.compile(
            rf"(?:^|(?<=\n)|(?<=[.!?][ \t]))(?:Best|Regards|Best regards|Kind regards|Warm regards|"
            rf"Many thanks|Sincerely|Yours|Yours truly|Warmly|Cheers|Thanks)[ \t]*,[ \t\n]*{_TITLE}?"
            rf"(?P<name>{_NAME}){_END}"
        ),
        ("best", "regards", "thanks", "sincerely", "yours", "warmly", "cheers"),
    ),
    # "Will Turner here", "Chen Wei speaking"
    Cue(
        re.compile(rf"(?:^|(?<=[\n.!?,;:][ \t]))[ \t]*(?P<name>{_NAME})[ \t]+(?i:here|speaking)\b"),
        ("here", "speaking"),
        weak=True,
        back=70,
        ahead=12,
    ),
    Cue(re.compile(rf"(?P<name>{_NAME})[ \t]+(?i:is[ \t]+my[ \t]+name)\b"), ("is my name",), back=70, ahead=12),
    # "Victoria from the billing team", "Sam from returns"
    Cue(
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
    Cue(
        re.compile(
            rf"\b(?i:my|our|his|her|their)[ \t]+(?i:{'|'.join(_RELATIVES)})[ \t]*,?[ \t]+"
            rf"(?P<name>{_NAME})"
        ),
        _RELATIVES,
        back=8,
    ),
    # "spoke to Jessica", "talked with Mark Davies"
    Cue(
        re.compile(
            rf"\b(?i:spoke|spoken|speak|talked|talking|chatted|chatting)[ \t]+(?i:to|with)[ \t]+"
            rf"(?P<name>{_NAME})"
        ),
        ("spoke", "spoken", "speak", "talked", "talking", "chatted", "chatting"),
        weak=True,
    ),
    # "can you tell Anna", "signed for by Sam Cole"
    Cue(
        re.compile(
            rf"\b(?i:tell|ask|asked|ask[ \t]+for|named|signed[ \t]+for[ \t]+by|addressed[ \t]+to|"
            rf"on[ \t]+behalf[ \t]+of|attention|attn:?)[ \t]+(?P<name>{_NAME})"
        ),
        ("tell", "ask", "asked", "named", "signed", "addressed", "behalf", "attention", "attn"),
        weak=True,
    ),
    # a title and a capitalised word: "Mrs Nakamura", "Dr. Okafor"
    Cue(
        re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?[ \t]+(?P<name>{_NAME})"),
        ("mr", "mrs", "ms", "miss", "mx", "dr", "prof"),
    ),
)
# Strong cues after which a lowercase word from the gazetteer is a name ("my name is jose").
LOWER_NAME_CUE = Cue(
    re.compile(
        rf"\b(?i:my[ \t]+name[ \t]+is|my[ \t]+name's|name[ \t]*:|call[ \t]+me|i[ \t]+am|i'm|im|i’m|this[ \t]+is)"
        rf"[ \t]+(?P<first>{_LWORD})(?:[ \t]+(?P<last>{_LWORD}))?(?P<end>{_END})?"
    ),
    ("name", "name's", "call me", "i am", "i'm", "im", "i’m", "this is"),
)
# Someone asking for a name: a short message right after it is one.
ASKS_NAME = re.compile(
    r"\b(?:your|ur)[ \t]+(?:full[ \t]+|first[ \t]+|last[ \t]+|account[ \t]+)?name\b|"
    r"\bwho[ \t]+am[ \t]+i[ \t]+(?:speaking|talking|chatting)[ \t]+(?:to|with)\b|\bname[ \t]+please\b",
    re.IGNORECASE,
)
