"""The agent panel's request and response bodies (pydantic): they validate what the
panel sends at the edge (a 422 naming the field) and document /api/v1/agent/ in
/openapi.json.

What an agent writes is checked for length and control characters here, and by
bot/agents for its own rules (names, passwords, tags). Notes are internal and kept
verbatim, markup included: the panel shows every text as text, never as HTML. An agent's
message goes to the customer and into the training pairs, so like a customer's it must be
plain text (bot.server.schemas.check_plain_text).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from bot.server.schemas import check_plain_text, check_text
from retrieval.entities import placeholders_in

# -- signing in --------------------------------------------------------------------------


class SignInIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="the agent's name (case-insensitive)")
    password: str = Field(min_length=1, max_length=1024)


class AgentRef(BaseModel):
    id: int
    name: str
    role: Literal["agent", "admin"]


class SessionOut(BaseModel):
    agent: AgentRef
    csrf_token: str = Field(description="send it as the X-CSRF-Token header on every POST, PUT and DELETE")
    expires_at: str = Field(description="when the session ends at the latest (it also ends when idle)")


# -- the queue ---------------------------------------------------------------------------


class QueueItem(BaseModel):
    """A conversation in one of the queue's lists."""

    conversation_id: str
    channel: str
    handling: Literal["bot", "pending", "open", "resolved"]
    reason: str | None = Field(description="why it came to the agents")
    pending_since: str | None = Field(description="while pending: since when it waits")
    waiting_seconds: int | None = Field(description="while pending: how long it has waited")
    agent_id: int | None = Field(description="the holder, while open")
    agent_name: str | None
    last_customer_text: str | None = Field(description="the customer's latest message (cut to 200 characters)")
    messages: int = Field(description="how many messages it has")
    updated_at: str


class QueueOut(BaseModel):
    pending: list[QueueItem] = Field(description="waiting for an agent, longest waiting first")
    open: list[QueueItem] = Field(description="held by an agent")
    bot: list[QueueItem] = Field(description="handled by the bot, active in the last 24 hours, newest first")


# -- a conversation ----------------------------------------------------------------------


class ConversationInfo(BaseModel):
    id: str
    channel: str
    handling: Literal["bot", "pending", "open", "resolved"]
    agent: str | None = Field(description="the agent holding it (while open)")
    reason: str | None = Field(description="why it came to the agents (the latest episode's reason)")
    pending_since: str | None = Field(None, description="while pending: since when it waits")
    tags: list[str]
    created_at: str


class ConversationChanged(BaseModel):
    conversation: ConversationInfo


class SourceOut(BaseModel):
    id: str
    score: float
    kind: str | None = Field(description="kb, transcript or qa; null when the unit is no longer in the index")
    title: str | None
    text: str


class PanelMessage(BaseModel):
    message_id: int
    role: Literal["customer", "bot", "agent", "system"]
    text: str
    created_at: str
    intent: str | None = None
    confidence: float | None = None
    action: str | None = None
    composer: str | None = None
    sources: list[SourceOut] = []
    agent: str | None = Field(None, description="who sent an agent message")
    edited_from: str | None = Field(None, description="the suggestion's text, when the agent edited it")


class NoteOut(BaseModel):
    id: int
    agent_name: str
    text: str
    created_at: str


class ConversationView(BaseModel):
    conversation: ConversationInfo
    messages: list[PanelMessage] = Field(description="every message, oldest first")
    notes: list[NoteOut] = Field(description="internal notes, oldest first; never shown to the customer")
    csat: int | None = Field(description="the customer's latest satisfaction score (1-5)")


class AssignIn(BaseModel):
    agent: str = Field(min_length=1, max_length=64, description="the name of the agent to give it to")


class ResolveIn(BaseModel):
    tags: list[str] = Field(default_factory=list, max_length=10, description="at most 10, each 1-40 characters")


class AgentMessageIn(BaseModel):
    text: str = Field(description="the reply to the customer, plain text (at most CSBOT_MAX_MESSAGE_CHARS)")
    suggestion_id: int | None = Field(None, ge=1, description="the suggestion it started from, if any")

    @field_validator("text")
    @classmethod
    def _plain(cls, value: str) -> str:
        check_plain_text(value)
        left = placeholders_in(value)
        if left:
            raise PydanticCustomError(
                "placeholder_left",
                f"text still holds {', '.join(dict.fromkeys(left))}; replace each placeholder with the "
                "customer's value before sending",
            )
        return value


class MessageCreated(BaseModel):
    message_id: int


class NoteIn(BaseModel):
    text: str = Field(max_length=4000, description="an internal note (1-4000 characters); the customer never sees it")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        # notes are internal: markup is kept as written (and shown as text)
        return check_text(value, empty_hint="write the note")


class NoteCreated(BaseModel):
    note_id: int


# -- users (admin) -----------------------------------------------------------------------


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="1-64 characters of a-z, 0-9, '.', '_', '-'")
    password: str = Field(min_length=1, max_length=1024, description="at least 10 characters")
    role: Literal["agent", "admin"] = "agent"


class PasswordIn(BaseModel):
    password: str = Field(min_length=1, max_length=1024, description="at least 10 characters")


class UserOut(BaseModel):
    id: int
    name: str
    role: Literal["agent", "admin"]
    disabled: bool
    created_at: str


class UsersOut(BaseModel):
    users: list[UserOut]


# -- models (admin) ----------------------------------------------------------------------


class ModelOut(BaseModel):
    id: str
    name: str | None = None
    base: str | None = None
    data_sha256: str | None = None
    registered_at: str | None = None
    state: str = Field(description="promoted, awaiting approval or registered")
    promoted: bool
    previous: bool = Field(description="the model a rollback would promote again")
    validation: dict = Field(description="the training run's figures (valid_loss, ...)")
    evaluation: dict | None = Field(description="the learning round's held-out comparison, when it made this model")


class ModelsOut(BaseModel):
    models: list[ModelOut] = Field(description="oldest registration first")
    promoted: str | None = Field(description="the model the assistant uses (null: the retrieval composer)")
    previous: str | None = Field(description="what a rollback would promote")
    problem: str | None = Field(description="why the promotion cannot be used, with its fix; null when it can")


class PromotionOut(BaseModel):
    promoted: str | None = Field(description="the model the assistant uses now (null: the retrieval composer)")
    previous: str | None = Field(None, description="what a rollback would promote")
    retired: str | None = Field(None, description="the model switched off (retire)")
    rolled_back_from: str | None = Field(None, description="the model promoted before the rollback")
