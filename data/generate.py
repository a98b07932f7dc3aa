#!/usr/bin/env python3
"""Generate csbot's demo corpus for a fictional online store, Larkspur Goods.

    python data/generate.py [--out DIR]      # default: the folder this script lives in

Writes company.json, kb.jsonl, conversations.jsonl, intents.csv, heldout.jsonl and orders.json. Standard library
only and deterministic: every random choice comes from a seeded `random.Random`, every
table is an ordered list, and nothing depends on the clock, the environment or hash
ordering, so two runs write byte-identical files.

Layout of this file:
  1. COMPANY            - the store's facts (the single source of truth); FACTS flattens
                          them into the strings templates use ({std_price}, ...).
  2. Phrase machinery   - a tiny template grammar "(a|b|)" plus noise (typos, casing,
                          punctuation) shared by intents.csv and conversation turns.
  3. INTENTS            - per intent: customer phrasings, and per topic the agent's
                          answers (grounded in FACTS), follow-ups and escalation queue.
  4. KB articles        - knowledge-base texts written from FACTS.
  5. Builders           - intents.csv, conversations.jsonl, kb.jsonl, company.json,
                          heldout.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
from datetime import date, timedelta
from pathlib import Path

SEED = 20260301
EXAMPLES_PER_INTENT = 72
N_CONVERSATIONS = 430
# Share of the conversations of each intent with a `self_service` topic that get a
# self-service answer (no order lookup) instead of a lookup.
SELF_SERVICE_SHARE = 0.4
# heldout.jsonl: conversations the learning loop scores candidate models on. Made by the same
# builders with their own seed and ids (`heldout-NNNN`), never used for training or the index,
# so a model is always judged on conversations it has not seen.
N_HELDOUT = 60
HELDOUT_SEED = SEED + 2
# orders.json: the demo backend the business actions read, with its own seed
ORDERS_SEED = SEED + 3

# --------------------------------------------------------------------------------------
# 1. The store's facts: everything an agent reply or KB article says about prices and
#    policies is formatted from this dict.
# --------------------------------------------------------------------------------------


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def _ship(id_: str, name: str, price: float, delivery: str) -> dict:
    return {"id": id_, "name": name, "price_usd": price, "price": money(price), "delivery_time": delivery}


COMPANY: dict = {
    "name": "Larkspur Goods",
    "description": (
        "Larkspur Goods is an online store for home, kitchen and outdoor goods. "
        "Orders ship from our warehouse in Columbus, Ohio."
    ),
    "founded": 2014,
    "website": "larkspurgoods.example",
    "contact_page": "larkspurgoods.example/contact",
    "support_email": "help@larkspurgoods.example",
    # a vanity number: the bot may quote it without the PII masker taking it for a phone
    "phone": "1-800-LARKSPUR",
    "support_hours": {
        "weekdays": "Monday to Friday, 8 am to 8 pm ET",
        "weekends": "Saturday and Sunday, 10 am to 4 pm ET",
        "holidays": "closed on US public holidays",
    },
    "assistant_hours": "the chat assistant answers 24/7; human agents join during support hours",
    "email_response_time": "1 business day",
    "currency": "USD",
    "order_processing": {
        "cutoff": "2 pm ET",
        "rule": "orders placed before 2 pm ET on a business day ship the same day; later orders ship the next business day",
    },
    "carriers": ["ParcelCo", "Swiftline", "Atlas Post"],
    "shipping_options": [
        _ship("standard", "Standard", 4.99, "3-5 business days"),
        _ship("express", "Express", 12.99, "1-2 business days"),
        _ship("next_day", "Next Day", 24.99, "the next business day"),
    ],
    "free_shipping": {
        "threshold_usd": 50.0,
        "threshold": money(50.0),
        "applies_to": "Standard shipping to addresses in the contiguous US",
    },
    "international_shipping": {
        "countries": ["Canada", "the United Kingdom", "the European Union", "Australia"],
        "price_usd": 19.99,
        "price": money(19.99),
        "delivery_time": "7-14 business days",
        "duties": "import duties and taxes are paid by the recipient on delivery",
    },
    "delivery_delays": {
        "lost_after_business_days": 5,
        "rule": "a parcel more than 5 business days past its estimated delivery date is treated as lost and replaced or refunded",
    },
    "address_change": "possible until the order ships; after that the carrier's redirect service can sometimes help",
    "cancellation": {
        "window_hours": 2,
        "rule": "orders can be cancelled until they are packed, usually within 2 hours of ordering; shipped orders can be returned instead",
    },
    "order_changes": "items, sizes, colours and shipping speed can be changed while the order is still processing",
    "returns": {
        "window_days": 30,
        "condition": "unused and in the original packaging",
        "return_label_fee_usd": 5.95,
        "return_label_fee": money(5.95),
        "free_return_when": "the item arrived damaged, faulty or wrong, or you are a Larkspur Plus member",
        "non_returnable": ["gift cards", "custom-engraved items", "opened bedding and pillows"],
        "exchanges": "free for a different size or colour of the same item",
    },
    "refunds": {
        "processing_time": "5-7 business days",
        "to": "the original payment method",
        "starts": "once the return reaches our warehouse and is inspected, usually within 2 business days of arrival",
    },
    "damaged_wrong_missing": {
        "report_within_days": 7,
        "remedy": "a free replacement or a full refund, including shipping",
        "needs": "the order number and a photo of the item and the packaging",
    },
    "warranty": {
        "length_months": 12,
        "covers": "defects in materials and workmanship under normal use",
        "excludes": "accidental damage, misuse and normal wear and tear",
        "remedy": "repair, replacement or refund",
    },
    "subscription": {
        "name": "Larkspur Plus",
        "monthly_price_usd": 9.99,
        "monthly_price": money(9.99),
        "annual_price_usd": 99.0,
        "annual_price": money(99.0),
        "free_trial_days": 30,
        "benefits": ["free Express shipping on every order", "free return labels", "early access to sales"],
        "cancel": "anytime in Account > Membership; benefits last until the end of the paid period",
    },
    "payment_methods": [
        "Visa",
        "Mastercard",
        "American Express",
        "Discover",
        "PayPal",
        "Apple Pay",
        "Google Pay",
        "Larkspur gift cards",
    ],
    "payment_not_accepted": ["cash on delivery", "checks", "cryptocurrency"],
    "payment_holds": "a declined attempt can show as a pending hold that the bank releases within 3-5 business days",
    "invoices": "a PDF invoice for every order is in Account > Orders and is attached to the shipping confirmation email",
    "promo_codes": {
        "per_order": 1,
        "welcome_code": "WELCOME10",
        "welcome_discount_percent": 10,
        "rules": "one code per order; codes cannot be applied after an order is placed or combined with other offers",
    },
    "gift_cards": {
        "amounts": [money(25.0), money(50.0), money(100.0)],
        "expiry": "never expire",
        "rules": "cannot be exchanged for cash or used to buy other gift cards",
    },
    "password_reset_link_minutes": 60,
    "account_deletion": {"completed_within_days": 30, "order_records_kept_years": 7},
    "privacy": "we never sell personal data; marketing emails can be turned off in Account > Preferences",
    "complaints": {
        "acknowledged_within": "1 business day",
        "resolved_within": "10 business days",
        "handled_by": "the Customer Care team lead",
    },
}


def build_facts(c: dict) -> dict[str, str]:
    """Flat strings for templates; every value is derived from COMPANY."""
    ship = {s["id"]: s for s in c["shipping_options"]}
    hours = c["support_hours"]
    sub = c["subscription"]
    return {
        "name": c["name"],
        "site": c["website"],
        "contact_page": c["contact_page"],
        "support_email": c["support_email"],
        "phone": c["phone"],
        "hours": hours["weekdays"],
        "weekend_hours": hours["weekends"],
        "email_response": c["email_response_time"],
        "cutoff": c["order_processing"]["cutoff"],
        "std_price": ship["standard"]["price"],
        "std_time": ship["standard"]["delivery_time"],
        "exp_price": ship["express"]["price"],
        "exp_time": ship["express"]["delivery_time"],
        "nd_price": ship["next_day"]["price"],
        "nd_time": ship["next_day"]["delivery_time"],
        "free_threshold": c["free_shipping"]["threshold"],
        "intl_price": c["international_shipping"]["price"],
        "intl_time": c["international_shipping"]["delivery_time"],
        "intl_countries": ", ".join(c["international_shipping"]["countries"][:-1])
        + " and "
        + c["international_shipping"]["countries"][-1],
        "lost_days": str(c["delivery_delays"]["lost_after_business_days"]),
        "cancel_hours": str(c["cancellation"]["window_hours"]),
        "return_days": str(c["returns"]["window_days"]),
        "return_fee": c["returns"]["return_label_fee"],
        "refund_time": c["refunds"]["processing_time"],
        "report_days": str(c["damaged_wrong_missing"]["report_within_days"]),
        "warranty_months": str(c["warranty"]["length_months"]),
        "plan": sub["name"],
        "plan_month": sub["monthly_price"],
        "plan_year": sub["annual_price"],
        "trial_days": str(sub["free_trial_days"]),
        "payment_list": ", ".join(c["payment_methods"][:-1]) + " and " + c["payment_methods"][-1],
        "hold_days": "3-5 business days",
        "welcome_code": c["promo_codes"]["welcome_code"],
        "welcome_pct": str(c["promo_codes"]["welcome_discount_percent"]),
        "gift_amounts": ", ".join(c["gift_cards"]["amounts"][:-1]) + " and " + c["gift_cards"]["amounts"][-1],
        "reset_minutes": str(c["password_reset_link_minutes"]),
        "delete_days": str(c["account_deletion"]["completed_within_days"]),
        "records_years": str(c["account_deletion"]["order_records_kept_years"]),
        "complaint_ack": c["complaints"]["acknowledged_within"],
        "complaint_resolve": c["complaints"]["resolved_within"],
    }


FACTS = build_facts(COMPANY)

# Fillers for customer phrasings and per-order system notes.
ITEMS = [
    "desk lamp",
    "blender",
    "throw blanket",
    "hiking backpack",
    "coffee grinder",
    "set of mugs",
    "cast iron pan",
    "yoga mat",
    "bluetooth speaker",
    "rain jacket",
    "ceramic vase",
    "kettle",
    "pillow set",
    "camping chair",
    "air fryer",
    "wall clock",
    "knife block",
    "picnic basket",
    "bath towels",
    "table runner",
    "water bottle",
    "plant stand",
    "duvet cover",
    "toaster",
]
FIRST_NAMES = [
    "ana",
    "ben",
    "chloe",
    "dev",
    "elena",
    "farid",
    "grace",
    "hugo",
    "ines",
    "jamal",
    "kim",
    "leo",
    "maria",
    "noah",
    "olga",
    "priya",
    "quinn",
    "rosa",
    "sam",
    "tomas",
    "uma",
    "victor",
    "wen",
    "yusuf",
    "zoe",
    "mateo",
    "hana",
    "liam",
    "amara",
    "oskar",
]
LAST_NAMES = [
    "kowalski",
    "nguyen",
    "smith",
    "garcia",
    "okafor",
    "larsen",
    "rossi",
    "tanaka",
    "dubois",
    "mensah",
    "novak",
    "silva",
    "brennan",
    "haddad",
    "ivanova",
    "lund",
    "moreau",
    "patel",
]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.test", "inbox.test"]
CARD_BRANDS = ["Visa", "Mastercard", "American Express", "Discover"]

# --------------------------------------------------------------------------------------
# 2. Phrase machinery: "(a|b|)" picks one alternative (an empty one makes the group
#    optional; groups nest). {order}, {email}, {item} are slots, filled after the noise
#    so values are never misspelt; agent templates also use the {fact} names of FACTS.
# --------------------------------------------------------------------------------------

_GROUP = re.compile(r"\(([^()]*)\)")
_SLOT = re.compile(r"(\{\w+\})")


def expand(rng: random.Random, template: str) -> str:
    while (m := _GROUP.search(template)) is not None:
        template = template[: m.start()] + rng.choice(m.group(1).split("|")) + template[m.end() :]
    return tidy(template)


def tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.?!:;])", r"\1", text)
    text = re.sub(r",([,.?!])", r"\1", text)
    text = re.sub(r"^[,.;:]\s*", "", text)
    return text


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


MISSPELLINGS = {
    "order": ["ordr", "oder", "orderr"],
    "package": ["pakage", "packge", "pacakge"],
    "parcel": ["parcle", "parsel"],
    "where": ["wher", "whre"],
    "cancel": ["cancle", "cansel"],
    "address": ["adress", "addres"],
    "receive": ["recieve"],
    "received": ["recieved", "recived"],
    "refund": ["refnd", "refunde"],
    "password": ["pasword", "passwrod"],
    "account": ["acount", "accnt"],
    "delivery": ["delivary", "delievery"],
    "subscription": ["subscripton", "subsciption"],
    "warranty": ["waranty", "warrenty"],
    "invoice": ["invoce", "invoise"],
    "payment": ["paymnet", "payement"],
    "damaged": ["damgaed", "dammaged"],
    "broken": ["borken", "brokn"],
    "because": ["becuase", "cuz"],
    "please": ["pls", "plz", "pleas"],
    "thanks": ["thx", "thanx"],
    "you": ["u"],
    "your": ["ur", "yuor"],
    "shipping": ["shiping", "shippng"],
    "return": ["retrun", "retun"],
    "wrong": ["wrogn", "wrng"],
    "change": ["chnage", "chage"],
    "still": ["stil"],
    "haven't": ["havent", "havnt"],
    "don't": ["dont"],
    "can't": ["cant"],
    "it's": ["its"],
    "i'm": ["im"],
    "what's": ["whats"],
    "where's": ["wheres"],
    "delete": ["delte", "delet"],
    "email": ["e-mail", "emial"],
    "arrived": ["arived", "arrivd"],
    "code": ["cdoe"],
    "discount": ["discunt", "dicount"],
    "tomorrow": ["tomorow", "tmrw"],
    "really": ["realy"],
    "something": ["somthing", "smth"],
    "money": ["mony"],
    "number": ["numbr"],
    "subscribe": ["subscibe"],
    "complaint": ["complant", "complaint"],
    "customer": ["costumer", "cusomer"],
    "service": ["servise", "srvice"],
    "hello": ["helo", "hallo"],
    "update": ["updte"],
    "tracking": ["trackng", "traking"],
    "charged": ["chargd", "charg"],
    "card": ["crad"],
}


def _char_typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # swap neighbours
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    if kind == 1:  # drop a letter
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double a letter


def _map_outside_slots(text: str, fn) -> str:
    return "".join(part if _SLOT.fullmatch(part) else fn(part) for part in _SLOT.split(text))


def add_typos(rng: random.Random, text: str, n: int = 1) -> str:
    def one(seg: str) -> str:
        words = seg.split(" ")
        known = [i for i, w in enumerate(words) if w.lower().strip(",.?!") in MISSPELLINGS]
        plain = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
        if known and (not plain or rng.random() < 0.7):
            i = rng.choice(known)
            core = words[i].lower().strip(",.?!")
            words[i] = words[i].lower().replace(core, rng.choice(MISSPELLINGS[core]))
        elif plain:
            i = rng.choice(plain)
            words[i] = _char_typo(rng, words[i])
        return " ".join(words)

    for _ in range(n):
        text = _map_outside_slots(text, one)
    return text


# A customer's writing style, fixed for a whole conversation (or per intents.csv row).
STYLES = [
    # name, weight, lowercase all, strip punctuation, typo count, drop apostrophes
    ("careful", 5, False, False, 0, False),
    ("casual", 5, True, False, 0, False),
    ("hurried", 3, True, True, 0, True),
    ("sloppy", 1, True, True, 2, True),
    ("typo", 3, False, False, 1, False),
]


def pick_style(rng: random.Random) -> tuple:
    return rng.choices(STYLES, weights=[s[1] for s in STYLES])[0]


def apply_style(rng: random.Random, text: str, style: tuple) -> str:
    _, _, lower, nopunct, typos, noapos = style
    text = _map_outside_slots(text, str.lower) if lower else capitalise(text)
    if noapos:
        text = _map_outside_slots(text, lambda s: s.replace("'", ""))
    if nopunct:
        text = _map_outside_slots(text, lambda s: re.sub(r":\(|[.,?!;:]+", "", s))
    if typos:
        text = add_typos(rng, text, typos)
    return tidy(text)


PREFIXES = [
    "hi, ",
    "hello, ",
    "hey, ",
    "hi there, ",
    "good morning, ",
    "excuse me, ",
    "quick question: ",
    "hi team, ",
    "um ",
    "ok so ",
    "so ",
    "sorry to bother you, ",
    "hello? ",
    "yes hi, ",
]
SUFFIXES = [
    " please",
    " thanks",
    " thank you",
    " asap",
    " pls",
    " thx",
    ", thanks in advance",
    " :(",
    " ??",
    " please help",
    " if possible",
]


def decorate(rng: random.Random, text: str, p_prefix: float = 0.25, p_suffix: float = 0.25) -> str:
    """Greetings in front, politeness or urgency behind (before the final punctuation)."""
    if rng.random() < p_suffix:
        m = re.search(r"[.?!]+$", text)
        end = m.group(0) if m else ""
        body = text[: len(text) - len(end)]
        suffix = rng.choice(SUFFIXES)
        text = body + suffix + ("" if suffix.strip()[-1] in ":(?" else end)
    if rng.random() < p_prefix:
        keep_case = text.startswith(("I ", "I'"))
        text = rng.choice(PREFIXES) + (text if keep_case else text[:1].lower() + text[1:])
    return text


def fmt_order(rng: random.Random, number: str) -> str:
    return rng.choices([f"#{number}", number, f"ORD-{number}"], weights=[45, 30, 25])[0]


def make_email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = rng.choice(
        [
            f"{first}.{last[0]}",
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}_{last[:3]}{rng.randint(10, 99)}",
            f"{first}{rng.randint(1970, 2005)}",
            f"{last}.{first}",
        ]
    )
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def customer_says(
    rng: random.Random, template: str, style: tuple, slots: dict[str, str], prefix: float = 0.0, suffix: float = 0.0
) -> str:
    text = decorate(rng, expand(rng, template), prefix, suffix)
    text = apply_style(rng, text, style)
    return text.format_map(slots)


def agent_says(rng: random.Random, template: str, ctx: dict[str, str]) -> str:
    return capitalise(expand(rng, template).format_map({**FACTS, **ctx}))


# --------------------------------------------------------------------------------------
# 3. Intents. Each intent has topics; a topic has the customer's phrasings (`ask`, and
#    `ask_slot` with a value in it), the slot the agent needs first (None, "order",
#    "email"), an optional empathetic `lead` before asking for it, and `answer`: agent
#    templates (a dict by order state when the answer depends on it), and an optional
#    `weight` (default 3) for how often conversations pick it. `followups` (per topic, else
#    per intent) are (customer templates, agent templates[, order states they fit]);
#    `queue` names the team an escalation goes to.
#    Order topics may also have `self_service`: answers given with NO order lookup (no
#    system turn), i.e. guidance from company policy that is true whatever the order's
#    state; they may name the customer's order number but nothing else about the order.
#    `self_lead` replaces `lead` there when the usual lead promises a lookup. A follow-up
#    fits a self-service conversation when its states include SELF_SERVICE (or it has none).
# --------------------------------------------------------------------------------------

SELF_SERVICE = "self_service"  # the pseudo order state of a conversation without a lookup

SMALLTALK = {
    "greeting": [
        "(hi|hello|hey|hiya|howdy|hey there|hi there|hello there|greetings)( team| everyone| folks| Larkspur| support| guys|)(!|.|)",
        "good (morning|afternoon|evening)( team| Larkspur| there|)(!|.|)",
        "(hi|hello|hey), (is anyone|is somebody|are you) there?",
        "hello? (is this the right place for help|anyone around|can someone help me)?",
        "(hi|hello), (how are you|hope you're well|hope you're having a good day)(!|.|)",
        "(hi|hello|hey), I need (some|a little|) help(!|.|)",
        "(morning|evening)(!|.|)",
        "(hey|hi|hello) (hey|hi|hello|)(!|!!|)",
    ],
    "thanks": [
        "(thanks|thank you|thx|many thanks|cheers|thanks a lot|thank you so much|ty|much appreciated)( for (your|the|all the) help| for sorting (this|that) out| for the quick (reply|answer)| for checking|)(!|.|)",
        "(great|perfect|awesome|brilliant|ok|okay|lovely|super), (thanks|thank you|thx|cheers)(!|.|)",
        "(that's|that was|you've been) (really|very|super|so) helpful, (thanks|thank you)(!|.|)",
        "(thanks|thank you), that (answers my question|solves it|helps a lot|is all I needed to know)(!|.|)",
        "(appreciate it|I appreciate (the|your) help)(!|.|)",
        "(ok|okay|great) (thanks|thank you) (so much|a lot|a ton|again)(!|.|)",
    ],
    "goodbye": [
        "(bye|goodbye|bye bye|see you|see ya|cya)(!|.|)",
        "(have a (good|nice|great) (day|evening|weekend|one))(!|.|)",
        "(that's all|that's everything|nothing else) (for now|for today|I needed|), (bye|goodbye|take care)(!|.|)",
        "(ok|okay|alright|right), (bye|goodbye|talk (later|soon)|I'm off)(!|.|)",
        "(take care|talk (later|soon)|catch you later)(!|.|)",
        "(no|nope), that's (all|it)(, bye|, goodbye|, have a good day)(!|.|)",
        "(thanks|thx), (bye|goodbye|see you)(!|.|)",
        "I'm (done|all set|good) (for now|here|), (bye|goodbye)(!|.|)",
    ],
}

HUMAN_ASK = [
    "(can|could|may) I (talk|speak|chat) (to|with) (a|an actual|a real|a live) (human|person|agent|representative)?",
    "I (want|need|would like) to (talk|speak) to (a human|a person|someone real|an agent|customer service)( please|)",
    "(agent|human|representative|operator|real person)( please|!|)",
    "(are you|is this) a (bot|robot|machine)? I (want|need) a (person|human)",
    "(transfer|connect|put) me (to|through to|with) (a human|an agent|a person|customer service|your support team)",
    "(this bot|this chat|the assistant) (is useless|isn't helping|doesn't understand me), (get me|give me|I want) a (person|human)",
    "(is there|can I get) (a|an) (human|real person|agent) (I can talk to|available|on this chat)?",
    "I'd rather (talk to|deal with) a (human|person)( if that's ok|, thanks|)",
    "(please|) let me speak to (someone|somebody) (from your team|in support|who can actually help)",
    "(how do I|how can I) reach a (human|real person|live agent)?",
    "I (need|want) to speak to a (manager|supervisor)( now|)",
    "(stop|no more) (bot|automated) (answers|replies), (human|person) please",
]

INTENTS: dict[str, dict] = {
    "order_status": {
        "queue": "delivery",
        "topics": [
            {
                "slot": "order",
                "states": ["processing", "shipped", "shipped"],
                "ask": [
                    "(where is|where's|wheres) my (order|package|parcel|stuff|delivery)(?|)",
                    "(can you|could you) (check|tell me) the status of my order?",
                    "has my order shipped (yet|already)?",
                    "I ordered a {item} (last week|a few days ago|on Monday) and (haven't heard anything|have no idea where it is|there's no update)",
                    "(I'd like to|I want to|can I|how do I) track my (order|package)",
                    "when will my {item} (arrive|get here|be delivered)?",
                    "is my order on (its|the) way?",
                    "I placed an order (yesterday|last week|on Friday) and (haven't got|didn't get) a shipping (email|confirmation)",
                    "(order status|track my order|tracking info)( please|)",
                    "(any|what's the) (update|news) on my (order|purchase)?",
                    "(how|where) can I see (where my order is|my tracking number|my order status)?",
                    "(still waiting|waiting) (on|for) my order, (any update|has it shipped)?",
                ],
                "ask_slot": [
                    "(any|an) update on (order|) {order}?",
                    "what's the status of (order|) {order}?",
                    "has (order|) {order} (shipped|been sent|left the warehouse) (yet|)?",
                    "(track|tracking for|status of) {order}",
                    "(can you|could you) check (on|) order {order} for me?",
                    "where is my order {order}? I ordered it (last week|days ago)",
                ],
                "lead": ["(Sure|Of course|Happy to check)(!|.)", "I can look that up for you."],
                "self_lead": ["(Sure|Of course|Happy to help)(!|.)", "I can help with that."],
                "self_service": [
                    "(Thanks!|Thanks for that.|) I can't see live tracking from chat, but the tracking link for order {order} is in your shipping confirmation email and under Account > Orders on {site}. Standard delivery takes {std_time} after dispatch, and Express {exp_time}.",
                    "You can (follow|check on) order {order} any time in Account > Orders: Processing means we're still packing it, Shipped means it's with the carrier, and the tracking link appears there as soon as it leaves. (Orders placed before {cutoff} on a business day ship the same day.|Orders placed before {cutoff} on a business day ship the same day, later ones the next business day.)",
                    "(Thanks.|Thank you.|) We email a shipping confirmation with a tracking link for order {order} as soon as it leaves our warehouse - (if you can't find it, check your spam folder or|it's also under) Account > Orders on {site}. (Tracking can take up to 24 hours to show the first scan.|Standard delivery takes {std_time} from dispatch.)",
                    "(Got it.|Thanks!|) The (quickest|easiest) way to see where order {order} is: open Account > Orders on {site} and click the order, or use the tracking link in your shipping confirmation email. (Express delivery takes {exp_time} and Standard {std_time} after dispatch.|Tracking can take up to 24 hours to show the first scan.)",
                ],
                "answer": {
                    "processing": [
                        "Order {order} is still being packed at our warehouse. (Orders placed before {cutoff} on a business day ship the same day, later ones the next business day.|It should ship within 1 business day.) You'll get a shipping confirmation email with a tracking link as soon as it leaves.",
                        "(I can see|It looks like) order {order} hasn't shipped yet - it's in the packing queue. (You'll receive a tracking link by email once it ships.|A tracking link will be emailed to you when it ships.)",
                    ],
                    "shipped": [
                        "(Good news|Thanks for waiting) - order {order} has (shipped|left our warehouse) and is on its way. (The tracking link is in your shipping confirmation email.|You can follow it with the tracking link in your shipping confirmation email.) Standard delivery takes {std_time} and Express {exp_time} from dispatch.",
                        "Order {order} (is with the carrier|has been dispatched) and is in transit. (You can track it any time from Account > Orders.|The tracking details are in Account > Orders and in your shipping email.)",
                    ],
                },
            }
        ],
        "followups": [
            (
                ["(how long|how many days) does standard shipping take?", "how long does it usually take to arrive?"],
                ["Standard shipping takes {std_time} after dispatch, and Express takes {exp_time}."],
            ),
            (
                ["I can't find the shipping email", "where do I find the tracking link?"],
                [
                    "(No problem|Sure) - the tracking link is also under Account > Orders on {site}. (Check your spam folder for the shipping email too.|It may also have landed in your spam folder.)"
                ],
            ),
        ],
    },
    "cancel_order": {
        "queue": "orders",
        "topics": [
            {
                "slot": "order",
                "states": ["processing", "processing", "shipped"],
                "ask": [
                    "(I want to|I'd like to|I need to|please|can I|how do I) cancel my (order|purchase)(!|.|?|)",
                    "(cancel|please cancel) (my|the) order( I (just|) placed| from (today|yesterday|this morning)|)",
                    "I (ordered|bought) the wrong thing, (can you|please) cancel (it|the order)?",
                    "I changed my mind about (my order|the {item}), (cancel it|I don't want it anymore)",
                    "is it too late to cancel (my|an) order?",
                    "(I|i) (accidentally|mistakenly) (ordered twice|placed two orders|placed a duplicate order), (cancel|please cancel) one",
                    "(stop|don't ship) my order( please|)(!|)",
                    "I no longer (need|want) the {item} I ordered, (please cancel|can I cancel)",
                    "(how can I|can you) cancel an order before it ships?",
                    "(cancel order|order cancellation)( please|)",
                ],
                "ask_slot": [
                    "(please|) cancel (order|) {order}",
                    "I (want|need) to cancel order {order}",
                    "can you cancel {order}? I (ordered the wrong (size|colour)|don't need it anymore|found it cheaper)",
                    "(cancel|cancellation for) {order}( please|)",
                ],
                "lead": [
                    "I can (help with|look into) that.",
                    "(Sure|No problem), let's see if it can still be cancelled.",
                ],
                "self_lead": ["I can help with that.", "(Sure|No problem)(!|.)"],
                "self_service": [
                    "(Thanks.|Thank you.|) Orders can be cancelled until they're packed, usually within {cancel_hours} hours of ordering: open Account > Orders, choose order {order} and click Cancel order. If the Cancel button is gone, it's already being packed or on its way, and you can return it within {return_days} days of delivery for a refund instead.",
                    "(Thanks!|Got it.|) You can cancel order {order} yourself from Account > Orders as long as it hasn't been packed - that's usually the first {cancel_hours} hours after ordering. A cancelled order is refunded in full to your original payment method within {refund_time}.",
                    "To cancel order {order}, go to Account > Orders and choose Cancel order; the button is there until the order is packed, usually about {cancel_hours} hours after you place it. (After that you can refuse the delivery or return it within {return_days} days for a refund.|After that you can still return it within {return_days} days of delivery for a refund.)",
                ],
                "answer": {
                    "processing": [
                        "(Done|All set) - order {order} (has been|is now) cancelled and you'll get a confirmation email shortly. Your refund goes back to (the original payment method|your original payment method) within {refund_time}.",
                        "I've cancelled order {order} (before it was packed|while it was still processing). (The refund will show in {refund_time}, depending on your bank.|Expect the refund in {refund_time}.)",
                    ],
                    "shipped": [
                        "(I'm sorry|Unfortunately), order {order} has already shipped, so it can't be cancelled any more. (You can|Once it arrives you can) return it within {return_days} days of delivery for a refund - (just decline the delivery or|) start the return from Account > Orders.",
                        "(I'm afraid|Sorry,) order {order} left our warehouse already. Orders can only be cancelled before they're packed, usually within {cancel_hours} hours of ordering, but you can send it back within {return_days} days for a refund.",
                    ],
                },
            }
        ],
        "followups": [
            (
                ["when will I get my money back?", "how long does the refund take?"],
                ["Refunds go back to your original payment method and usually appear within {refund_time}."],
            ),
            (
                ["do I have to pay for the return?", "is the return free?"],
                [
                    "A return label costs {return_fee}, deducted from your refund. It's free if the item is damaged or wrong, or if you're a {plan} member."
                ],
                ["shipped", SELF_SERVICE],
            ),
        ],
    },
    "change_order": {
        "queue": "orders",
        "topics": [
            {
                "slot": "order",
                "states": ["processing", "processing", "shipped"],
                "ask": [
                    "(I want to|I'd like to|can I|how do I) (change|modify|edit|update) my order",
                    "(can I|I need to|I want to) (add|remove) (an item|something|a {item}) (to|from) my order",
                    "I (ordered|picked) the wrong (size|colour|color) of the {item}, can I (change|swap) it (before it ships|)?",
                    "(is it possible to|can I) (change|switch|upgrade) (the shipping|to express shipping|my delivery option) on my order?",
                    "I (need|want) to change the quantity (on|of) my order",
                    "(can I|can you) swap the {item} in my order for a different (one|model|colour)?",
                    "(change order|modify order|edit my order)( please|)",
                    "I forgot to add (a|the) {item} to my order, can you (add it|put it in)?",
                    "(oops|oh no), I ordered (2|two|3) instead of (1|one), can you fix (my order|it)?",
                ],
                "ask_slot": [
                    "I want to change (something in|) order {order}",
                    "can you (add|remove) (a|the) {item} (to|from) order {order}?",
                    "(please|) (switch|change) order {order} to (express|next day) (shipping|delivery)",
                    "(need to|want to) (edit|modify) {order}( please|)",
                ],
                "lead": [
                    "(Sure|Happy to help), let me check whether it can still be changed.",
                    "I can look at that for you.",
                ],
                "self_lead": ["(Sure|Happy to help)(!|.)", "I can help with that."],
                "self_service": [
                    "(Thanks.|Thank you.|) Items, sizes, colours and shipping speed on order {order} can be changed only while it's still processing, before it's packed. If it's too late for that, a free exchange for another size or colour after delivery, or a return within {return_days} days, is the way to go.",
                    "(Got it.|Thanks!|) Changes to order {order} are possible until it's packed, which usually happens within {cancel_hours} hours of ordering, and any price difference is charged or refunded on your original payment method. Upgrading to Express costs {exp_price} and Next Day costs {nd_price}.",
                    "(Thanks.|) Order {order} can be changed while it's still processing - items, sizes, colours or the shipping speed - though promo codes can't be added to an existing order. Once an order is packed it can't be changed any more, but exchanges for a different size or colour are free within {return_days} days of delivery.",
                ],
                "answer": {
                    "processing": [
                        "Good timing - order {order} is still processing, so it can be changed. (I've updated it as you asked and you'll get a new confirmation email.|I've made the change; an updated confirmation is on its way to your inbox.) If the total changes, we charge or refund the difference to your original payment method.",
                        "(Order {order} hasn't been packed yet,|Since order {order} is still processing,) I've updated it for you. (Upgrading to Express costs {exp_price} and Next Day costs {nd_price}.|Any price difference is settled on your original payment method.)",
                    ],
                    "shipped": [
                        "(Sorry|Unfortunately), order {order} has already shipped, so it can't be changed. (Once it arrives, you can exchange it for a different size or colour for free, or return it within {return_days} days.|When it arrives, a size or colour exchange is free, and other returns are accepted within {return_days} days.)",
                    ],
                },
            }
        ],
        "followups": [
            (
                ["what if I just want a different colour once it arrives?", "can I exchange it later?"],
                [
                    "Yes - exchanges for a different size or colour of the same item are free within {return_days} days of delivery. Start one from Account > Orders."
                ],
            ),
            (
                ["how much is express?", "how much does next day cost?"],
                [
                    "Express costs {exp_price} and arrives in {exp_time}; Next Day costs {nd_price} when ordered before {cutoff}."
                ],
                ["processing", SELF_SERVICE],
            ),
        ],
    },
    "change_address": {
        "queue": "delivery",
        "topics": [
            {
                "slot": "order",
                "states": ["processing", "processing", "shipped"],
                "ask": [
                    "(I need to|I want to|can I|how do I) (change|update|fix|correct) (the|my) (shipping|delivery) address( on my order|)",
                    "I (put|entered|typed) the wrong address( on my order|), (can you fix it|what do I do)?",
                    "I (moved|just moved|am moving), can you (send|ship) my order to my new address?",
                    "(can you|could you) (redirect|reroute) my (package|parcel|order) to (my work address|a different address|my parents' place)?",
                    "there's a typo in my (delivery|shipping) address",
                    "(wrong address|change address|update delivery address)( on order| please|)",
                    "I (forgot|missed) my apartment number (on|in) the address",
                    "(can you|is it possible to) (ship|deliver) (it|my order) to a different address?",
                ],
                "ask_slot": [
                    "(please|can you) change the (delivery|shipping) address (on|for) order {order}",
                    "order {order} has the wrong address( on it|)",
                    "I need to update the address for {order}, (I moved|there's a typo)",
                ],
                "lead": ["(No problem|Sure), let's get the address sorted.", "I can help with the address."],
                "self_service": [
                    "(Thanks.|Thank you.|) The delivery address on order {order} can be changed while the order is still processing. Once it ships we can't change it from our side, but the carrier's redirect service, through the tracking link in your shipping email, can sometimes reroute it.",
                    "(Got it.|Thanks!|) Address changes for order {order} are possible until it leaves our warehouse, and orders placed before {cutoff} on a business day ship the same day, so the sooner the better. After dispatch, try the redirect option on the carrier's tracking page; if the parcel comes back to us as undeliverable, we refund or reship it.",
                    "(Thanks.|) Before order {order} ships, the address can still be updated with the full new address, including any apartment or unit number. After it ships, the tracking link in your shipping confirmation email lets you ask the carrier to redirect it. (For future orders, keep your saved addresses up to date in Account > Addresses.|)",
                ],
                "answer": {
                    "processing": [
                        "Order {order} hasn't shipped yet, so (I can update the address now|the address can still be changed). (Please type the full new address and I'll save it to the order.|Send me the complete new address and I'll update it right away.)",
                        "(Good news|Great) - order {order} is still processing. (I've opened it for editing; please send the new address including any apartment number.|Just send the corrected address and I'll change it before it's packed.)",
                    ],
                    "shipped": [
                        "(I'm sorry|Unfortunately), order {order} has already shipped, so we can't change the address from our side. (You can ask the carrier to redirect it using the tracking link in your shipping email; if it comes back to us, we'll refund or reship it.|The carrier's redirect service via your tracking link can sometimes reroute it, and if it's returned to us we'll reship it to the right address.)",
                    ],
                },
            }
        ],
        "followups": [
            (
                ["ok the new address is 14 Birch Lane, apartment 3B", "new address: 221 Harbor Street, unit 5"],
                [
                    "(Thanks|Got it) - the new address is saved on the order. You'll get an updated confirmation by email."
                ],
                ["processing"],
            ),
            (
                ["will it still arrive on time?", "does this delay my order?"],
                [
                    "Changing the address before shipping doesn't delay it; Standard delivery takes {std_time} from dispatch."
                ],
                ["processing", SELF_SERVICE],
            ),
        ],
    },
    "shipping_options": {
        "queue": "delivery",
        "topics": [
            {
                "slot": None,
                "ask": [
                    "(what|which) (shipping|delivery) options do you (have|offer)?",
                    "how much (is|does) (shipping|delivery|standard shipping) (cost|)?",
                    "how (long|fast) (does|is) (shipping|delivery)( usually take|)?",
                    "(do you have|is there) (express|next day|faster) (shipping|delivery)?",
                    "(shipping costs|delivery prices|shipping options)(?|)",
                    "how much (extra|more) is express (shipping|delivery)?",
                    "can I get (it|my order) by tomorrow?",
                    "what's the (cutoff|latest time) (for|to order for) next day delivery?",
                ],
                "answer": [
                    "We offer three options: Standard at {std_price} for {std_time}, Express at {exp_price} for {exp_time}, and Next Day at {nd_price}, delivered {nd_time} when you order before {cutoff}. Standard shipping is free on orders of {free_threshold} or more.",
                    "(Sure!|Here are the options:) Standard costs {std_price} and takes {std_time}, Express is {exp_price} for {exp_time}, and Next Day is {nd_price} if you order by {cutoff} on a business day.",
                ],
            },
            {
                "slot": None,
                "ask": [
                    "(is|do you do|do you offer) free shipping?",
                    "how much do I need to spend (for|to get) free (shipping|delivery)?",
                    "(what's|what is) the (minimum|threshold) for free shipping?",
                    "(free shipping|free delivery) (over how much|minimum)?",
                ],
                "answer": [
                    "Standard shipping is free on orders of {free_threshold} or more to addresses in the contiguous US. Below that it costs {std_price}.",
                    "Orders of {free_threshold} or more get free Standard shipping, which takes {std_time}. (Below that it costs {std_price}.|{plan} members also get free Express shipping on every order.)",
                ],
            },
            {
                "slot": None,
                "ask": [
                    "do you (ship|deliver) (internationally|abroad|outside the US|to Canada|to the UK|to Germany|to Australia)?",
                    "how much is (international shipping|shipping to (Canada|the UK|France|Australia))?",
                    "(can I|can you) (order|ship) from (Canada|the UK|Spain|Australia)?",
                    "(how long|how many days) does (international|overseas) (shipping|delivery) take?",
                    "will I have to pay (customs|import duties|import tax)?",
                ],
                "answer": [
                    "We ship to {intl_countries} for a flat {intl_price}, and delivery takes {intl_time}. Import duties and taxes are paid by the recipient on delivery.",
                    "(Yes,|We do!) International shipping to {intl_countries} costs {intl_price} and usually arrives in {intl_time}. (Please note that customs duties are collected by the carrier on delivery.|Any import duties or taxes are paid on delivery.)",
                ],
            },
        ],
        "followups": [
            (
                ["when do orders leave the warehouse?", "how quickly do you ship orders?"],
                [
                    "Orders placed before {cutoff} on a business day ship the same day; later orders ship the next business day."
                ],
            ),
            (
                ["is there a way to get free express?", "do members get free shipping?"],
                [
                    "{plan} members get free Express shipping on every order. The plan costs {plan_month} a month or {plan_year} a year, with a {trial_days}-day free trial."
                ],
            ),
        ],
    },
    "delivery_delay": {
        "queue": "delivery",
        "topics": [
            {
                "slot": "order",
                "states": ["late", "late", "lost"],
                "ask": [
                    "my (order|package|parcel) (is late|hasn't arrived|still hasn't come|never arrived)(!|.|)",
                    "(it says|tracking says) delivered but I (never got|didn't receive|can't find) (it|my package)",
                    "(my|the) {item} was supposed to arrive (yesterday|on Monday|last week|days ago) (and|but) (it's not here|nothing yet|still nothing)",
                    "(why is|why's) my (delivery|order|package) (so late|taking so long|delayed)?",
                    "(tracking|the tracking) hasn't (updated|moved|changed) in (days|a week|over a week)",
                    "I think my (package|parcel) (is lost|got lost|was stolen)",
                    "(where the hell|where on earth) is my (order|package)? it's (a week|days) late",
                    "(still|STILL) (no|haven't got my) (package|order|delivery)(!|!!|)",
                    "the (estimated delivery|delivery date) (has passed|was days ago) and (nothing|no package|no update)",
                    "I paid for express and (it's|my order is) (still not here|late)",
                ],
                "ask_slot": [
                    "order {order} (is late|never arrived|is (a week|days) overdue)",
                    "(my|the) package for {order} (says delivered but isn't here|hasn't moved in days)",
                    "(where is|what happened to) {order}? (it's|it is) (late|overdue)",
                ],
                "lead": [
                    "(I'm sorry|Sorry) (it's late|about the delay|to hear that)(!|.)",
                    "(That's frustrating, I'm sorry.|I'm sorry your order hasn't arrived yet.)",
                ],
                "self_service": [
                    "(Thanks, and I'm sorry for the wait.|I'm sorry for the wait.) You can follow order {order} with the tracking link in your shipping confirmation email; tracking that hasn't updated for a day or two is normal in busy periods. If it's more than {lost_days} business days past its estimated delivery date, we treat it as lost and send a free replacement or a full refund.",
                    "(Thanks.|Thank you.|) If tracking for order {order} says delivered but you don't have it, please check around your entrance and with neighbours, and wait until the end of the next business day. If it still hasn't turned up, or it's more than {lost_days} business days late, we replace or refund it at no cost to you.",
                    "(Thanks.|Sorry about the wait.|) Parcels more than {lost_days} business days past their estimated delivery date count as lost, so if order {order} reaches that point we send a free replacement or a full refund, including shipping. If you paid for Express or Next Day and it arrives late, we also refund the shipping upgrade.",
                ],
                "answer": {
                    "late": [
                        "Thanks for your patience. Order {order} is (still in transit|with the carrier) but running behind its estimate. If it isn't with you within {lost_days} business days of the estimated date, we'll treat it as lost and send a free replacement or a full refund - (just reply here|just get back in touch).",
                        "(I've checked|I've looked into) order {order}: the carrier shows it's delayed in transit. (I've opened a trace with them;|I've asked the carrier for an update;) if it's more than {lost_days} business days past the estimate, we'll replace or refund it.",
                    ],
                    "lost": [
                        "(I'm really sorry|My apologies) - order {order} is more than {lost_days} business days past its estimate, so we treat it as lost. (I've arranged a free replacement, and you'll get a new shipping email;|I can send a free replacement or a full refund - whichever you prefer;) (either way you don't pay anything extra.|there's no cost to you.)",
                    ],
                },
            }
        ],
        "followups": [
            (
                ["can I just get a refund instead?", "I'd rather have my money back"],
                [
                    "Of course - I've set it up as a full refund instead, including shipping. It goes back to your original payment method within {refund_time}."
                ],
                ["late", "lost"],
            ),
            (
                ["what if it says delivered but it's not here?", "the tracking says delivered though"],
                [
                    "Please check with neighbours and around your entrance first. If it still hasn't turned up within 2 days, tell us and we'll open a carrier claim and replace or refund it."
                ],
            ),
        ],
    },
    "return_item": {
        "queue": "returns",
        "topics": [
            {
                "slot": None,
                "weight": 1,
                "ask": [
                    "(what's|what is|tell me) your return(s|) policy(?|)",
                    "(how many days|how long) do I have to (return|send back) (something|an item|a purchase)?",
                    "(are|do) returns free?",
                    "(can I|is it possible to) return (something|an item) (I bought|bought) (on sale|as a gift)?",
                    "(is there|what's) a (return deadline|return window)?",
                ],
                "answer": [
                    "You can return most items within {return_days} days of delivery, unused and in the original packaging. A return label costs {return_fee}, deducted from your refund, and it's free if the item arrived damaged or wrong or you're a {plan} member.",
                    "(Our return window is|Returns are accepted for) {return_days} days from delivery. (Start a return in Account > Orders;|You can start one from Account > Orders;) exchanges for another size or colour are free, and refunds arrive within {refund_time} of us receiving the item.",
                ],
            },
            {
                "slot": "order",
                "states": ["delivered", "delivered", "delivered", "return_expired"],
                "ask": [
                    "(I want to|I'd like to|I need to|can I|how do I) return (an item|something|the {item}|my order)",
                    "(how do|how can) I send (something|an item|the {item}) back?",
                    "the {item} (doesn't fit|isn't what I expected|is too (big|small)|doesn't match the photos), can I return it?",
                    "(can I get|do you (send|provide|give me)) a return label?",
                    "I (don't like|changed my mind about) the {item}, (how do I return it|can I send it back)?",
                    "(return|returns|start a return)( please|)",
                    "(I'd like to|can I) exchange the {item} for a different (size|colour|color)",
                ],
                "ask_slot": [
                    "I want to return (the {item}|an item) from order {order}",
                    "(how do I|can I) return order {order}?",
                    "(return|returning) {order}( please|, it doesn't fit)",
                ],
                "lead": ["(Sure|Of course), I can help you return it.", "No problem, let's set up the return."],
                "self_service": [
                    "(Thanks.|Thank you.|) You can return items from order {order} within {return_days} days of delivery, unused and in the original packaging: open Account > Orders, choose the order, then Return or exchange. The label costs {return_fee}, deducted from your refund, and it's free if the item arrived damaged or wrong or you're a {plan} member.",
                    "(Got it.|Thanks!|) To send something back from order {order}, start a return in Account > Orders and print the label, or show the QR code at a carrier drop-off point. Exchanges for another size or colour are free, and refunds arrive within {refund_time} of us receiving the item.",
                    "(Thanks.|) Items from order {order} can be returned within {return_days} days of delivery - start the return from Account > Orders and pack the item unused in its original packaging. If the window has passed and the item is faulty, our {warranty_months}-month warranty may still cover it.",
                ],
                "answer": {
                    "delivered": [
                        "Order {order} is within our {return_days}-day return window. (I've emailed you a return label; a label costs {return_fee}, taken from your refund unless the item was damaged or wrong.|You can start the return in Account > Orders and print a label there; it costs {return_fee}, or nothing for {plan} members.) Items need to be unused and in the original packaging.",
                        "(Good news|Yes) - order {order} can still be returned. (Pack the item unused in its original packaging and use the label I've just emailed you.|Use the return label now in your inbox and drop the parcel at any carrier point.) Your refund is issued within {refund_time} once we receive it.",
                    ],
                    "return_expired": [
                        "(I'm sorry|Unfortunately), order {order} was delivered more than {return_days} days ago, so it's outside our return window. If the item has a fault, it's still covered by our {warranty_months}-month warranty and we can repair or replace it.",
                    ],
                },
            },
        ],
        "followups": [
            (
                ["when do I get my refund?", "how long until the refund comes through?"],
                [
                    "Once the return reaches our warehouse and is inspected, the refund goes to your original payment method within {refund_time}."
                ],
                ["delivered", SELF_SERVICE],
            ),
            (
                ["do I have to pay for the return label?", "is the return free?"],
                [
                    "A return label costs {return_fee}, deducted from your refund. It's free if the item arrived damaged or wrong, or if you're a {plan} member."
                ],
                ["delivered", SELF_SERVICE],
            ),
            (
                ["can I exchange it instead?", "could I get a different size instead?"],
                [
                    "Yes - exchanges for a different size or colour of the same item are free. Choose Exchange instead of Refund when you start the return."
                ],
                ["delivered", SELF_SERVICE],
            ),
        ],
    },
    "refund_request": {
        "queue": "returns",
        "topics": [
            {
                "slot": "order",
                "states": ["refund_issued", "return_received", "not_returned"],
                "ask": [
                    "(where is|where's|when will I get) my refund?",
                    "I (sent back|returned) (the {item}|my order|an item) (two weeks ago|last week|a while ago) and (still no refund|haven't been refunded|haven't got my money back)",
                    "(I want|I'd like|can I get|I need) (a refund|my money back)( for my order| for the {item}|)",
                    "(how long|how many days) (do refunds take|does a refund take|until I get refunded)?",
                    "(refund|refund status|my refund)(?|)",
                    "(has|did) my refund (been processed|go through)( yet|)?",
                    "you (still|) owe me a refund",
                    "(the|my) refund (isn't|is not) showing (on|in) my (bank|card|account)",
                    "(can you|please) refund (me|my order|the {item})",
                    "I was told I'd get a refund (but|and) (nothing has arrived|it's been over a week)",
                ],
                "ask_slot": [
                    "(where is|status of) (the|my) refund for order {order}?",
                    "I returned {order} (last week|ages ago), (where's|when do I get) my (refund|money)?",
                    "(refund for|please refund) {order}",
                ],
                "lead": [
                    "(Sure|Of course), let me check your refund.",
                    "(I can check that|Let me look into the refund) for you.",
                ],
                "self_lead": ["(Sure|Of course)(!|.)", "I can help with that."],
                "self_service": [
                    "(Thanks.|Thank you.|) Refunds for order {order} are issued once the return reaches our warehouse and has been inspected, usually within 2 business days of arrival; after that your bank takes {refund_time} to show it. We email you as soon as the refund is issued.",
                    "(Got it.|Thanks!|) You can follow the return for order {order} in Account > Orders: you get an email when the parcel is scanned, another when it reaches our warehouse, and one more when the refund is issued. Refunds go to your original payment method and show within {refund_time}.",
                    "(Thanks.|) If you haven't sent order {order} back yet, start a return in Account > Orders within {return_days} days of delivery, and the refund follows once it's inspected. If your refund email came more than {refund_time} ago and nothing shows, let us know and we'll send a refund confirmation you can share with your bank.",
                ],
                "answer": {
                    "refund_issued": [
                        "(I can see|I've checked and) the refund for order {order} has been issued to your original payment method. Banks usually take {refund_time} to show it, so it should appear soon.",
                        "Your refund for order {order} (has been processed|was sent) on our side. Depending on your bank it takes {refund_time} to appear on your statement.",
                    ],
                    "return_received": [
                        "Your return for order {order} has (arrived at|reached) our warehouse and is being inspected. (Once that's done, usually within 2 business days, the refund goes to your original payment method and shows within {refund_time}.|The refund is issued right after inspection and takes {refund_time} to reach your account.)",
                    ],
                    "not_returned": [
                        "(I don't see a return for order {order} yet.|We haven't received a return for order {order} yet.) Refunds are issued once the item is back with us - you can start a return within {return_days} days of delivery from Account > Orders, and the refund follows within {refund_time} of it arriving.",
                    ],
                },
            }
        ],
        "followups": [
            (
                ["why does it take so long?", "can you speed it up?"],
                [
                    "Once we issue it, the timing is up to your bank - most refunds appear within {refund_time}. If it hasn't shown after that, let us know and we'll send proof of the refund."
                ],
            ),
            (
                ["will I get the shipping cost back too?", "is shipping refunded?"],
                [
                    "Original shipping is refunded when the item was damaged, faulty or wrong. For other returns the {return_fee} label fee is deducted from the refund."
                ],
            ),
        ],
    },
    "damaged_item": {
        "queue": "returns",
        "topics": [
            {
                "slot": "order",
                "states": ["delivered"],
                "ask": [
                    "my {item} (arrived|came) (broken|damaged|cracked|smashed|dented)",
                    "the {item} I (got|received) (is|was) (broken|damaged|scratched|chipped|not working)",
                    "(the|my) (package|box|parcel) was (crushed|soaked|ripped open) and the {item} (is|was) damaged",
                    "(something|one of the items) in my order (arrived|came) (broken|damaged)",
                    "(I|i) (just|) (opened|unpacked) my order and (it's|the {item} is) (broken|cracked|in pieces)",
                    "(what do I do|what can I do) (if|when) (an item|something) arrives damaged?",
                    "(the|my) {item} (doesn't|won't) (turn on|work) (out of the box|at all)",
                    "(damaged|broken) (item|delivery|product)(!|)",
                ],
                "ask_slot": [
                    "(the|my) {item} from order {order} (arrived|came) (broken|damaged)",
                    "order {order} (arrived|came) (damaged|broken|smashed)",
                ],
                "lead": ["(I'm so sorry|I'm sorry|Oh no, I'm sorry) (it arrived damaged|about that|to hear that)(!|.)"],
                "self_service": [
                    "(Thanks.|Thank you.|) Please report damage on order {order} within {report_days} days of delivery with a photo of the item and the packaging, here in chat or from Account > Orders > Report a problem. You can then choose a free replacement or a full refund, including shipping.",
                    "(Thank you.|Thanks!|) For order {order}, the quickest way is Account > Orders > Report a problem: add a photo of the damage and of the box, and pick a free replacement or a full refund. Replacements ship within 1 business day, and you never pay to return a damaged item.",
                    "(Thanks.|) Damage is covered when it's reported within {report_days} days of delivery: send a photo of the item and the packaging for order {order}, and please keep the packaging until the case is closed, as the carrier may ask for it.",
                ],
                "answer": {
                    "delivered": [
                        "Thanks - order {order} is within the {report_days}-day window for damage reports. (Could you reply with a photo of the item and the packaging?|Please send a photo of the damage and the box.) Then we'll send a free replacement or a full refund, including shipping - whichever you prefer.",
                        "(I've logged the damage on order {order}.|I've opened a damage report for order {order}.) (We'll send a free replacement right away|You can choose a free replacement or a full refund, shipping included), and (you don't need to pay for any return.|there's no return label to pay for.)",
                    ],
                },
            }
        ],
        "followups": [
            (
                ["do I need to send the broken one back?", "should I return the damaged item?"],
                ["If we need it back, we'll email you a free return label - you never pay to return a damaged item."],
            ),
            (
                ["how long will the replacement take?", "when will the new one arrive?"],
                [
                    "Replacements ship within 1 business day and arrive in {std_time} with Standard shipping, at no cost to you."
                ],
            ),
        ],
    },
    "wrong_item": {
        "queue": "returns",
        "topics": [
            {
                "slot": "order",
                "states": ["delivered"],
                "ask": [
                    "I (got|received) the wrong (item|product|size|colour|color)",
                    "(this isn't|that's not|this is not) what I ordered",
                    "I ordered a {item} but (got|received) (something else|a different item|the wrong one)",
                    "(an item|something|the {item}) is missing from my (order|package|box)",
                    "my order (came|arrived) (incomplete|with only half the items|without the {item})",
                    "you sent me (someone else's order|the wrong thing|the wrong size)",
                    "(wrong item|missing item|item missing)( in my order|)(!|)",
                    "the box (only had|was missing) (one of|some of|part of) my items",
                ],
                "ask_slot": [
                    "order {order} (came with|contained) the wrong (item|size|colour)",
                    "the {item} is missing from order {order}",
                    "(I got|you sent) the wrong item (for|in) {order}",
                ],
                "lead": [
                    "(Sorry about that|I'm sorry for the mix-up)(!|.)",
                    "(My apologies|Sorry) - let's get that fixed.",
                ],
                "self_service": [
                    "(Thanks.|Thank you.|) If something seems missing from order {order}, first check the shipping confirmation email: larger orders are sometimes split into several parcels, each with its own tracking link. If an item really is wrong or missing, tell us within {report_days} days of delivery and we send the right item free with Express shipping, or refund it in full.",
                    "(Thank you.|Thanks!|) Wrong or missing items on order {order} can be reported within {report_days} days of delivery, here in chat or through {contact_page}. We send the correct item free of charge, or a full refund if you prefer, plus a prepaid return label for the wrong one - please keep it unused until the label arrives.",
                    "(Thanks.|) If something is wrong or missing on order {order}, tell us within {report_days} days of delivery: the correct item is sent free with Express shipping, or you can choose a full refund. For a wrong item we email a prepaid return label - please keep it unused until it arrives, so you don't pay anything for our mistake.",
                ],
                "answer": {
                    "delivered": [
                        "(Thanks|Thank you) - I've flagged order {order}. (We'll ship the correct item today with free Express shipping,|We'll send the right item at no cost,) and (you'll get a free return label for the wrong one by email.|a prepaid label for the wrong item is on its way to your inbox.)",
                        "(I've checked order {order}.|I've looked at order {order}.) Since you're within {report_days} days of delivery, we'll send the missing or correct item free of charge, or refund it in full if you prefer. (Keep the wrong item until the prepaid return label arrives.|A free return label for the wrong item will follow by email.)",
                    ],
                },
            }
        ],
        "followups": [
            (
                ["do I have to pay to send it back?", "who pays for the return?"],
                ["Not at all - returns of wrong items are free, and the prepaid label comes by email."],
            ),
            (
                ["can I just have a refund for it?", "I'd prefer a refund"],
                [
                    "Of course - I've switched it to a full refund, which goes to your original payment method within {refund_time}."
                ],
                ["delivered"],
            ),
        ],
    },
    "payment_failed": {
        "queue": "payments",
        "topics": [
            {
                "slot": None,
                "ask": [
                    "my (payment|card) (was declined|keeps getting declined|didn't go through|failed)",
                    "(I|i) can't (pay|complete checkout|place my order), (it says|the error says) payment (failed|declined)",
                    "(checkout|payment) (keeps failing|isn't working|won't go through)(!|)",
                    "why (is|was) my card (declined|rejected)?",
                    "(payment declined|payment error|card declined)(!|)",
                    "(I|i) (tried|have tried) (three|several|multiple) (cards|times) and (payment|it) (still fails|keeps failing)",
                    "(my|the) paypal payment (failed|didn't work)",
                    "(I got|there's) an error (at|during) checkout (when I try to pay|on the payment page)",
                ],
                "answer": [
                    "(Sorry about that!|That's annoying, sorry.) Declines usually come from the bank, so please (check the card details and billing address match your statement|double-check the billing address and expiry date), then try again or use another method - we accept {payment_list}.",
                    "(I'm sorry the payment failed.|Sorry for the trouble at checkout.) Most declines are triggered by the card issuer's security checks; (a quick call to your bank usually clears it,|your bank can approve the charge,) or you can pay with PayPal, Apple Pay or Google Pay instead.",
                ],
            },
            {
                "slot": "email",
                "ask": [
                    "I was charged (but|and) (didn't get|never got) an order confirmation",
                    "(my|the) payment (failed|was declined) but (the money was taken|I still see a charge|there's a pending charge)",
                    "I (got|was) charged twice for (one|the same) order",
                    "(there's|I see) a (pending|double) charge (on|from) my card but no order",
                ],
                "ask_slot": [
                    "I was charged but got no confirmation, my email is {email}",
                    "(double|duplicate) charge on my card, account (email|) {email}",
                ],
                "lead": ["(I'm sorry about that|Sorry for the worry) - let me check your account."],
                "answer": [
                    "Thanks, I've checked the account for {email}. (The failed attempt shows as a pending hold, not a charge;|What you're seeing is a temporary authorisation hold;) your bank releases it within {hold_days}, so you won't be charged for it.",
                    "(I've checked|I've looked at) {email}: only one payment was completed. (The other is a pending hold that your bank drops within {hold_days}.|The extra line is an authorisation hold that disappears within {hold_days}.)",
                ],
            },
        ],
        "followups": [
            (
                ["which payment methods do you take?", "can I pay another way?"],
                ["We accept {payment_list}. We don't take cash on delivery, checks or cryptocurrency."],
            ),
            (
                ["how long until the hold disappears?", "when will the pending charge go away?"],
                [
                    "Banks release declined or duplicate holds within {hold_days}. If it's still there after that, your bank can confirm it was never captured."
                ],
            ),
        ],
        "escalation_lines": [
            "I (tried|just tried) again and it (failed|was declined) again",
            "(still|it's still) not working, (this is|that's) the (third|fourth) time",
            "I called my bank and they say it's on your side",
        ],
    },
    "payment_methods": {
        "queue": "payments",
        "topics": [
            {
                "slot": None,
                "ask": [
                    "(what|which) payment (methods|options) do you (accept|take|have)?",
                    "(can I|do you let me) pay (with|by|using) (PayPal|Apple Pay|Google Pay|Amex|a debit card|Discover)?",
                    "do you (take|accept) (cash on delivery|checks|crypto|bitcoin|Klarna)?",
                    "(how can I|how do I) pay (for my order|at checkout)?",
                    "is (american express|amex|a prepaid card) (accepted|ok|fine)?",
                    "(payment methods|payment options|ways to pay)(?|)",
                    "can I (pay|split the payment) with (a gift card and a card|two cards|a gift card)?",
                    "do you (accept|take) (foreign|international|non-US) cards?",
                ],
                "answer": [
                    "We accept {payment_list}. (We don't take cash on delivery, checks or cryptocurrency.|Cash on delivery, checks and crypto aren't accepted.)",
                    "(You can pay|At checkout you can pay) with {payment_list}. A gift card can be combined with one card for the rest of the total.",
                ],
            }
        ],
        "followups": [
            (
                ["is it safe to save my card?", "do you store my card details?"],
                [
                    "Card details are handled by our payment provider and we never see the full number; saved cards can be removed any time in Account > Payment methods."
                ],
            ),
            (
                ["do gift cards expire?", "can I use a gift card?"],
                ["Yes, gift cards can be used at checkout and they never expire. They come in {gift_amounts}."],
            ),
        ],
    },
    "invoice": {
        "queue": "billing",
        "topics": [
            {
                "slot": "order",
                "states": ["shipped", "delivered"],
                "ask": [
                    "(I need|can I get|where can I find|how do I get) (an invoice|a receipt|a VAT invoice|a copy of my invoice)( for my order|)",
                    "(can you|could you) (send|email) me (the|an) (invoice|receipt)( for my order|)?",
                    "I need an invoice with my company name (on it|for expenses)",
                    "(where do I|how can I) download (my|the) invoice?",
                    "(invoice|receipt) (please|needed|for my purchase)",
                    "my invoice (has|shows) the wrong (name|address|company name)",
                    "I (didn't get|never got|never received|haven't received) a receipt for my (order|purchase)",
                    "(can I|I need to) get an itemised receipt for (accounting|my expense report|work)",
                ],
                "ask_slot": [
                    "(can I get|please send) (an|the) invoice for order {order}",
                    "I need a receipt for {order}( for work|)",
                    "(invoice|receipt) for {order} please",
                ],
                "lead": ["(Sure|Of course), I can help with the invoice.", "(No problem|Happy to help)."],
                "answer": [
                    "(I've emailed the PDF invoice for order {order} to the address on your account.|The invoice for order {order} is on its way to your inbox as a PDF.) You can also download it any time from Account > Orders.",
                    "(You'll find|There's) a PDF invoice for order {order} in Account > Orders - click the order and choose Download invoice. (If you need a company name or tax ID on it, tell me and I'll reissue it.|I can reissue it with a company name if you need one for expenses.)",
                ],
            }
        ],
        "followups": [
            (
                ["can you put my company name on it?", "I need the business name on the invoice"],
                [
                    "Of course - I've reissued it with your company name, and the new PDF is in Account > Orders and in your inbox."
                ],
            ),
        ],
    },
    "reset_password": {
        "queue": "accounts",
        "topics": [
            {
                "slot": "email",
                "ask": [
                    "(I forgot|I can't remember|I lost) my password",
                    "(how do I|how can I|I need to) (reset|change|recover) my password",
                    "I can't (log in|sign in|get into my account)",
                    "(the|my) (password reset|reset) (email|link) (never arrived|isn't coming|doesn't work|expired)",
                    "(locked out|I'm locked out) of my account(!|)",
                    "(reset password|forgot password|password reset)( please|)",
                    "it says my password is (wrong|incorrect) but I know it's right",
                    "(can you|please) send me a (new|) password reset link",
                ],
                "ask_slot": [
                    "(I forgot my password|please reset my password), (my email is|the account is|it's) {email}",
                    "(can't log in|locked out), (account|email): {email}",
                    "send a reset link to {email}( please|)",
                ],
                "lead": ["(Sure|No problem), I can send you a reset link."],
                "answer": [
                    "(Thanks|Done) - I've sent a password reset link to {email}. (It expires in {reset_minutes} minutes, so use it soon;|The link is valid for {reset_minutes} minutes;) check your spam folder if it doesn't show up.",
                    "A fresh reset link is on its way to {email}. (Open it within {reset_minutes} minutes and choose a new password|It's valid for {reset_minutes} minutes, and any older links stop working).",
                ],
            }
        ],
        "followups": [
            (
                ["I still didn't get the email", "nothing in my inbox"],
                [
                    "(Please check your spam or promotions folder.|It can take a few minutes - please check spam too.) If it's still missing, make sure the address is the one you signed up with and I'll send another link."
                ],
            ),
            (
                ["the link says expired", "the link doesn't work"],
                [
                    "Reset links expire after {reset_minutes} minutes and only the newest one works. I've sent a new one - please use it right away."
                ],
            ),
        ],
    },
    "delete_account": {
        "queue": "accounts",
        "topics": [
            {
                "slot": None,
                "weight": 1,
                "ask": [
                    "what (data|personal information) do you (keep|store) about me?",
                    "do you (sell|share) my (data|personal information)?",
                    "(how long|for how long) do you keep my (data|information) (if I delete my account|after I close my account)?",
                ],
                "answer": [
                    "We keep only what we need for your orders and account, and we never sell personal data. If you delete your account, everything is removed within {delete_days} days except order records, which tax law requires us to keep for {records_years} years.",
                ],
            },
            {
                "slot": "email",
                "ask": [
                    "(I want to|I'd like to|how do I|please) (delete|close|remove) my account",
                    "(delete|erase) (all|) my (data|personal data|information)",
                    "(I|i) (want|need) you to (remove|forget) (my details|everything you have on me)",
                    "(how can I|can I) (deactivate|close) my (account|profile)?",
                    "(delete account|close account|account deletion)( please|)",
                    "(stop|please stop) (sending me emails|emailing me) and delete my account",
                    "I don't (use|need) my account anymore, (delete it|get rid of it)",
                ],
                "ask_slot": [
                    "(please|) delete the account (for|under|registered to) {email}",
                    "(close|delete) my account, (email|it's) {email}",
                ],
                "lead": [
                    "(I can help with that|Sure, I can start that for you).",
                    "(Sorry to see you go|We're sorry to see you go).",
                ],
                "answer": [
                    "I've started the deletion request for {email}. (You'll get a confirmation email, and the account is fully deleted within {delete_days} days.|Deletion is completed within {delete_days} days, and we'll confirm by email.) (By law we keep order records for {records_years} years, but nothing is used for marketing.|Order records are kept for {records_years} years for tax purposes only.)",
                    "(Done|All set) - the account for {email} is scheduled for deletion, which finishes within {delete_days} days. (If you change your mind before then, just log in to cancel it.|Logging in before then cancels the request.)",
                ],
            },
        ],
        "followups": [
            (
                ["can I just stop the marketing emails instead?", "I only want the emails to stop"],
                [
                    "Yes - you can turn off marketing emails in Account > Preferences and keep your account. We never sell personal data."
                ],
            ),
            (
                ["what happens to my order history?", "do you keep anything?"],
                [
                    "We keep order records for {records_years} years because tax law requires it; everything else is removed within {delete_days} days."
                ],
            ),
        ],
    },
    "subscription": {
        "queue": "accounts",
        "topics": [
            {
                "slot": None,
                "ask": [
                    "(what is|what's|tell me about) {plan_name}?",
                    "how much (is|does) (the membership|{plan_name}|your subscription) cost?",
                    "(is there|do you have) a (membership|subscription|loyalty program)?",
                    "what do I get with {plan_name}?",
                    "(is there|do you offer) a free trial (of|for) {plan_name}?",
                    "(membership|subscription) (benefits|price)(?|)",
                    "(how much is|what's the price of) the (yearly|annual|monthly) (plan|membership)?",
                ],
                "answer": [
                    "{plan} costs {plan_month} a month or {plan_year} a year and includes free Express shipping on every order, free return labels and early access to sales. New members get a {trial_days}-day free trial.",
                    "(Our membership is|It's called) {plan}: {plan_month} monthly or {plan_year} yearly, (with|which gives you) free Express shipping, free returns and early sale access. (You can try it free for {trial_days} days.|The first {trial_days} days are free.)",
                ],
            },
            {
                "slot": "email",
                "ask": [
                    "(I want to|I'd like to|how do I|please) (cancel|stop|end) my (subscription|membership|{plan_name})",
                    "(I was|why was I|I've been) charged for {plan_name} (but|and) I (cancelled|didn't sign up|never used it)",
                    "(unsubscribe|cancel membership|stop subscription)( please|)",
                    "my free trial (is ending|ends soon), (don't charge me|I don't want to be charged)",
                ],
                "ask_slot": [
                    "(please|) cancel the {plan_name} membership on {email}",
                    "(stop|cancel) my subscription, (my email is|account) {email}",
                ],
                "lead": ["(Sure|Of course), let me pull up your membership."],
                "answer": [
                    "I've (cancelled|turned off renewal for) the {plan} membership on {email}. (You keep the benefits until the end of the period you've paid for, and you won't be charged again.|Benefits stay active until the current paid period ends, and there are no further charges.)",
                    "(Done|All set) for {email}: your {plan} plan won't renew. (If you'd rather switch, the annual plan is {plan_year} instead of {plan_month} a month.|You can rejoin any time from Account > Membership.)",
                ],
                "followups": [
                    (
                        ["can I get a refund for this month?", "will I be refunded for the unused time?"],
                        [
                            "Membership fees aren't refunded part-way through a period, but you keep every benefit until it ends. If you were charged after cancelling, we'll refund that in full."
                        ],
                    ),
                ],
            },
        ],
        "followups": [
            (
                ["what's the difference between monthly and yearly?", "is yearly cheaper?"],
                [
                    "Monthly is {plan_month} and yearly is {plan_year}, so the yearly plan works out cheaper over twelve months. The benefits are the same."
                ],
            ),
        ],
    },
    "warranty": {
        "queue": "warranty",
        "topics": [
            {
                "slot": None,
                "weight": 1,
                "ask": [
                    "(is|are) (the {item}|your products|electronics) (covered by|under) (a|) warranty?",
                    "(how long is|what's) the warranty (on|for) (the {item}|your products|electronics)?",
                    "(do you offer|is there) a (warranty|guarantee) on (your products|everything|furniture)?",
                    "(what does|does) the warranty cover (accidental damage|drops|wear and tear)?",
                ],
                "answer": [
                    "Every product comes with a {warranty_months}-month warranty from delivery, covering defects in materials and workmanship. (It doesn't cover accidental damage, misuse or normal wear and tear.|Accidental damage and normal wear aren't covered.)",
                    "(Yes - all our products have|Everything we sell has) a {warranty_months}-month warranty. If something develops a fault in that time, we repair, replace or refund it; (just send us the order number and a photo.|a claim only needs your order number and a photo.)",
                ],
            },
            {
                "slot": "order",
                "states": ["in_warranty", "in_warranty", "in_warranty", "out_of_warranty"],
                "ask": [
                    "my {item} (stopped working|broke|died|is faulty) after (a few months|three months|half a year|a couple of weeks)",
                    "(I want to|how do I|can I) (make|file|submit) a warranty claim",
                    "the {item} (has a defect|is defective|makes a weird noise|won't charge anymore)",
                    "(warranty|warranty claim|guarantee)(?| please|)",
                    "(can you|will you) (repair|replace|fix) my {item}? it (broke|stopped working) on its own",
                    "(does|will) the warranty cover (this|a manufacturing fault|a broken handle)?",
                ],
                "ask_slot": [
                    "(the|my) {item} from order {order} (stopped working|is faulty|broke)",
                    "warranty claim for order {order}, the {item} (is defective|broke)",
                ],
                "lead": [
                    "(I'm sorry|Sorry to hear) it stopped working.",
                    "(Let's|I can help you) get a warranty claim started.",
                ],
                "answer": {
                    "in_warranty": [
                        "Order {order} is within our {warranty_months}-month warranty, which covers defects in materials and workmanship. (Please reply with a short description and a photo or video of the fault, and we'll|Send a photo or a short video of the problem and we'll) repair, replace or refund it at no cost.",
                        "(Good news|Yes) - order {order} is still under the {warranty_months}-month warranty. I've opened a claim; (our warranty team will email you a free return label|you'll get a prepaid label by email) and we'll replace or repair the item.",
                    ],
                    "out_of_warranty": [
                        "(I'm sorry|Unfortunately), order {order} is older than our {warranty_months}-month warranty, so it isn't covered any more. (Our warranty team can still suggest repair options if you'd like.|I can pass it to our warranty team to see whether a paid repair is possible.)",
                    ],
                },
            },
        ],
        "followups": [
            (
                ["what does the warranty not cover?", "is accidental damage covered?"],
                [
                    "The warranty covers defects in materials and workmanship; it doesn't cover accidental damage, misuse or normal wear and tear."
                ],
            ),
            (
                ["do I need the receipt?", "do I need proof of purchase?"],
                ["No - your order number is enough, since we have the purchase on file."],
            ),
        ],
    },
    "complaint": {
        "queue": "customer care",
        "topics": [
            {
                "slot": "order",
                "states": ["delivered", "shipped"],
                "ask": [
                    "I (want|need|wish) to (make|file|lodge) a (formal|) complaint",
                    "(this is|your service is) (ridiculous|unacceptable|a joke|terrible)(!|!!|.)",
                    "I'm (really|very|extremely) (unhappy|disappointed|angry|fed up) with (your service|my order|how I've been treated)",
                    "(the|your) (courier|delivery driver) was (rude|awful) and (threw|left) my package (on the street|in the rain)",
                    "(worst|the worst) (customer service|experience|online shop) (ever|I've had)(!|)",
                    "I've (contacted|emailed|called) you (three|four|several) times and nobody (replies|helps|gets back to me)",
                    "(I|i) (demand|want) (compensation|to speak to a manager) (for this|now)(!|)",
                    "(nobody|no one) (answers|responds to) my emails, (this is|it's) (unacceptable|disgraceful)",
                    "I'm (never|not) (ordering|shopping) (from you|here) again",
                    "(how do I|where can I) (complain|file a complaint|escalate this)?",
                ],
                "ask_slot": [
                    "(I want to complain about|complaint about) order {order}(!|.|)",
                    "order {order} has been a (disaster|nightmare) from start to finish",
                ],
                "lead": [
                    "(I'm really sorry|I'm very sorry|I apologise) (about this|for your experience|that we let you down).",
                    "I'm sorry - that's not the experience we want you to have.",
                ],
                "answer": [
                    "(Thank you for telling us.|I appreciate you raising this.) I've logged a formal complaint against order {order}; (our Customer Care team lead|a team lead) will acknowledge it within {complaint_ack} and aim to resolve it within {complaint_resolve}.",
                    "I've recorded your complaint about order {order}. (You'll get an email confirmation, and|We take every complaint seriously -) a team lead will reply within {complaint_ack}, with a full resolution within {complaint_resolve}.",
                ],
            }
        ],
        "followups": [
            (
                ["that's not good enough", "I want someone to call me"],
                ["I understand. I've marked the complaint as urgent and asked the team lead to contact you directly."],
            ),
        ],
        "escalate_p": 0.7,
    },
    "promo_code": {
        "queue": "customer care",
        "topics": [
            {
                "slot": None,
                "ask": [
                    "my (promo|discount|coupon) code (isn't|doesn't|won't) (working|work|apply)",
                    "(I|i) forgot to (use|enter|apply) my (discount|promo) code, can you (add it|apply it now)?",
                    "(do you have|are there) any (discount|promo|coupon) codes?",
                    "(is there|do you offer) a (first order|new customer|welcome) discount?",
                    "can I use (two|more than one|multiple) (promo|discount) codes?",
                    "(the|my) code (says|shows) (invalid|expired)",
                    "(promo code|coupon|discount code)(?| help| not working)",
                    "where do I (enter|put) (the|a|my) (promo|discount) code?",
                ],
                "answer": [
                    "(Codes are entered in the Promo code box at checkout|You can enter a code in the Promo code field at checkout), and only one code can be used per order. (If a code shows as invalid, check the expiry date and any minimum spend.|Codes can't be added after an order is placed or combined with other offers.)",
                    "New customers get {welcome_pct}% off their first order with {welcome_code}. Only one code works per order, and codes can't be applied after checkout.",
                ],
                "followups": [
                    (
                        ["can you apply it to my order now?", "can you add the discount after I paid?"],
                        [
                            "I'm sorry, codes can't be applied once an order is placed. If the order hasn't shipped, you can cancel it and reorder with the code."
                        ],
                    ),
                ],
            },
            {
                "slot": None,
                "ask": [
                    "(how do I|can I) (buy|get|send) a gift card?",
                    "(do|does) (your|a) gift card(s|) expire?",
                    "my gift card (isn't working|has the wrong balance|won't apply)",
                    "(how can I|where can I) check my gift card balance?",
                    "(what|which) gift card (amounts|values) do you (have|sell)?",
                ],
                "answer": [
                    "Gift cards come in {gift_amounts}, are delivered by email and never expire. (You can check the balance in Account > Gift cards.|Enter the card number at checkout to apply it, and check the balance in Account > Gift cards.)",
                    "(Our|Larkspur) gift cards never expire and are available in {gift_amounts}. They can't be exchanged for cash, (but can be combined with one card at checkout.|and the balance is shown in Account > Gift cards.)",
                ],
            },
        ],
        "followups": [
            (
                ["can I use a gift card and a promo code together?", "can I combine a gift card with a code?"],
                ["Yes - a gift card counts as payment, not a discount, so you can use it alongside one promo code."],
            ),
        ],
    },
    "store_info": {
        "queue": "customer care",
        "topics": [
            {
                "slot": None,
                "ask": [
                    "(what are|when are) your (opening|support|customer service|business) hours?",
                    "(are you|is support) open (on weekends|on Sunday|right now|today)?",
                    "(when|what time) (can I|do I) (reach|call|contact) (you|customer service)?",
                    "(what time|when) do you (open|close)( today|)?",
                    "(opening hours|support hours|hours)(?|)",
                ],
                "answer": [
                    "Our support team is available {hours} and {weekend_hours}. (This chat assistant answers around the clock.|Outside those hours this assistant can still help.)",
                    "(We're here|Human agents are available) {hours}, and {weekend_hours}. (We're closed on US public holidays.|On US public holidays we're closed.)",
                ],
                "followups": [
                    (
                        ["what about public holidays?", "are you open on holidays?"],
                        ["We're closed on US public holidays, but this chat assistant is available 24/7."],
                    ),
                ],
            },
            {
                "slot": None,
                "ask": [
                    "(how can I|how do I) (contact|reach|get in touch with) (you|customer service|support)?",
                    "(what's|what is) your (phone number|support number|email address|contact email)?",
                    "(can I|how do I) (call|phone|email) you?",
                    "(is there|do you have) a (phone line|number I can call|support email)?",
                    "(contact details|contact info|phone number)(?| please|)",
                ],
                "answer": [
                    "You can call us on {phone} during support hours, {hours}, or use the contact form at {contact_page}; we answer emails within {email_response}.",
                    "(The quickest way is this chat.|You can reach us right here in chat.) You can also call {phone} or write to us through {contact_page}, and we reply within {email_response}.",
                ],
            },
            {
                "slot": None,
                "ask": [
                    "(who are you|what is this|what is {name})?",
                    "(are you|is this) a (real|legit|legitimate) (company|store|shop)?",
                    "where (are you|is your company) (based|located)?",
                    "(do you have|is there) a (physical store|shop I can visit|showroom)?",
                    "what (do you sell|kind of products do you have)?",
                ],
                "answer": [
                    "{name} is an online store for home, kitchen and outdoor goods, (founded in 2014|selling online since 2014). We ship from our warehouse in Columbus, Ohio; (there's no shop to visit, but we're here in chat every day.|we don't have a physical store.)",
                    "(I'm the support assistant for {name},|This is {name} support -) an online store for home, kitchen and outdoor goods, shipping from Columbus, Ohio. (How can I help you today?|Is there something I can help you with?)",
                ],
            },
        ],
        "followups": [
            (
                ["are you open on weekends?", "and on saturdays?"],
                ["On weekends our team is available {weekend_hours}."],
            ),
        ],
    },
    "human_agent": {
        "queue": "customer care",
        "topics": [{"slot": None, "ask": HUMAN_ASK, "answer": []}],
        "followups": [],
    },
}
# SMALLTALK intents get entries without topics
for _name, _templates in SMALLTALK.items():
    INTENTS[_name] = {
        "queue": "customer care",
        "topics": [{"slot": None, "ask": _templates, "answer": []}],
        "followups": [],
    }

INTENT_LABELS = [
    "greeting",
    "thanks",
    "goodbye",
    "human_agent",
    "order_status",
    "cancel_order",
    "change_order",
    "change_address",
    "shipping_options",
    "delivery_delay",
    "return_item",
    "refund_request",
    "damaged_item",
    "wrong_item",
    "payment_failed",
    "payment_methods",
    "invoice",
    "reset_password",
    "delete_account",
    "subscription",
    "warranty",
    "complaint",
    "promo_code",
    "store_info",
]
assert sorted(INTENT_LABELS) == sorted(INTENTS)

# Conversations per main intent (small talk never is the main intent); sums to N_CONVERSATIONS.
CONVERSATION_MIX = {
    "order_status": 36,
    "cancel_order": 28,
    "change_order": 21,
    "change_address": 21,
    "shipping_options": 16,
    "delivery_delay": 30,
    "return_item": 33,
    "refund_request": 30,
    "damaged_item": 25,
    "wrong_item": 22,
    "payment_failed": 18,
    "payment_methods": 12,
    "invoice": 13,
    "reset_password": 16,
    "delete_account": 12,
    "subscription": 16,
    "warranty": 15,
    "complaint": 18,
    "promo_code": 14,
    "store_info": 14,
    "human_agent": 20,
}
assert sum(CONVERSATION_MIX.values()) == N_CONVERSATIONS

# Shared agent lines.
AGENT_GREET = [
    "(Hi|Hello|Hi there)! (Thanks for contacting|Welcome to) {name} support. (How can I help (you|) today?|What can I do for you?)",
    "(Hello|Hi)! (You're chatting with|This is) {name} support. (What can I help you with?|How can I help?)",
]
ASK_ORDER = [
    "Could you (share|give me|send me) your order number? (It's the 8-digit number in your order confirmation email.|You'll find it in your confirmation email.|)",
    "(What's|What is) the order number? (It's in your confirmation email.|)",
    "(Can you|Could you) (tell me|send) the order number (so I can look it up|so I can check)?",
]
ASK_EMAIL = [
    "(Could you|Can you) (confirm|share) the email address on your account?",
    "(What|Which) email address (did you sign up with|is the account under)?",
    "(To find your account,|So I can find your account,) (could you|can you) (give me|share) your email address?",
]
ORDER_GIVE = [
    "(it's|its|sure, it's|sure|yes,|here:|here you go:|ok) {order}",
    "{order}",
    "(the |my |)order number is {order}",
    "(um|hmm|let me check...) (I think|) it's {order}",
    "{order}( thanks|, thank you|!|)",
    "(it's|order) {order} and (my email is|the email is) {email}",
    "(found it|got it)(:|,|!) {order}",
]
ORDER_UNKNOWN = [
    "I (don't have|can't find|lost) the (order number|confirmation email)( sorry|), (my email is|it's under) {email}",
    "(not sure|no idea) (what|where) the order number is, (can you use|try) my email {email}?",
]
EMAIL_GIVE = [
    "(it's|its|sure, it's|sure) {email}",
    "{email}",
    "(my email is|the email is|I signed up with) {email}",
    "(I think|probably) {email}",
]
ANSWER_ACK = ["Thanks! ", "Thank you. ", "Got it. ", "", "", "Thanks for that. "]
CLOSING = [
    "You're (very |)welcome! (Is there anything else I can help with?|Have a (great|lovely) day.)",
    "(Glad|Happy) I could help. (Take care!|Have a good one!|Anything else I can do for you?)",
    "(My pleasure|No problem at all)! (Enjoy the rest of your day.|Let us know if anything else comes up.)",
]
FAREWELL = [
    "(Goodbye|Bye), and thanks for shopping with {name}!",
    "(Bye|Take care)! (Have a great day.|We're here if you need anything else.)",
]
UNHAPPY = [
    "(that doesn't help|that's not good enough|no, that doesn't solve it)(.|,) (can I|I want to|let me) (talk|speak) to (a person|someone|a human)",
    "(I'd rather|can I) (speak|talk) to (an agent|a human|a real person) about this",
    "(this is taking too long|I'm not happy with that), (put me through to|get me) (a supervisor|someone else|a human)",
]
HANDOFF = [
    "(I understand|Of course|Certainly). I'm (transferring|handing) you (over |)to (a member of|someone on) our {queue} team now; (they'll see this whole conversation, so you won't need to repeat yourself.|they can see everything we've discussed.)",
    "(No problem|Understood) - I've passed this to a (human agent|specialist) on our {queue} team. (During support hours someone usually joins within a few minutes; otherwise they'll reply by email within {email_response}.|If nobody is free right away, they'll reply by email within {email_response}.)",
    "(I'm sorry I couldn't sort this out myself.|I want to make sure this is handled properly.) I've escalated it to our {queue} team, and a specialist will (pick it up here|get back to you) within {email_response} at the latest.",
]
HUMAN_REASON_ASK = [
    "(Of course|Sure), I can connect you with someone. (So I can route you to the right team,|To get you to the right person,) what is it about?",
    "(Happy to|I can) (get you a person|bring in a human agent). (Could you tell me briefly what you need help with?|What's the issue, so I can pick the right team?)",
]
HUMAN_INSIST = [
    "(just|please just) (get me|give me|connect me to) a (person|human)( please|)",
    "(I'd rather explain to|I'll explain it to) (a person|the agent)",
    "(no|nah), I (want|need) (a human|a real person)",
]


# --------------------------------------------------------------------------------------
# 4. Knowledge base. Texts are written from FACTS ({names}); "- " starts a list item.
# --------------------------------------------------------------------------------------

KB_ARTICLES: list[tuple[str, str, list[str], str]] = [
    (
        "kb-returns-policy",
        "Returns policy",
        ["return_item"],
        """
You can return most items within {return_days} days of delivery. Items must be unused and in their original packaging, with any tags and accessories included.

Some items cannot be returned: gift cards, custom-engraved items, and bedding or pillows that have been opened.

Return shipping: a prepaid return label costs {return_fee}, which is deducted from your refund. The label is free when the item arrived damaged, faulty or wrong, and for {plan} members.

Exchanges for a different size or colour of the same item are always free. If you are past the {return_days}-day window and the item is faulty, our {warranty_months}-month warranty may still cover it; see "Making a warranty claim".
""",
    ),
    (
        "kb-how-to-return",
        "How to start a return",
        ["return_item"],
        """
Starting a return takes a couple of minutes:

- Sign in at {site} and open Account > Orders.
- Choose the order, then Return or exchange, and select the items and a reason.
- Pick Refund or Exchange. Exchanges for another size or colour are free.
- Print the return label (or show the QR code at a carrier drop-off point) and pack the item in its original packaging.

You will receive an email when the parcel is scanned and another when it reaches our warehouse. We inspect returns within 2 business days of arrival and then issue the refund, which takes {refund_time} to appear. If you don't have an account, our support team can start the return for you with your order number.
""",
    ),
    (
        "kb-refund-timing",
        "When will I get my refund?",
        ["refund_request"],
        """
Refunds go back to the original payment method. We issue a refund as soon as your return has reached our warehouse and been inspected, usually within 2 business days of arrival. For cancelled orders the refund is issued immediately.

After we issue a refund, banks and card providers usually take {refund_time} to show it on your statement. PayPal refunds are often faster. We email you when the refund is issued.

If more than {refund_time} have passed since the refund email and you still don't see it, contact us with your order number and we will send you a refund confirmation you can share with your bank.
""",
    ),
    (
        "kb-refund-amounts",
        "What is included in a refund",
        ["refund_request", "return_item"],
        """
For a standard return you get the full price of the returned items back, minus the {return_fee} return label fee if you used our label. Original shipping costs are not refunded for change-of-mind returns.

You receive a full refund, including the original shipping cost and with no label fee, when:

- the item arrived damaged or faulty,
- we sent the wrong item or part of the order was missing,
- the order was lost in transit,
- you cancelled the order before it was packed.

{plan} members never pay for return labels. If you paid partly with a gift card, that part is refunded to the gift card, which never expires.
""",
    ),
    (
        "kb-damaged-items",
        "My item arrived damaged",
        ["damaged_item"],
        """
We're sorry if something arrived damaged. Please report it within {report_days} days of delivery so we can put it right quickly.

Send us your order number and a photo of the damaged item and of the packaging. You can do this in chat, through the contact form at {contact_page}, or from Account > Orders > Report a problem.

You can choose a free replacement or a full refund, including shipping. Replacements ship within 1 business day. If we need the damaged item back, we email you a prepaid label; you never pay to return a damaged item. Please keep the packaging until the case is closed, as the carrier may ask for it.
""",
    ),
    (
        "kb-wrong-or-missing-items",
        "Wrong or missing items",
        ["wrong_item"],
        """
If you received the wrong item, the wrong size or colour, or something is missing from your parcel, tell us within {report_days} days of delivery.

First, check whether your order was split into several parcels: the shipping confirmation email lists every parcel with its own tracking link.

If an item really is wrong or missing, we send the correct item free of charge with Express shipping, or refund it in full if you prefer. For a wrong item we email you a prepaid return label - please keep the item unused until it arrives. You don't pay anything for our mistake.
""",
    ),
    (
        "kb-shipping-options",
        "Shipping options and costs",
        ["shipping_options"],
        """
We offer three shipping speeds within the US:

- Standard: {std_price}, delivered in {std_time}.
- Express: {exp_price}, delivered in {exp_time}.
- Next Day: {nd_price}, delivered {nd_time} when you order before {cutoff} on a business day.

Delivery times are counted from dispatch. Orders placed before {cutoff} on a business day leave our warehouse the same day; later orders ship the next business day. We ship with ParcelCo, Swiftline and Atlas Post and choose the carrier for each parcel.

Standard shipping is free on orders of {free_threshold} or more, and {plan} members get free Express shipping on every order.
""",
    ),
    (
        "kb-free-shipping",
        "Free shipping",
        ["shipping_options"],
        """
Standard shipping ({std_time}) is free on orders of {free_threshold} or more to addresses in the contiguous US. The threshold is checked after discounts and before taxes; gift cards count as payment, not as discounts.

Below {free_threshold}, Standard shipping costs {std_price}. Express ({exp_price}) and Next Day ({nd_price}) are charged at their usual prices regardless of the order total, except for {plan} members, who get free Express shipping on every order.

Free shipping does not apply to international orders, which have a flat rate of {intl_price}.
""",
    ),
    (
        "kb-international-shipping",
        "International shipping",
        ["shipping_options"],
        """
We ship to {intl_countries}. International shipping costs a flat {intl_price} per order and usually takes {intl_time}.

Import duties and taxes are not included in our prices. They are collected by the carrier from the recipient on delivery, and the amount depends on your country's rules. If a parcel is refused because of duties, we refund the items but not the shipping cost.

Tracking is available for all international parcels. International orders can be returned within {return_days} days like any other order, but return shipping is arranged by the customer.
""",
    ),
    (
        "kb-track-order",
        "Tracking your order",
        ["order_status"],
        """
As soon as your order leaves our warehouse, we send a shipping confirmation email with a tracking link for each parcel. You can also see the status of every order in Account > Orders on {site}.

Order statuses mean:

- Processing: we are picking and packing your order. Orders placed before {cutoff} on a business day ship the same day.
- Shipped: the parcel is with the carrier. Tracking can take up to 24 hours to show the first scan.
- Delivered: the carrier has recorded the delivery.

Standard delivery takes {std_time}, Express {exp_time}. If you checked out as a guest, our support team can look up your order with the order number or the email address you used.
""",
    ),
    (
        "kb-order-processing",
        "How quickly orders ship",
        ["order_status", "shipping_options"],
        """
Orders placed before {cutoff} on a business day are packed and handed to the carrier the same day. Orders placed later, or on weekends and US public holidays, ship on the next business day.

Delivery estimates at checkout already include this processing time. Large orders may be split into several parcels that arrive separately; each one gets its own tracking link.

While an order is still processing you can change or cancel it. Once it has been packed, it can no longer be changed, but you can return it after delivery within {return_days} days.
""",
    ),
    (
        "kb-delivery-delays",
        "My order is late",
        ["delivery_delay"],
        """
Most parcels arrive within the estimated delivery window, but weather, carrier backlogs and holidays can cause delays.

If your order is late, first check the tracking link in your shipping confirmation email. Tracking that has not updated for a day or two is normal during busy periods.

If the parcel is more than {lost_days} business days past its estimated delivery date, we treat it as lost: contact us and we will send a free replacement or a full refund, including shipping. If you paid for Express or Next Day and the parcel was late, we also refund the shipping upgrade.
""",
    ),
    (
        "kb-lost-packages",
        "Tracking says delivered but I don't have my parcel",
        ["delivery_delay"],
        """
Sometimes a carrier marks a parcel as delivered a little early, or leaves it in a safe place. Before contacting us, please:

- check around your entrance, mailbox, garage and with neighbours,
- look for a delivery note or photo in the tracking details,
- wait until the end of the next business day.

If the parcel still hasn't turned up, contact us with your order number. We open a claim with the carrier and, without waiting for the result, send a free replacement or a full refund. For high-value orders we may ask you to confirm in writing that the parcel was not received.
""",
    ),
    (
        "kb-change-address",
        "Changing the delivery address",
        ["change_address"],
        """
You can change the delivery address while your order is still processing. Contact us in chat with your order number and the complete new address, including any apartment or unit number, and we will update the order and send you a new confirmation.

Once the order has shipped, we can no longer change the address. You can often redirect the parcel yourself through the carrier's tracking page. If the parcel is returned to us as undeliverable, we refund it or reship it to the correct address.

To avoid problems on future orders, keep your saved addresses up to date in Account > Addresses.
""",
    ),
    (
        "kb-cancel-order",
        "Cancelling an order",
        ["cancel_order"],
        """
You can cancel an order until it has been packed, which usually happens within {cancel_hours} hours of ordering. Open Account > Orders and choose Cancel order, or ask us in chat with your order number.

When an order is cancelled, we refund the full amount, including shipping, to your original payment method. The refund appears within {refund_time}.

If the Cancel button is no longer shown, the order is already being packed or has shipped. In that case you can return it within {return_days} days of delivery for a refund. Refusing the delivery also works: the parcel comes back to us and we refund it once it arrives.
""",
    ),
    (
        "kb-change-order",
        "Changing items or shipping on an order",
        ["change_order"],
        """
While an order is still processing, we can change the items, sizes, colours and quantities, or upgrade the shipping speed. Ask us in chat with your order number and tell us what you'd like to change.

If the total changes, we charge or refund the difference on your original payment method. Upgrading to Express costs {exp_price} and Next Day costs {nd_price}.

Promo codes cannot be added to an existing order. Once the order has been packed it can't be changed any more: you can exchange the item for another size or colour for free after delivery, or return it within {return_days} days.
""",
    ),
    (
        "kb-exchanges",
        "Exchanging an item",
        ["return_item", "change_order"],
        """
Exchanges for a different size or colour of the same item are free within {return_days} days of delivery. Start an exchange from Account > Orders: choose the order, select Return or exchange, and pick the new size or colour.

We reserve the replacement as soon as you start the exchange and ship it when the original is scanned by the carrier, so you don't wait for it to reach our warehouse.

To exchange for a different product, return the original for a refund and place a new order. The usual {return_fee} return label fee applies to that return unless you are a {plan} member.
""",
    ),
    (
        "kb-payment-failed",
        "Payment declined or failed",
        ["payment_failed"],
        """
If your payment is declined at checkout, check that the card number, expiry date, security code and billing address match what your bank has on file. Most declines come from the card issuer's fraud checks, especially for first purchases or larger amounts; a quick call to your bank usually clears them.

You can also pay with another method: we accept {payment_list}.

A declined attempt may show on your statement as a pending hold. This is not a charge, and your bank releases it within {hold_days}. If you see two completed charges for one order, contact us with your order number or account email and we will refund the duplicate.
""",
    ),
    (
        "kb-payment-methods",
        "Accepted payment methods",
        ["payment_methods"],
        """
We accept {payment_list}. Cards issued outside the US are welcome, though your bank may add a foreign transaction fee.

We do not accept cash on delivery, checks or cryptocurrency.

You can combine one gift card with one other payment method on the same order. Your card is charged when you place the order. Card details are handled by our payment provider and are never stored on our servers in full; saved cards can be removed in Account > Payment methods.
""",
    ),
    (
        "kb-invoices",
        "Invoices and receipts",
        ["invoice"],
        """
Every order comes with a PDF invoice. It is attached to your shipping confirmation email and can be downloaded at any time from Account > Orders: open the order and choose Download invoice.

The invoice lists each item, the shipping cost, discounts, taxes and the payment method. If you need your company name, a tax ID or a different billing address on it, contact us with your order number and we will reissue it.

If you checked out as a guest, we can email the invoice to the address used for the order.
""",
    ),
    (
        "kb-reset-password",
        "Resetting your password",
        ["reset_password"],
        """
To reset your password, choose Sign in > Forgot password on {site} and enter the email address on your account. We send a reset link that is valid for {reset_minutes} minutes. Each new request cancels the previous link, so always use the most recent email.

If the email doesn't arrive within a few minutes, check your spam or promotions folder and make sure you used the address you signed up with. Our support team can also send a reset link once we have confirmed the email address on your account.

For your security, we never ask for your password in chat or by email.
""",
    ),
    (
        "kb-account-security",
        "Keeping your account secure",
        ["reset_password", "delete_account"],
        """
Use a unique password for your {name} account and change it if you think someone else may know it. After a password reset, all other devices are signed out automatically.

We will never ask for your password, your full card number or a security code in chat, by phone or by email. If you receive a message that claims to be from us and asks for these details, please don't reply and forward it to us through {contact_page}.

If you notice an order you didn't place, reset your password straight away and contact support so we can stop the order before it ships.
""",
    ),
    (
        "kb-delete-account",
        "Deleting your account",
        ["delete_account"],
        """
You can ask us to delete your account at any time in chat or through {contact_page}. We confirm the email address on the account first, then start the deletion.

Deletion is completed within {delete_days} days. Until then you can cancel the request simply by signing in. Once the account is deleted, your saved addresses, payment methods, wishlists and any {plan} membership are removed and can't be restored.

We are required by law to keep order and invoice records for {records_years} years for tax purposes. They are not used for marketing. Any unused gift card balance should be spent before deletion.
""",
    ),
    (
        "kb-privacy",
        "Privacy and your data",
        ["delete_account", "store_info"],
        """
We collect only what we need to run your orders and account: your name, contact details, addresses, order history and payment tokens from our payment provider.

We never sell personal data. Marketing emails are optional and can be switched off any time in Account > Preferences or with the unsubscribe link in any email. Order and shipping emails are always sent because they are part of your purchase.

You can ask for a copy of your data or for your account to be deleted through {contact_page}. We respond to data requests within {delete_days} days.
""",
    ),
    (
        "kb-subscription-plan",
        "{plan} membership",
        ["subscription"],
        """
{plan} is our membership programme. It costs {plan_month} a month or {plan_year} a year and includes:

- free Express shipping ({exp_time}) on every order,
- free return labels,
- early access to sales.

New members get a {trial_days}-day free trial. We remind you by email before the trial ends, and you are only charged if you keep the membership. You can switch between monthly and yearly billing in Account > Membership; the change applies from your next billing date.
""",
    ),
    (
        "kb-subscription-cancel",
        "Cancelling or changing your membership",
        ["subscription"],
        """
You can cancel {plan} at any time in Account > Membership, or ask us in chat. Cancelling stops the renewal: your benefits stay active until the end of the period you have already paid for, and you won't be charged again.

Membership fees are not refunded part-way through a billing period. If you were charged after you had cancelled, or were charged at the end of a free trial you had cancelled, contact us and we will refund that charge in full.

If you cancel during the {trial_days}-day free trial, you are never charged. You can rejoin at any time at the current price of {plan_month} a month or {plan_year} a year.
""",
    ),
    (
        "kb-warranty",
        "Our warranty",
        ["warranty"],
        """
Every product sold by {name} comes with a {warranty_months}-month warranty from the date of delivery. It covers defects in materials and workmanship under normal use.

The warranty does not cover accidental damage, misuse, unauthorised repairs or normal wear and tear such as scratches and faded colours. It is in addition to your legal rights.

Under the warranty we repair, replace or refund the faulty item. You don't need a paper receipt: your order number is enough, because we keep the purchase on file. Items that arrive damaged should be reported within {report_days} days of delivery instead; see "My item arrived damaged".
""",
    ),
    (
        "kb-warranty-claims",
        "Making a warranty claim",
        ["warranty"],
        """
To make a warranty claim, contact us in chat or through {contact_page} with:

- your order number,
- a short description of the fault,
- a photo or short video showing the problem.

We reply within {email_response}. If the claim is accepted, we email you a prepaid return label and then repair or replace the item; if it can't be repaired or replaced, we refund it. You never pay shipping for an accepted warranty claim.

If the {warranty_months}-month warranty has expired, our warranty team can still advise on repair options.
""",
    ),
    (
        "kb-promo-codes",
        "Promo codes and discounts",
        ["promo_code"],
        """
Promo codes are entered in the Promo code box at checkout. Only one code can be used per order, and codes can't be combined with other offers or added to an order after it has been placed.

New customers get {welcome_pct}% off their first order with the code {welcome_code}. Other codes are sent to newsletter subscribers and {plan} members.

If a code shows as invalid, check its expiry date, any minimum spend and whether it applies to the items in your basket; sale items are sometimes excluded. If you forgot to use a code and your order hasn't shipped, you can cancel it and order again with the code.
""",
    ),
    (
        "kb-gift-cards",
        "Gift cards",
        ["promo_code", "payment_methods"],
        """
{name} gift cards are available in {gift_amounts}. They are delivered by email, either straight away or on a date you choose, and they never expire.

To use a gift card, enter its number in the Gift card field at checkout. If the order costs more than the card's balance, you can pay the rest with one other payment method. Your balance is shown in Account > Gift cards.

Gift cards can't be exchanged for cash, used to buy other gift cards or returned. If an order paid with a gift card is refunded, the amount goes back onto the gift card.
""",
    ),
    (
        "kb-complaints",
        "How we handle complaints",
        ["complaint"],
        """
We want to hear when something has gone wrong. You can make a complaint in chat, through {contact_page} or by calling {phone}.

Every complaint is logged and handed to the Customer Care team lead. We acknowledge it within {complaint_ack} and aim to resolve it within {complaint_resolve}. Please include your order number and what you would like us to do, for example a replacement, a refund or an apology from the carrier.

If you are unhappy with our response, reply to the resolution email and ask for a review; a manager who was not involved will look at the case again.
""",
    ),
    (
        "kb-contact-human",
        "Talking to a person",
        ["human_agent", "store_info"],
        """
This chat assistant can answer most questions straight away, at any time of day. If you would rather talk to a person, just ask in chat and we will hand the conversation to a member of our support team, who sees everything you have already written.

Human agents are available {hours}, and {weekend_hours}. Outside those hours, your conversation is queued and we reply by email within {email_response}.

You can also call us on {phone} during support hours. Complaints, repeated payment problems and warranty claims are always handled by a specialist.
""",
    ),
    (
        "kb-contact-hours",
        "Support hours and contact details",
        ["store_info"],
        """
Our support team is available {hours}, and {weekend_hours}. We are closed on US public holidays. This chat assistant is available 24/7.

Ways to reach us:

- Chat: on {site} and in our app.
- Phone: {phone}, during support hours.
- Email: through the contact form at {contact_page} or at {support_email}. We reply within {email_response}.

To help us find your order quickly, please have your order number ready. It is the 8-digit number in your order confirmation email.
""",
    ),
    (
        "kb-about-us",
        "About {name}",
        ["store_info"],
        """
{name} is an online store for home, kitchen and outdoor goods, selling online since 2014. We work directly with small manufacturers and test everything we sell.

All orders ship from our warehouse in Columbus, Ohio. We don't have a physical shop or showroom, but our support team is available in chat and by phone every day of the week.

We ship across the US and to {intl_countries}. Every product comes with a {warranty_months}-month warranty and can be returned within {return_days} days.
""",
    ),
]


# --------------------------------------------------------------------------------------
# 5. Builders
# --------------------------------------------------------------------------------------


def _slot_values(rng: random.Random, email: str | None = None, order: str | None = None) -> dict[str, str]:
    return {
        "order": order or fmt_order(rng, str(rng.randrange(10_000_000, 100_000_000))),
        "email": email or make_email(rng),
        "item": rng.choice(ITEMS),
        "plan_name": rng.choice([FACTS["plan"], FACTS["plan"], "the membership", "Plus"]),
        "name": FACTS["name"],
    }


def customer_pool(intent: str, with_slot: bool | None = None) -> list[str]:
    """Customer templates of `intent` (all topics); with_slot filters on slot values."""
    out = []
    for topic in INTENTS[intent]["topics"]:
        if with_slot in (None, False):
            out += topic["ask"]
        if with_slot in (None, True):
            out += topic.get("ask_slot", [])
    return out


def build_intent_examples(rng: random.Random) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for intent in INTENT_LABELS:
        pool = customer_pool(intent)
        decor = 0.0 if intent in SMALLTALK else 0.25  # no "hi," in front of a greeting
        got = 0
        for _ in range(4000):
            if got == EXAMPLES_PER_INTENT:
                break
            text = customer_says(rng, rng.choice(pool), pick_style(rng), _slot_values(rng), prefix=decor, suffix=decor)
            key = text.lower()
            if key in seen or not text:
                continue
            seen.add(key)
            rows.append((text, intent))
            got += 1
        if got < 40:
            raise SystemExit(f"only {got} distinct examples for {intent}")
    return rows


class Dialogue:
    def __init__(self) -> None:
        self.turns: list[dict[str, str]] = []

    def add(self, role: str, text: str) -> None:
        self.turns.append({"role": role, "text": text})

    def __len__(self) -> int:
        return len(self.turns)


def make_order(rng: random.Random, state: str, today: date, number: str, item: str) -> str:
    """A system note with this order's own facts (dates, carrier, tracking, amounts)."""
    items = [item, *rng.sample([i for i in ITEMS if i != item], rng.choice([0, 0, 1, 2]))]
    total = money(rng.randrange(1200, 38000) / 100)
    carrier = rng.choice(COMPANY["carriers"])
    tracking = carrier[:2].upper() + str(rng.randrange(10**9, 10**10))
    method = rng.choices(COMPANY["shipping_options"], weights=[6, 3, 1])[0]["name"]

    def d(days_ago: int) -> str:
        return (today - timedelta(days=days_ago)).isoformat()

    head = f"Order #{number}: placed {{placed}}; {len(items)} item(s): {', '.join(items)}; total {total}; {method} shipping"
    if state == "processing":
        return head.format(placed=d(0)) + "; status Processing (not yet packed)."
    if state == "shipped":
        return (
            head.format(placed=d(3))
            + f"; status Shipped {d(2)} via {carrier}, tracking {tracking}; estimated delivery {d(-2)}."
        )
    if state in ("late", "lost"):
        late = rng.randint(1, 4) if state == "late" else rng.randint(7, 12)
        return (
            head.format(placed=d(late + 7))
            + f"; status In transit via {carrier}, tracking {tracking}; estimated delivery {d(late)} (overdue)."
        )
    if state in ("delivered", "in_warranty"):
        ago = rng.randint(1, 6) if state == "delivered" else rng.randint(40, 330)
        return head.format(placed=d(ago + 4)) + f"; status Delivered {d(ago)} via {carrier}."
    if state == "return_expired":
        return (
            head.format(placed=d(50)) + f"; status Delivered {d(rng.randint(35, 45))} via {carrier}; no return started."
        )
    if state == "out_of_warranty":
        return head.format(placed=d(420)) + f"; status Delivered {d(rng.randint(380, 410))} via {carrier}."
    if state == "refund_issued":
        return (
            head.format(placed=d(20))
            + f"; return received {d(5)}; refund of {total} issued {d(3)} to {rng.choice(CARD_BRANDS)} ending {rng.randint(1000, 9999)}."
        )
    if state == "return_received":
        return head.format(placed=d(16)) + f"; return received {d(1)} via {carrier}, inspection pending."
    if state == "not_returned":
        return head.format(placed=d(12)) + f"; status Delivered {d(8)} via {carrier}; no return started."
    raise ValueError(state)


def build_conversation(
    rng: random.Random, cid: str, intent: str, today: date, number: str, avoid: set[str], self_service: bool = False
) -> dict:
    """One conversation; with self_service, the agent answers an order question from policy
    (the topic's `self_service` templates) without any system turn (order lookup)."""
    spec = INTENTS[intent]
    if self_service:
        topic = next(t for t in spec["topics"] if t.get("self_service"))
    else:
        topic = rng.choices(spec["topics"], weights=[t.get("weight", 3) for t in spec["topics"]])[0]
    style = pick_style(rng)
    email = make_email(rng)
    slots = _slot_values(rng, email=email, order=fmt_order(rng, number))
    ctx = {"order": f"#{number}", "email": email, "queue": spec["queue"]}
    conv = Dialogue()
    outcome = "resolved"

    def say(templates: list[str], prefix: float = 0.0, suffix: float = 0.0, fresh: bool = False) -> None:
        text = ""
        for _ in range(8):  # first turns should not repeat intents.csv examples
            text = customer_says(rng, rng.choice(templates), style, slots, prefix, suffix)
            if not fresh or text.lower() not in avoid:
                break
        conv.add("customer", text)

    def reply(templates: list[str], prefix: str = "") -> None:
        text = agent_says(rng, rng.choice(templates), ctx)
        conv.add("agent", text if text.startswith(("Thank", "Got it")) else prefix + text)

    def escalate(line_pool: list[str]) -> None:
        nonlocal outcome
        say(line_pool, suffix=0.15)
        reply(HANDOFF)
        conv.add("system", f"Conversation transferred to a human agent (queue: {spec['queue'].title()}).")
        outcome = "escalated"

    if rng.random() < 0.2:
        say(SMALLTALK["greeting"], fresh=True)
        reply(AGENT_GREET)

    if intent == "human_agent":
        say(HUMAN_ASK, 0.25 if len(conv) == 0 else 0.0, 0.25, fresh=True)
        reply(HUMAN_REASON_ASK)
        if rng.random() < 0.45:
            escalate(HUMAN_INSIST)
        else:
            other = rng.choice(
                [
                    "order_status",
                    "refund_request",
                    "return_item",
                    "damaged_item",
                    "wrong_item",
                    "cancel_order",
                    "warranty",
                ]
            )
            say(customer_pool(other, with_slot=True), suffix=0.2)
            ctx["queue"] = INTENTS[other]["queue"]
            if rng.random() < 0.7:
                reply(HANDOFF)
                conv.add(
                    "system", f"Conversation transferred to a human agent (queue: {INTENTS[other]['queue'].title()})."
                )
                outcome = "escalated"
            else:
                o_topic = next(t for t in INTENTS[other]["topics"] if t["slot"] == "order")
                state = o_topic["states"][0]
                conv.add("system", make_order(rng, state, today, number, slots["item"]))
                reply(o_topic["answer"][state], "I can sort this out for you right away. ")
        return finish(rng, cid, intent, outcome, conv, style, slots, closing=outcome == "resolved")

    # 1. the request, with or without the slot value
    slot = topic["slot"]
    given = bool(slot) and bool(topic.get("ask_slot")) and rng.random() < 0.3
    say(topic["ask_slot"] if given else topic["ask"], 0.25 if len(conv) == 0 else 0.0, 0.25, fresh=True)

    # 2. collect the slot, then the system notes what the agent now sees
    state = None
    if slot == "order":
        state = SELF_SERVICE if self_service else rng.choice(topic["states"])
        if not given:
            leads = topic.get("self_lead" if self_service else "lead") or topic.get("lead")
            lead = agent_says(rng, rng.choice(leads), ctx) if leads else ""
            conv.add("agent", tidy(lead + " " + agent_says(rng, rng.choice(ASK_ORDER), ctx)))
            if not self_service and rng.random() < 0.15:
                say(ORDER_UNKNOWN)
                conv.add("system", f"Customer verified by email {email}; most recent order #{number}.")
            else:
                say(ORDER_GIVE)
        if self_service:  # no lookup: guidance that holds whatever the order's state
            answer = topic["self_service"]
        else:
            conv.add("system", make_order(rng, state, today, number, slots["item"]))
            answer = topic["answer"][state] if isinstance(topic["answer"], dict) else topic["answer"]
        reply(answer, rng.choice(ANSWER_ACK) if not given else "")
    elif slot == "email":
        if not given:
            lead = agent_says(rng, rng.choice(topic.get("lead", [""])), ctx) if topic.get("lead") else ""
            conv.add("agent", tidy(lead + " " + agent_says(rng, rng.choice(ASK_EMAIL), ctx)))
            say(EMAIL_GIVE)
        conv.add("system", f"Account found for {email}; customer verified.")
        reply(topic["answer"], rng.choice(ANSWER_ACK) if not given else "")
    else:
        reply(topic["answer"])

    # 3. escalation, a follow-up question, or neither
    p_escalate = spec.get("escalate_p", 0.08)
    if intent == "payment_failed" and slot is None:
        p_escalate = 0.35
    room = 10 - len(conv)
    if room >= 3 and rng.random() < p_escalate:
        if intent == "payment_failed":
            escalate(spec["escalation_lines"])
        elif intent == "complaint":
            escalate(UNHAPPY)
        else:
            escalate(UNHAPPY + HUMAN_ASK[:4])
    elif (
        room >= 4
        and rng.random() < 0.45
        and (options := [f for f in topic.get("followups", spec["followups"]) if len(f) < 3 or state in f[2]])
    ):
        question, answer = rng.choice(options)[:2]
        say(question, suffix=0.2)
        reply(answer)
    return finish(rng, cid, intent, outcome, conv, style, slots, closing=outcome == "resolved")


def finish(
    rng: random.Random,
    cid: str,
    intent: str,
    outcome: str,
    conv: Dialogue,
    style: tuple,
    slots: dict[str, str],
    closing: bool,
) -> dict:
    if closing:
        roll = rng.random()
        if len(conv) <= 8 and (roll < 0.6 or len(conv) < 3):
            conv.add("customer", customer_says(rng, rng.choice(SMALLTALK["thanks"]), style, slots))
            conv.add("agent", agent_says(rng, rng.choice(CLOSING), {}))
            if len(conv) <= 9 and rng.random() < 0.35:
                conv.add("customer", customer_says(rng, rng.choice(SMALLTALK["goodbye"]), style, slots))
                if len(conv) <= 9 and rng.random() < 0.5:
                    conv.add("agent", agent_says(rng, rng.choice(FAREWELL), {}))
        elif len(conv) <= 8 and roll < 0.8:
            conv.add("customer", customer_says(rng, rng.choice(SMALLTALK["goodbye"]), style, slots))
            conv.add("agent", agent_says(rng, rng.choice(FAREWELL), {}))
    assert 3 <= len(conv) <= 10, (cid, len(conv))
    return {"id": cid, "intent": intent, "outcome": outcome, "turns": conv.turns}


def build_conversations(
    rng: random.Random, avoid: set[str], mix: dict[str, int] = CONVERSATION_MIX, prefix: str = "conv"
) -> list[dict]:
    # (intent, self_service): a fixed share of each intent with self-service answers
    schedule = []
    for intent, n in mix.items():
        k = round(n * SELF_SERVICE_SHARE) if any(t.get("self_service") for t in INTENTS[intent]["topics"]) else 0
        schedule += [(intent, j < k) for j in range(n)]
    rng.shuffle(schedule)
    used: set[str] = set()
    out = []
    for i, (intent, self_service) in enumerate(schedule, start=1):
        while (number := str(rng.randrange(10_000_000, 100_000_000))) in used:
            pass
        used.add(number)
        today = date(2026, 1, 5) + timedelta(days=rng.randrange(80))
        out.append(build_conversation(rng, f"{prefix}-{i:04d}", intent, today, number, avoid, self_service))
    return out


# the demo order the README and the docs walk through, with a fixed owner
DEMO_ORDERS = [
    {
        "number": "40318275",
        "email": "jamie.rivera@example.com",
        "name": "Jamie Rivera",
        "status": "shipped",
        "placed": "2026-02-27",
        "items": ["desk lamp", "set of mugs"],
        "total_usd": 64.5,
        "shipping": "Standard",
        "carrier": "ParcelCo",
        "tracking": "PA1234567890",
        "shipped": "2026-03-02",
        "estimated_delivery": "2026-03-06",
        "delivered": None,
    },
]

_ORDER_NOTE = re.compile(
    r"^Order #(?P<number>\d{8}): placed (?P<placed>[\d-]+); \d+ item\(s\): (?P<items>[^;]+); "
    r"total \$(?P<total>[\d,.]+); (?P<shipping>[\w ]+) shipping; (?P<rest>.*)$"
)


def _order_from_note(note: str) -> dict | None:
    """The order a conversation's system turn shows, as a backend record (no owner yet)."""
    m = _ORDER_NOTE.match(note)
    if m is None:
        return None
    rest = m["rest"]
    carrier = re.search(r"via ([A-Z][\w ]+?)(?:,|;|\.)", rest)
    tracking = re.search(r"tracking (\w+)", rest)
    estimated = re.search(r"estimated delivery ([\d-]+)", rest)
    shipped = re.search(r"status Shipped ([\d-]+)", rest)
    delivered = re.search(r"status Delivered ([\d-]+)", rest)
    if rest.startswith("status Processing"):
        status = "processing"
    elif rest.startswith(("status Shipped", "status In transit")):
        status = "shipped"
    elif rest.startswith("status Delivered"):
        status = "delivered"
    else:  # a return received, refunded or not
        status = "returned"
    return {
        "number": m["number"],
        "status": status,
        "placed": m["placed"],
        "items": m["items"].split(", "),
        "total_usd": float(m["total"].replace(",", "")),
        "shipping": m["shipping"],
        "carrier": carrier[1] if carrier else None,
        "tracking": tracking[1] if tracking else None,
        "shipped": shipped[1] if shipped else None,
        "estimated_delivery": estimated[1] if estimated else None,
        "delivered": delivered[1] if delivered else None,
        "refund": rest,
    }


def build_orders(rng: random.Random, conversations: list[dict]) -> dict:
    """The demo backend: every order a conversation looks up (so a demo conversation and the
    backend agree), the README's demo order, a few packed and cancelled ones, each owned by
    an account (email); refunds for the returned ones."""
    orders = [dict(o) for o in DEMO_ORDERS]
    seen = {o["number"] for o in orders}
    for conv in conversations:
        for turn in conv["turns"]:
            order = _order_from_note(turn["text"]) if turn["role"] == "system" else None
            if order is None or order["number"] in seen:
                continue
            seen.add(order["number"])
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            order["name"] = f"{first} {last}"
            order["email"] = f"{first.lower()}.{last.lower()}@{rng.choice(EMAIL_DOMAINS)}"
            if order["status"] == "processing" and rng.random() < 0.3:
                order["status"] = "packed"
            elif order["status"] == "delivered" and rng.random() < 0.1:
                order["status"] = "cancelled"
                order["delivered"] = order["shipped"] = order["carrier"] = order["tracking"] = None
            orders.append(order)
    refunds = []
    for order in orders:
        note = order.pop("refund", "")
        issued = re.search(r"refund of \$([\d,.]+) issued ([\d-]+) to ([\w ]+?) ending (\d{4})", note)
        if issued:
            refunds.append(
                {
                    "order": order["number"],
                    "status": "issued",
                    "amount_usd": float(issued[1].replace(",", "")),
                    "date": issued[2],
                    "card": f"{issued[3]} ending {issued[4]}",
                }
            )
        elif order["status"] == "returned":
            received = re.search(r"return received ([\d-]+)", note)
            refunds.append(
                {
                    "order": order["number"],
                    "status": "pending",
                    "amount_usd": order["total_usd"],
                    "date": received[1] if received else order["placed"],
                    "card": None,
                }
            )
    accounts: dict[str, dict] = {}
    for order in orders:
        accounts.setdefault(order["email"], {"email": order["email"], "name": order.pop("name")})
        order.pop("name", None)
    return {
        "accounts": sorted(accounts.values(), key=lambda a: a["email"]),
        "orders": sorted(orders, key=lambda o: o["number"]),
        "refunds": sorted(refunds, key=lambda r: r["order"]),
    }


def heldout_mix() -> dict[str, int]:
    """CONVERSATION_MIX scaled down to about N_HELDOUT conversations, every intent at least once."""
    return {intent: max(1, round(n * N_HELDOUT / N_CONVERSATIONS)) for intent, n in CONVERSATION_MIX.items()}


def build_kb() -> list[dict]:
    articles = []
    for id_, title, intents, text in KB_ARTICLES:
        articles.append(
            {
                "id": id_,
                "title": title.format_map(FACTS),
                "text": text.strip().format_map(FACTS),
                "intents": intents,
            }
        )
    return articles


def render_files() -> dict[str, str]:
    """File name -> exact text. Separate seeded generators keep each file stable."""
    examples = build_intent_examples(random.Random(SEED))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["text", "intent"])
    writer.writerows(examples)

    avoid = {text.lower() for text, _ in examples}
    conversations = build_conversations(random.Random(SEED + 1), avoid)
    # held-out first turns repeat neither an intent example nor a training conversation's
    heldout_avoid = avoid | {c["turns"][0]["text"].lower() for c in conversations}
    heldout = build_conversations(random.Random(HELDOUT_SEED), heldout_avoid, heldout_mix(), prefix="heldout")

    def jsonl(rows: list[dict]) -> str:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    return {
        "company.json": json.dumps(COMPANY, indent=2, ensure_ascii=False) + "\n",
        "kb.jsonl": jsonl(build_kb()),
        "conversations.jsonl": jsonl(conversations),
        "intents.csv": buf.getvalue(),
        "heldout.jsonl": jsonl(heldout),
        "orders.json": json.dumps(build_orders(random.Random(ORDERS_SEED), conversations), indent=1) + "\n",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output folder (default: the folder of this script, data/)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in render_files().items():
        (args.out / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {args.out / name} ({len(text.encode('utf-8')):,} bytes)")


if __name__ == "__main__":
    main()
