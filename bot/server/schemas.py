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

# What a tag looks like, whatever its name (an allowlist of the text people write rather
# than a denylist of element names, which misses custom elements such as <x-y onclick=...>):
# a single word in angle brackets ("<b>", "</div>", "<br/>", "<x-card>"), or a word followed
# by attributes with "=" ("<img src=x onerror=...>", "<svg/onload=...>"). What people write
# in support chats passes: "<3", "a < b", "x<y and z>w", "<order number>".
_TAG = re.compile(r"<\s*/?\s*[A-Za-z][\w:.-]*(?:\s*/?\s*>|[\s/]+[^<>]*=[^<>]*>)")
_OTHER_MARKUP = re.compile(
    r"<!--|<!\[CDATA\[|<!doctype|<\?xml|\b(?:javascript|vbscript):\S|data:text/html", re.IGNORECASE
)
_ALLOWED_CONTROLS = frozenset("\n\t\r")


def check_text(value: str, field: str = "text", empty_hint: str = "type a question or request") -> str:
    """`value` unchanged, or a validation error naming what is wrong with it: empty, or
    control characters (other than newline, tab, carriage return)."""
    if not value.strip():
        raise PydanticCustomError("empty_text", f"{field} is empty; {empty_hint}")
    for position, ch in enumerate(value):
        if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) in ("Cc", "Cs"):
            raise PydanticCustomError(
                "control_character",
                f"{field} contains the control character U+{ord(ch):04X} at position {position}; "
                "send plain text (newlines and tabs are fine)",
            )
    return value


def check_plain_text(value: str, field: str = "text") -> str:
    """`check_text`, and no HTML or script either (what is shown to a customer)."""
    check_text(value, field)
    found = _TAG.search(value) or _OTHER_MARKUP.search(value)
    markup = found.group(0) if found else None
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
    channel: str = Field(
        "web", pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="where the customer writes from (web, rest, ...)"
    )


class ConversationCreated(BaseModel):
    conversation_id: str
    access_token: str = Field(
        description="the conversation's secret: send it as the X-Conversation-Token header on every "
        "other call about this conversation. Returned only here, once; keep it like a password"
    )


class MessageIn(BaseModel):
    text: str = Field(
        description="the customer's message, plain text (at most CSBOT_MAX_MESSAGE_CHARS characters, default 4000)"
    )
    client_message_id: str | None = Field(
        None,
        pattern=CLIENT_MESSAGE_ID_PATTERN,
        description="the client's id for this message (a UUID, say); sending the same id "
        "again returns the stored reply instead of taking a second turn",
    )

    @field_validator("text")
    @classmethod
    def _plain(cls, value: str) -> str:
        return check_plain_text(value)


class CitationOut(BaseModel):
    """A knowledge-base article the reply drew on, which the customer may read."""

    id: str
    title: str
    text: str


class ReplyOut(BaseModel):
    """The bot's answer as a customer sees it. (The intent, confidence, slots, the
    composer's note and every retrieval hit stay inside: `csbot ask` and the store.)"""

    conversation_id: str
    message_id: int = Field(description="the bot message's id (for feedback)")
    reply: str
    action: Literal["answer", "smalltalk", "clarify", "fallback", "handoff", "agent"]
    buttons: list[str] = Field(description="quick replies; sending one's text picks it")
    sources: list[CitationOut] = Field(description="knowledge-base articles the reply cites")
    ends_conversation: bool = Field(description="the customer said goodbye: a good moment to ask for CSAT")


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
    messages: list[HistoryMessage] = Field(description="one page, oldest first")
    has_more: bool = Field(description="older messages exist: ask again with before=<first message_id>")


# -- ratings -----------------------------------------------------------------------------


class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: Comment = None


class FeedbackOut(BaseModel):
    message_id: int
    rating: Literal["up", "down"]


class CsatIn(BaseModel):
    score: int = Field(ge=1, le=5, strict=True, description="1 (very unhappy) to 5 (very happy)")
    comment: Comment = None


class CsatOut(BaseModel):
    score: int


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
    code: str = Field(description="stable and machine-readable, e.g. conversation_not_found, rate_limited")
    detail: str = Field(description="what was wrong and what to do, for people")


def check_length(value: str, limit: int, field: str = "text") -> None:
    """A 422 in the validation format (naming `body.<field>`) for text over the
    assistant's limit, which is configured (CSBOT_MAX_MESSAGE_CHARS) and so cannot live
    in the static models above."""
    if len(value) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("body", field),
                    "msg": f"{field} is {len(value)} characters; the limit is {limit} "
                    "(CSBOT_MAX_MESSAGE_CHARS on the server): send a shorter message",
                }
            ]
        )
