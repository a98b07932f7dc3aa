"""Who handles a conversation: the bot, nobody yet (pending), one human agent (open), or
nobody any more (resolved); the steps between those, and the agents' queue.

Every step is one write transaction that re-reads the conversation first (BEGIN IMMEDIATE
takes the write lock before the read), so two agents claiming the same conversation from
two processes get one winner and one ConversationHeldError naming the winner, never two
holders. Each spell of human handling is one `handoffs` row (an episode): made when the
bot hands over or an agent takes over, closed when the conversation is handed back or
resolved; the metrics time claims and first responses from it.

    bot ──handoff hook──▶ pending ──claim/assign/send──▶ open ──hand_back──▶ bot
     │                      │                             │
     └──take_over/send──────┼────────────────────────────▶│──resolve──▶ resolved
                            └──resolve────────────────────────────────▶ resolved ──take_over──▶ open
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from bot.agents.accounts import Agent
from bot.agents.clock import Clock, parse_timestamp, timestamp, utc_now
from bot.agents.errors import (
    ConversationHeldError,
    ConversationResolvedError,
    ForbiddenError,
    InvalidAgentInputError,
    InvalidTransitionError,
    UnknownAgentError,
    UnknownSuggestionError,
)
from bot.errors import UnknownConversationError
from bot.store import ConversationStore, DialogueState, MessageRecord
from retrieval.entities import PLACEHOLDER_RE

MAX_MESSAGE_CHARS = 4000
MAX_TAGS, MAX_TAG_CHARS = 10, 40
PREVIEW_CHARS = 200
RECENT_BOT_HOURS = 24
TOOK_OVER = "agent took over"
_TAG = re.compile(rf"[\w -]{{1,{MAX_TAG_CHARS}}}")

# the conversation's columns every read here needs, with its holder's name, the reason of
# its latest episode and the start of its open one
_COLUMNS = (
    "select c.id, c.channel, c.handling, c.agent_id, a.name as agent_name, c.tags, c.state, c.created_at, "
    "c.updated_at, c.handling_changed_at, "
    "(select h.reason from handoffs h where h.conversation_id = c.id order by h.id desc limit 1) as reason, "
    "(select h.created_at from handoffs h where h.conversation_id = c.id and h.status != 'closed' "
    " order by h.id desc limit 1) as episode_at"
)
_FROM = " from conversations c left join agents a on a.id = c.agent_id"
_CONVERSATION = _COLUMNS + _FROM
# what the queue shows besides: the customer's latest message and the number of messages
_QUEUE = (
    _COLUMNS + ", (select m.text from messages m where m.conversation_id = c.id and m.role = 'customer' "
    "order by m.turn desc limit 1) as last_customer_text, "
    "(select count(*) from messages m where m.conversation_id = c.id) as messages" + _FROM
)


@dataclass(frozen=True)
class HandlingInfo:
    """A conversation's handling as the panel shows it."""

    conversation_id: str
    channel: str
    handling: str  # bot | pending | open | resolved
    agent_id: int | None  # the holder while open
    agent_name: str | None
    reason: str | None  # why humans were brought in (the latest episode's), None while the bot has it
    pending_since: str | None  # while pending: since when it waits
    tags: tuple[str, ...]  # set when it was resolved
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        """The `conversation` object of the panel's HTTP API."""
        return {
            "id": self.conversation_id,
            "channel": self.channel,
            "handling": self.handling,
            "agent": self.agent_name,
            "reason": self.reason,
            "pending_since": self.pending_since,
            "tags": list(self.tags),
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class QueueItem:
    """One conversation in the agents' queue."""

    conversation_id: str
    channel: str
    handling: str
    reason: str | None
    pending_since: str | None
    waiting_seconds: int | None  # while pending: how long it has waited
    agent_id: int | None
    agent_name: str | None
    last_customer_text: str | None  # the customer's latest message, cut to 200 characters
    messages: int
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Queue:
    """Waiting conversations (oldest first), held ones, and recent ones the bot handles."""

    pending: list[QueueItem] = field(default_factory=list)
    open: list[QueueItem] = field(default_factory=list)
    bot: list[QueueItem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {name: [item.to_json() for item in getattr(self, name)] for name in ("pending", "open", "bot")}

    def counts(self) -> dict[str, int]:
        return {"pending": len(self.pending), "open": len(self.open), "bot": len(self.bot)}

    def signature(self) -> str:
        """Changes whenever the queue does, except for waiting times ticking on: what a live
        view compares to know when to fetch the queue again."""
        parts = [
            [i.conversation_id, i.handling, i.agent_id, i.updated_at, i.messages]
            for i in (*self.pending, *self.open, *self.bot)
        ]
        return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:16]


# what the customer is told when an agent hands back or resolves (channels may localize by action)
NOTICES = {
    "handed_back": "You are chatting with our assistant again.",
    "resolved": "The support agent has closed this chat. Thank you for contacting us.",
}


def check_message_text(text: object) -> str:
    """An agent message's text, stripped; InvalidAgentInputError unless 1 to 4000 characters."""
    if not isinstance(text, str):
        raise InvalidAgentInputError(f"a message is text, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InvalidAgentInputError("the message is empty; write something to send")
    if len(stripped) > MAX_MESSAGE_CHARS:
        raise InvalidAgentInputError(
            f"the message has {len(stripped)} characters; the limit is {MAX_MESSAGE_CHARS} (split it in two)"
        )
    # a suggestion keeps the placeholders the conversation could not fill; the agent fills them
    open_placeholders = sorted({m.group(0) for m in PLACEHOLDER_RE.finditer(stripped)})
    if open_placeholders:
        raise InvalidAgentInputError(
            f"fill in {', '.join(open_placeholders)} before sending (the customer would see it as written)"
        )
    return stripped


def check_tags(tags: object) -> list[str]:
    """Resolution tags, stripped and without repeats; InvalidAgentInputError unless a list of
    at most 10 tags of 1 to 40 letters, digits, '_', '-' or spaces."""
    if not isinstance(tags, (list, tuple)):
        raise InvalidAgentInputError(f"tags are a list of text, got {type(tags).__name__}")
    cleaned: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag.strip()):
            raise InvalidAgentInputError(
                f"tag {tag!r} is not allowed: use 1 to {MAX_TAG_CHARS} letters, digits, '_', '-' or spaces"
            )
        if tag.strip() not in cleaned:
            cleaned.append(tag.strip())
    if len(cleaned) > MAX_TAGS:
        raise InvalidAgentInputError(f"{len(cleaned)} tags; use at most {MAX_TAGS}")
    return cleaned


def _preview(text: str | None) -> str | None:
    if text is None or len(text) <= PREVIEW_CHARS:
        return text
    return text[: PREVIEW_CHARS - 1] + "…"


def _pending_since(row: dict[str, Any]) -> str | None:
    if row["handling"] != "pending":
        return None
    return row["handling_changed_at"] or row["episode_at"] or row["updated_at"]


def _waiting_order(item: QueueItem) -> tuple[str, str]:
    return item.pending_since or "", item.conversation_id


def _holder(row: dict[str, Any]) -> str:
    return row["agent_name"] or f"agent #{row['agent_id']}"


class ConversationHandling:
    """The handling steps (claim, take over, assign, hand back, resolve, send) and the queue."""

    def __init__(self, store: ConversationStore, clock: Clock = utc_now):
        self.store = store
        self.clock = clock

    # -- reads -----------------------------------------------------------------------
    def state(self, conversation_id: str) -> HandlingInfo:
        row = self._row(conversation_id)
        return HandlingInfo(
            conversation_id=row["id"],
            channel=row["channel"],
            handling=row["handling"],
            agent_id=row["agent_id"],
            agent_name=row["agent_name"],
            reason=row["reason"] if row["handling"] != "bot" else None,
            pending_since=_pending_since(row),
            tags=tuple(json.loads(row["tags"] or "[]")),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def queue(self, limit_recent: int = 50) -> Queue:
        """Pending conversations (longest waiting first), held ones (latest activity first),
        and up to `limit_recent` the bot handled (or that were resolved) in the last 24 hours,
        newest first."""
        now = self.clock()
        held = list(self.store.db.query(_QUEUE + " where c.handling in ('pending', 'open')"))
        recent = list(
            self.store.db.query(
                _QUEUE + " where c.handling in ('bot', 'resolved') and c.updated_at >= ? "
                "order by c.updated_at desc limit ?",
                [timestamp(now - timedelta(hours=RECENT_BOT_HOURS)), max(0, int(limit_recent))],
            )
        )

        def item(row: dict[str, Any]) -> QueueItem:
            since = _pending_since(row)
            waiting = None
            if since is not None:
                waiting = max(0, int((now - parse_timestamp(since)).total_seconds()))
            return QueueItem(
                conversation_id=row["id"],
                channel=row["channel"],
                handling=row["handling"],
                reason=row["reason"] if row["handling"] != "bot" else None,
                pending_since=since,
                waiting_seconds=waiting,
                agent_id=row["agent_id"],
                agent_name=row["agent_name"],
                last_customer_text=_preview(row["last_customer_text"]),
                messages=int(row["messages"]),
                updated_at=row["updated_at"],
            )

        items = [item(r) for r in held]
        pending = sorted((i for i in items if i.handling == "pending"), key=_waiting_order)
        opened = sorted((i for i in items if i.handling == "open"), key=lambda i: i.updated_at, reverse=True)
        return Queue(pending=pending, open=opened, bot=[item(r) for r in recent])

    # -- steps -----------------------------------------------------------------------
    def claim(self, conversation_id: str, agent: Agent) -> HandlingInfo:
        """pending → open, held by `agent`. A no-op when `agent` holds it already;
        ConversationHeldError when someone else does; InvalidTransitionError for one the
        bot handles or that is resolved (take it over instead)."""
        with self.store._write_transaction():
            row = self._row(conversation_id)
            self._claim(row, agent, take_over=False)
            return self.state(conversation_id)

    def take_over(self, conversation_id: str, agent: Agent) -> HandlingInfo:
        """bot | resolved | pending → open, held by `agent` (a new episode for bot and
        resolved ones, reason 'agent took over'). ConversationHeldError when held by another."""
        with self.store._write_transaction():
            row = self._row(conversation_id)
            self._claim(row, agent, take_over=True)
            return self.state(conversation_id)

    def assign(self, conversation_id: str, agent_name: str, by: Agent) -> HandlingInfo:
        """Give a pending or held conversation to another enabled agent. Anyone may assign a
        pending one; a held one only its holder or an admin."""
        with self.store._write_transaction():
            row = self._row(conversation_id)
            target = self._assignee(agent_name)
            handling = row["handling"]
            if handling in ("bot", "resolved"):
                raise InvalidTransitionError(
                    f"conversation {conversation_id} is {'handled by the bot' if handling == 'bot' else 'resolved'}; "
                    "take it over first, then assign it"
                )
            if handling == "open":
                self._require_holder_or_admin(row, by, "assign")
                if row["agent_id"] != target.id:
                    self.store.db.execute(
                        "update conversations set agent_id = ? where id = ?", [target.id, conversation_id]
                    )
                    self.store.db.execute(
                        "update handoffs set agent_id = ? where conversation_id = ? and status != 'closed'",
                        [target.id, conversation_id],
                    )
            else:
                self._hold_pending(row, target)
            return self.state(conversation_id)

    def hand_back(self, conversation_id: str, agent: Agent) -> HandlingInfo:
        """open → bot (its holder or an admin): the episode closes as 'handed_back' and the
        dialogue state forgets the handoff and the failures, so the bot answers the next turn."""
        with self.store._write_transaction():
            row = self._row(conversation_id)
            handling = row["handling"]
            if handling != "open":
                what = {
                    "bot": "is handled by the bot already",
                    "pending": "waits for an agent; claim it first, or resolve it",
                    "resolved": "is resolved; the bot answers its next message already",
                }[handling]
                raise InvalidTransitionError(f"conversation {conversation_id} {what}")
            self._require_holder_or_admin(row, agent, "hand back")
            self._release(row, handling="bot", status="open", tags=None)
            self._close_episodes(conversation_id, "handed_back", agent)
            self._notice(conversation_id, "handed_back", agent)
            return self.state(conversation_id)

    def resolve(self, conversation_id: str, agent: Agent, tags: builtins.list[str]) -> HandlingInfo:
        """open (its holder or an admin) or pending (anyone) → resolved, with `tags`; the
        episode closes as 'resolved' and the dialogue state forgets the handoff."""
        cleaned = check_tags(tags)
        with self.store._write_transaction():
            row = self._row(conversation_id)
            handling = row["handling"]
            if handling == "resolved":
                raise ConversationResolvedError(conversation_id)
            if handling == "bot":
                raise InvalidTransitionError(
                    f"conversation {conversation_id} is handled by the bot; take it over first to resolve it"
                )
            if handling == "open":
                self._require_holder_or_admin(row, agent, "resolve")
            self._release(row, handling="resolved", status="closed", tags=cleaned)
            self._close_episodes(conversation_id, "resolved", agent)
            self._notice(conversation_id, "resolved", agent)
            return self.state(conversation_id)

    def send(self, conversation_id: str, agent: Agent, text: str, suggestion_id: int | None = None) -> int:
        """Write `agent`'s message as the conversation's next turn; returns its message id.

        A pending conversation is claimed and a bot-handled one taken over first, in the same
        transaction. With `suggestion_id` (a suggestion shown in this conversation), the
        message records it, keeps the suggestion's text as `edited_from` when the agent
        changed it, and the suggestion's outcome becomes 'sent' or 'edited'."""
        body = check_message_text(text)
        if suggestion_id is not None and (isinstance(suggestion_id, bool) or not isinstance(suggestion_id, int)):
            raise InvalidAgentInputError(f"suggestion_id is a number, got {type(suggestion_id).__name__}")
        with self.store._write_transaction():
            row = self._row(conversation_id)
            if row["handling"] == "resolved":
                raise ConversationResolvedError(conversation_id)
            suggestion = self._suggestion(conversation_id, suggestion_id) if suggestion_id is not None else None
            self._claim(row, agent, take_over=True)
            now = timestamp(self.clock())
            edited_from = None
            if suggestion is not None and suggestion["text"].strip() != body:
                edited_from = suggestion["text"]
            message_id = self.store._insert_message(
                conversation_id,
                self.store._next_turn(conversation_id),
                MessageRecord("agent", body, agent_id=agent.id, suggestion_id=suggestion_id, edited_from=edited_from),
            )
            self.store.db.execute("update conversations set updated_at = ? where id = ?", [now, conversation_id])
            self.store.db.execute(
                "update handoffs set first_response_at = ? where id = ("
                " select id from handoffs where conversation_id = ? and status != 'closed' order by id desc limit 1"
                ") and first_response_at is null",
                [now, conversation_id],
            )
            if suggestion is not None:
                self.store.db.execute(
                    "update suggestions set outcome = ?, final_text = ?, message_id = ?, decided_at = ? where id = ?",
                    ["edited" if edited_from is not None else "sent", body, message_id, now, suggestion_id],
                )
            return message_id

    # -- the pieces ------------------------------------------------------------------
    def _row(self, conversation_id: str) -> dict[str, Any]:
        rows = list(self.store.db.query(_CONVERSATION + " where c.id = ?", [conversation_id]))
        if not rows:
            raise UnknownConversationError(conversation_id)
        return rows[0]

    def _claim(self, row: dict[str, Any], agent: Agent, *, take_over: bool) -> None:
        """Make `agent` the holder (inside the caller's transaction)."""
        cid, handling = row["id"], row["handling"]
        if handling == "open":
            if row["agent_id"] != agent.id:
                raise ConversationHeldError(_holder(row), cid)
            return
        if handling == "pending":
            self._hold_pending(row, agent)
            return
        if not take_over:
            what = "is handled by the bot" if handling == "bot" else "is resolved"
            raise InvalidTransitionError(f"conversation {cid} {what}; take it over instead of claiming it")
        now = timestamp(self.clock())
        last = self.store.db.execute("select max(id) from messages where conversation_id = ?", [cid]).fetchone()[0]
        self.store.db.execute(
            "insert into handoffs (conversation_id, message_id, reason, status, created_at, agent_id, claimed_at) "
            "values (?, ?, ?, 'assigned', ?, ?, ?)",
            [cid, last, TOOK_OVER, now, agent.id, now],
        )
        self._hold(cid, agent.id, now)

    def _hold_pending(self, row: dict[str, Any], agent: Agent) -> None:
        """pending → open: the open episode becomes assigned to `agent` (one is made for a
        conversation that waits without one, as stores from before the panel have)."""
        cid, now = row["id"], timestamp(self.clock())
        episode = list(
            self.store.db.query(
                "select id from handoffs where conversation_id = ? and status != 'closed' order by id desc limit 1",
                [cid],
            )
        )
        if episode:
            self.store.db.execute(
                "update handoffs set status = 'assigned', agent_id = ?, claimed_at = coalesce(claimed_at, ?) "
                "where id = ?",
                [agent.id, now, episode[0]["id"]],
            )
        else:
            self.store.db.execute(
                "insert into handoffs (conversation_id, reason, status, created_at, agent_id, claimed_at) "
                "values (?, 'handoff', 'assigned', ?, ?, ?)",
                [cid, row["handling_changed_at"] or row["updated_at"], agent.id, now],
            )
        self._hold(cid, agent.id, now)

    def _hold(self, conversation_id: str, agent_id: int, now: str) -> None:
        self.store.db.execute(
            "update conversations set handling = 'open', agent_id = ?, status = 'handoff', handling_changed_at = ?, "
            "tags = null where id = ?",
            [agent_id, now, conversation_id],
        )

    def _release(self, row: dict[str, Any], *, handling: str, status: str, tags: builtins.list[str] | None) -> None:
        """Nobody holds it any more; the dialogue state forgets the handoff and the failures
        (so the bot answers again instead of repeating the handoff), keeping the slots."""
        state = DialogueState.from_json(row["state"])
        state.handed_off, state.failures = False, 0
        self.store.db.execute(
            "update conversations set handling = ?, agent_id = null, status = ?, handling_changed_at = ?, "
            "state = ?, tags = coalesce(?, tags) where id = ?",
            [
                handling,
                status,
                timestamp(self.clock()),
                state.to_json(),
                None if tags is None else json.dumps(tags),
                row["id"],
            ],
        )

    def _notice(self, conversation_id: str, action: str, agent: Agent) -> None:
        """A system message that tells the customer's channel what happened (the widget
        shows it in the customer's language, by its action, and asks for a rating once the
        conversation is resolved); it is never a training target."""
        self.store._insert_message(
            conversation_id,
            self.store._next_turn(conversation_id),
            MessageRecord("system", NOTICES[action], action=action, agent_id=agent.id),
        )

    def _close_episodes(self, conversation_id: str, outcome: str, agent: Agent) -> None:
        self.store.db.execute(
            "update handoffs set status = 'closed', closed_at = ?, outcome = ?, agent_id = coalesce(agent_id, ?) "
            "where conversation_id = ? and status != 'closed'",
            [timestamp(self.clock()), outcome, agent.id, conversation_id],
        )

    def _require_holder_or_admin(self, row: dict[str, Any], agent: Agent, what: str) -> None:
        if row["agent_id"] != agent.id and not agent.is_admin:
            holder = _holder(row)
            raise ForbiddenError(f"{holder} has conversation {row['id']}; only {holder} or an admin may {what} it")

    def _assignee(self, name: str) -> Agent:
        if not isinstance(name, str):
            raise InvalidAgentInputError(f"an agent name is text, got {type(name).__name__}")
        rows = list(self.store.db.query("select * from agents where name = ?", [name.lower()]))
        if not rows:
            raise UnknownAgentError(name)
        target = Agent.from_row(rows[0])
        if target.disabled:
            raise InvalidAgentInputError(f"{target.name} is disabled; assign it to someone else or enable them first")
        return target

    def _suggestion(self, conversation_id: str, suggestion_id: int) -> dict[str, Any]:
        rows = list(
            self.store.db.query(
                "select id, text, outcome, message_id from suggestions where id = ? and conversation_id = ?",
                [suggestion_id, conversation_id],
            )
        )
        if not rows:
            raise UnknownSuggestionError(suggestion_id)
        if rows[0]["outcome"] in ("sent", "edited"):
            raise InvalidTransitionError(
                f"suggestion {suggestion_id} was sent already (message {rows[0]['message_id']}); "
                "send the text without suggestion_id to say it again"
            )
        return rows[0]
