"""The conversations pairs are built from, read from the store or from transcript files, with
each reply marked as a target (and of which kind) or excluded (and why): who is trusted and
how votes count are described in `finetune.pairs`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from finetune.pairs.errors import PairsError
from retrieval.importers import validate_conversation

STORE_SOURCE = "store"
# customers' 👎 on replies of one pattern, in this many distinct conversations, exclude the pattern
DOWN_VOTE_CONVERSATIONS = 3
# the salt of the held-out hash: independent of the split's seed, so changing --seed never
# moves a conversation between training and the held-out set
HELDOUT_SALT = "csbot-heldout"
FAILED_ACTIONS = frozenset({"fallback", "clarify", "handoff"})


class ConversationSource(Protocol):
    """The reads of the conversation store that pairs are built from (`bot.store.ConversationStore`
    is one)."""

    def iter_messages(self) -> Iterable[Mapping[str, Any]]:
        """Every message of every conversation, grouped by conversation and in turn order."""
        ...

    def feedback_votes(self) -> Mapping[int, tuple[str, str]]:
        """message id -> (rating "up"/"down", author "customer"/"agent")."""
        ...

    def handoffs(self) -> Iterable[Mapping[str, Any]]:
        """Every handoff: {"conversation_id", "message_id" (None: the whole conversation), ...}."""
        ...

    def suggestion_outcomes(self) -> Mapping[str, int]:
        """How many reply suggestions shown to agents ended each way ("shown", "sent", "edited",
        "discarded"): a discarded one never became a message, so only this count reports it."""
        ...


def is_heldout_conversation(conversation_id: str, share: float) -> bool:
    """The stable held-out rule for the store's agent-answered conversations: the conversation's
    place in [0, 1) by a salted sha256 of its id is below `share`. It depends on nothing that
    changes between rounds, so a conversation held out once stays held out (and never trained
    on) as long as the share is not raised."""
    digest = hashlib.sha256(f"{HELDOUT_SALT}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass
class Turn:
    """One turn of a conversation, as a pair's target, an excluded reply, or context."""

    turn: int
    role: str  # customer | agent | bot | system
    text: str
    kind: str | None = None  # target kind when this turn is a target
    excluded: str | None = None  # exclusion reason when it is a reply that is not a target
    # a system turn showing a record the agent looked up (a transcript's system turn); the
    # store's system turns are notices to the customer ("handed back", "resolved"), never lookups
    lookup: bool = False


@dataclass
class Conversation:
    """One conversation's turns; `source` is "store" or the transcript file's name."""

    id: str
    source: str
    turns: list[Turn]
    heldout: bool = False


def reply_pattern(message: Mapping[str, Any]) -> str:
    """What customers' 👎 are counted against: the top retrieved unit the reply was composed
    from (the retrieval composer replays it; the generator wrote from it), else the text."""
    sources = message.get("sources") or []
    if sources and isinstance(sources[0], dict) and sources[0].get("id"):
        return f"source:{sources[0]['id']}"
    return "text:" + " ".join((message.get("text") or "").lower().split())


def agent_target_kind(message: Mapping[str, Any]) -> str:
    """What a human agent's message teaches: "edited" (a suggestion the agent changed: the
    changed text), "suggested" (a suggestion the agent sent as it was), or "agent" (typed)."""
    if message.get("edited_from") is not None:
        return "edited"
    if message.get("suggestion_id") is not None:
        return "suggested"
    return "agent"


def store_conversations(
    store: ConversationSource, *, include_bot_replies: bool, down_vote_conversations: int, heldout_share: float
) -> list[Conversation]:
    """The store's conversations, each agent reply a target and each bot reply a target or
    excluded by the rules of trust and votes in `finetune.pairs`."""
    votes = store.feedback_votes()
    handoff_messages: dict[str, list[int | None]] = {}
    for h in store.handoffs():
        handoff_messages.setdefault(h["conversation_id"], []).append(h["message_id"])
    by_conv: dict[str, list[Mapping[str, Any]]] = {}
    for m in store.iter_messages():
        by_conv.setdefault(m["conversation_id"], []).append(m)
    down_in: dict[str, set[str]] = {}
    for conv_id, messages in by_conv.items():
        for m in messages:
            if m["role"] == "bot" and votes.get(m["id"]) == ("down", "customer"):
                down_in.setdefault(reply_pattern(m), set()).add(conv_id)
    down_patterns = {p for p, convs in down_in.items() if len(convs) >= down_vote_conversations}

    conversations = []
    for conv_id, messages in by_conv.items():
        turn_of = {m["id"]: m["turn"] for m in messages}
        handoff_turns = sorted(
            turn_of.get(mid, messages[-1]["turn"]) if mid is not None else messages[-1]["turn"]
            for mid in handoff_messages.get(conv_id, [])
        )
        answer_turns = [m["turn"] for m in messages if m["role"] == "bot" and m["action"] == "answer"]
        # bot turns between the last answer before a handoff and that handoff failed the customer
        failed_spans = []
        for h in handoff_turns:
            last_answer = max((t for t in answer_turns if t < h), default=-1)
            failed_spans.append((last_answer, h))
        turns = []
        for m in messages:
            text = (m["text"] or "").strip()
            t = Turn(m["turn"], m["role"], text)
            if m["role"] == "agent":
                if votes.get(m["id"], ("up", ""))[0] == "down":
                    t.excluded = "negative_feedback"
                else:
                    t.kind = agent_target_kind(m)
            elif m["role"] == "bot":
                vote = votes.get(m["id"])
                vouched = vote == ("up", "agent")
                if vote == ("down", "agent") or (not vouched and reply_pattern(m) in down_patterns):
                    t.excluded = "negative_feedback"
                elif handoff_turns and (
                    m["action"] in FAILED_ACTIONS or any(a < m["turn"] <= h for a, h in failed_spans)
                ):
                    t.excluded = "failed_before_handoff"
                elif m["composer"] == "policy":
                    t.excluded = "policy"
                elif m["action"] != "answer":
                    t.excluded = "not_an_answer"
                elif not (vouched or include_bot_replies):
                    t.excluded = "untrusted_bot_reply"
                else:
                    t.kind = "bot"
            turns.append(t)
        answered_by_agent = any(m["role"] == "agent" for m in messages)
        heldout = answered_by_agent and heldout_share > 0 and is_heldout_conversation(conv_id, heldout_share)
        conversations.append(Conversation(conv_id, STORE_SOURCE, turns, heldout=heldout))
    return conversations


def answers_after_lookup(turns: Sequence[Turn]) -> list[bool]:
    """Per turn: whether a lookup came after the customer's last turn before it. A reply for
    which this holds answers a message during which the agent read a record (the replies
    `build_pairs` leaves out as `after_lookup`)."""
    flags: list[bool] = []
    looked_up = False
    for t in turns:
        if t.lookup:
            looked_up = True
        elif t.role == "customer":
            looked_up = False
        flags.append(looked_up)
    return flags


def file_conversations(extra: Iterable[dict[str, Any]], *, heldout: bool = False) -> list[Conversation]:
    """Conversations of transcript files (our JSONL format, validated), their agent turns the
    targets; PairsError names the first invalid one."""
    what = "held-out conversation" if heldout else "extra conversation"
    conversations = []
    for n, raw in enumerate(extra, start=1):
        source = str(raw.get("source") or "transcripts") if isinstance(raw, dict) else "transcripts"
        conv, reason = validate_conversation(raw, f"conversation {n}")
        if reason:
            raise PairsError(f"{what} {n} ({source}): {reason}")
        assert conv is not None
        turns = [
            Turn(
                i,
                t["role"],
                t["text"].strip(),
                kind="agent" if t["role"] == "agent" else None,
                lookup=t["role"] == "system",
            )
            for i, t in enumerate(conv["turns"])
        ]
        conversations.append(Conversation(conv["id"], source, turns, heldout=heldout))
    return conversations
