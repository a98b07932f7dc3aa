"""The API's request and response bodies (pydantic): they validate input at the edge
(a wrong type or a missing field is a 422 that names the field) and document the API in
/openapi.json.

Message text is plain text: a message with HTML markup or control characters is refused
with a 422 that says so, rather than stored and shown. The widget never inserts text as
HTML either; refusing it here also keeps markup out of the store, the agent panel and the
fine-tuning data.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CLIENT_MESSAGE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

# HTML element names (and svg, math): "<b>", "</div>", "<img src=x ...>", "<svg onload=...>"
# are markup; "<3", "a < b", "x<y and z>w" and "<order number>" are not. (SVG's inner
# elements are left out: "<text message>" or "<path to file>" is how people write.)
_ELEMENTS = frozenset("""
a abbr acronym address applet area article aside audio b base basefont bdi bdo bgsound big blink
blockquote body br button canvas caption center cite code col colgroup data datalist dd del details
dfn dialog dir div dl dt em embed fieldset figcaption figure font footer form frame frameset h1 h2
h3 h4 h5 h6 head header hgroup hr html i iframe image img input ins isindex kbd keygen label legend
li link listing main map mark marquee math menu menuitem meta meter nav nobr noembed noframes
noscript object ol optgroup option output p param picture plaintext portal pre progress q rb rp rt
rtc ruby s samp script search section select slot small source span strike strong style sub summary
sup svg table tbody td template textarea tfoot th thead time title tr track tt u ul var video wbr
xmp
""".split())  # noqa: SIM905 - a word list reads better than 150 quoted strings
_TAG = re.compile(r"<\s*/?\s*([A-Za-z][A-Za-z0-9]*)(?=[\s/>])[^<>]*>")
_OTHER_MARKUP = re.compile(r"<!--|<!\[CDATA\[|<!doctype|<\?xml|\b(?:javascript|vbscript):\S|data:text/html",
                           re.IGNORECASE)
_ALLOWED_CONTROLS = frozenset("\n\t\r")


def check_plain_text(value: str, field: str = "text") -> str:
    """`value` unchanged, or a validation error naming what is wrong with it: empty,
    control characters (other than newline, tab, carriage return), or HTML/script."""
    if not value.strip():
        raise PydanticCustomError("empty_text", f"{field} is empty; type a question or request")
    for position, ch in enumerate(value):
        if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) in ("Cc", "Cs"):
            raise PydanticCustomError(
                "control_character",
                f"{field} contains the control character U+{ord(ch):04X} at position {position}; "
                "send plain text (newlines and tabs are fine)",
            )
    tag = next((m for m in _TAG.finditer(value) if m.group(1).lower() in _ELEMENTS), None)
    markup = tag.group(0) if tag else (m.group(0) if (m := _OTHER_MARKUP.search(value)) else None)
    if markup is not None:
        shown = markup if len(markup) <= 40 else markup[:37] + "..."
        raise PydanticCustomError(
            "html_markup",
            f"{field} contains HTML or script ({shown!r}); send plain text: messages are shown as "
            "text, never as markup",
        )
    return value


def _optional_comment(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return check_plain_text(value, "comment")


Comment = Annotated[str | None, Field(max_length=2000), AfterValidator(_optional_comment)]


# -- conversations and messages ----------------------------------------------------------

class ConversationIn(BaseModel):
    channel: str = Field("web", pattern=r"^[a-z][a-z0-9_-]{0,31}$",
                         description="where the customer writes from (web, rest, ...)")


class ConversationCreated(BaseModel):
    conversation_id: str


class MessageIn(BaseModel):
    text: str = Field(description="the customer's message, plain text "
                                  "(at most CSBOT_MAX_MESSAGE_CHARS characters, default 4000)")
    client_message_id: str | None = Field(
        None, pattern=CLIENT_MESSAGE_ID_PATTERN,
        description="the client's id for this message (a UUID, say); sending the same id "
                    "again returns the stored reply instead of taking a second turn",
    )

    @field_validator("text")
    @classmethod
    def _plain(cls, value: str) -> str:
        return check_plain_text(value)


class SourceOut(BaseModel):
    id: str
    score: float
    text: str


class ReplyOut(BaseModel):
    """The bot's answer: the same fields as `csbot ask` prints."""

    conversation_id: str
    message_id: int = Field(description="the bot message's id (for feedback)")
    reply: str
    intent: str | None
    confidence: float
    out_of_scope: bool
    action: Literal["answer", "smalltalk", "clarify", "fallback", "handoff"]
    sources: list[SourceOut]
    composer: str
    latency_ms: float
    buttons: list[str] = Field(description="quick replies; sending one's text picks it")
    slots: dict[str, str]
    note: str | None


class HistoryMessage(BaseModel):
    message_id: int
    role: Literal["customer", "bot", "agent", "system"]
    text: str
    created_at: str
    action: str | None = None
    buttons: list[str] = []
    feedback: Literal["up", "down"] | None = None


class ConversationOut(BaseModel):
    conversation_id: str
    channel: str
    created_at: str
    handed_off: bool
    messages: list[HistoryMessage]


# -- ratings -----------------------------------------------------------------------------

class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: Comment = None


class FeedbackCreated(BaseModel):
    feedback_id: int


class CsatIn(BaseModel):
    score: int = Field(ge=1, le=5, strict=True, description="1 (very unhappy) to 5 (very happy)")
    comment: Comment = None


class CsatCreated(BaseModel):
    csat_id: int


# -- Rasa REST channel -------------------------------------------------------------------

class RasaIn(BaseModel):
    """Rasa's REST channel body; other keys Rasa clients send (metadata) are ignored."""

    model_config = ConfigDict(extra="ignore")

    sender: str = Field(min_length=1, max_length=128, description="the conversation's id on the client side")
    message: str

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return check_plain_text(value, "sender")

    @field_validator("message")
    @classmethod
    def _message(cls, value: str) -> str:
        return check_plain_text(value, "message")


class RasaButton(BaseModel):
    title: str
    payload: str


class RasaMessage(BaseModel):
    recipient_id: str
    text: str
    buttons: list[RasaButton] | None = None


# -- health ------------------------------------------------------------------------------

class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "loading", "failed"]
    workers: int
    detail: str | None = None


class ErrorOut(BaseModel):
    detail: str


def check_length(value: str, limit: int, field: str = "text") -> None:
    """A 422 in the validation format (naming `body.<field>`) for text over the
    assistant's limit, which is configured (CSBOT_MAX_MESSAGE_CHARS) and so cannot live
    in the static models above."""
    if len(value) > limit:
        raise RequestValidationError([{
            "type": "string_too_long",
            "loc": ("body", field),
            "msg": f"{field} is {len(value)} characters; the limit is {limit} "
                   "(CSBOT_MAX_MESSAGE_CHARS on the server): send a shorter message",
        }])
