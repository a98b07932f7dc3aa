"""The words the PII scrubber treats specially: capitalised words that are never names after a
cue, product words that never continue a name, and lowercase function words that are never
part of a name or a handle."""

from __future__ import annotations

import re


def word_list(text: str) -> list[str]:
    """The whitespace-separated words of `text`, in order: long word lists read better as
    prose than one quoted word a line."""
    return text.split()


# Capitalised words that follow name cues without being names ("I'm Sorry.", "Hi Team,").
STOP_WORDS = frozenset(
    w.lower()
    for w in word_list(
        "Fine Good Great Ok Okay Sorry Here There Back Done Ready Sure Happy Glad Confused Lost Interested Not New "
        "Still Just Well Alright Right Correct Calling Writing Trying Looking Waiting Afraid Unsure Frustrated Upset "
        "Annoyed Angry Disappointed Tired Satisfied Curious Again All Everyone Everybody Guys Folks Team Support Sir "
        "Madam Mam Maam Friend Friends Bot Assistant Agent Customer Service Help Helpdesk Desk Care Mate Buddy Dude "
        "Man Bro Anyone Someone Somebody Nobody Mr Mrs Ms Miss Dr The A An It This That Yes No Yeah Yep Nope Please "
        "Thanks Thank You Hi Hello Hey Dear Bye Goodbye Morning Afternoon Evening Night Day Monday Tuesday Wednesday "
        "Thursday Friday Saturday Sunday Today Tomorrow Yesterday January February March April May June July August "
        "September October November December Visa Mastercard Paypal Apple Google Amazon Express Standard Order Refund "
        "Return Account English Spanish French German American Canadian British Human Real Person Robot Chat"
    )
)
# Title-case product and shop words that never continue a name ("Rose Gold", "Summer Sale").
NOT_SURNAMES = frozenset(
    w.lower()
    for w in word_list(
        "Gold Silver Bronze Platinum Red Green Blue Black White Grey Gray Pink Purple Orange Yellow Beige Cream Navy "
        "Teal Glass Wood Steel Linen Cotton Wool Leather Ceramic Set Sets Collection Edition Series Range Line Sale "
        "Sales Deal Deals Pro Max Mini Plus Lite Ultra Card Cards Pay Period Policy Store Shop Goods Week Month Year "
        "Package Bundle Kit Size Delivery Shipping Returns Membership Member Gift Gifts Code Number Street Avenue "
        "Road"
    )
)
# Lowercase words that are never (part of) a name or a handle.
FUNCTION_WORDS = frozenset(
    word_list(
        "a an the and or but if so of to in on at by for from with about into over under after before is am are was "
        "were be been being do does did have has had will would can could shall should may might must not no yes i me "
        "my mine we us our you your he him his she her it its they them their this that these those here there what "
        "which who whom whose when where why how all any some each every both either neither one two just also too "
        "very really still already again please thanks thank hi hello hey ok okay sure well now then than as up down "
        "out off back looking trying calling writing waiting wondering hoping going getting sorry fine good great "
        "happy glad new order orders account email phone number name card help support customer"
    )
)

# one word of letters, with inner apostrophes or hyphens ("O'Brien", "Jean-Luc")
TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def words(text: str) -> list[str]:
    """The words of `text` (letters, inner apostrophes and hyphens; no digits)."""
    return TOKEN_RE.findall(text)
