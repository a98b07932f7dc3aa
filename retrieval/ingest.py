"""Turn conversations, KB articles and question/answer pairs into retrievable `Unit`s.

Masking decision: personal values are masked with the one PII scrubber
(`retrieval.pii.PiiScrubber`: emails, phone, card, order, tracking, account numbers,
IBANs, street addresses, zip codes, usernames and people's names) in the agent reply, in
the context lines *and* in the customer text that gets embedded. Replies and context must
be masked so one customer's data is never replayed to another; the embedded text is masked
too so that vectors do not depend on particular values (two "where is order #123456" turns
with different numbers embed identically) and no raw PII is written into the index. A
conversation is scrubbed as a whole, so a name or username given in one turn is masked in
every other turn too. Callers should mask queries the same way before encoding.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from os import PathLike
from typing import Any

from retrieval.pii import PiiScrubber
from retrieval.types import Unit

ROLES = ("customer", "agent", "system")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def _clean(text: Any) -> str:
    return " ".join(str(text or "").split())


def units_from_conversations(
    conversations: Iterable[dict[str, Any]], *, context_turns: int = 3, scrubber: PiiScrubber | None = None
) -> list[Unit]:
    """One `transcript` unit per customer message that an agent answered.

    Conversations are dicts `{"id", "intent", "outcome", "turns": [{"role", "text"}]}`.
    Consecutive customer turns form one message (system turns between them do not break
    it); the agent turns that follow (until the next customer turn) are its reply. The
    unit's `turn` is the index of the message's first customer turn, `id` is
    `"{conv_id}#t{turn}"`, and `context` holds up to `context_turns` earlier turns as
    "role: text" lines, oldest first. Units answered after a system turn carry
    `extra["after_lookup"] = True`. Customer messages with no agent reply after them
    (e.g. a closing "thanks, bye") produce no unit. Text, reply and context are masked
    (see the module docstring) by `scrubber` (default: one that protects nothing).
    """
    if context_turns < 0:
        raise ValueError(f"context_turns must be >= 0, got {context_turns}")
    scrubber = scrubber or PiiScrubber()
    units: list[Unit] = []
    for conv in conversations:
        conv_id = str(conv["id"])
        turns = [(t["role"], _clean(t.get("text"))) for t in conv.get("turns") or ()]
        masked = [text for text, _ in scrubber.scrub_conversation([text for _, text in turns])]
        lines = [f"{role}: {text}" for (role, _), text in zip(turns, masked, strict=True)]
        pending: list[int] = []  # indices of the customer turns of the current message
        reply: list[str] = []  # the (masked) agent turns answering it
        # once a system turn (an order lookup, a verification) has been seen, agent replies
        # may state facts about that one customer's order: flag them so that a composer
        # never replays them to someone else as if they were policy
        after_lookup = False

        # each answered message: its customer turns, its reply, and whether a lookup came before
        answered: list[tuple[list[int], list[str], bool]] = []
        for i, (role, text) in enumerate(turns):
            if not text:
                continue
            if role == "customer":
                if reply:  # the previous message was answered: close it
                    answered.append((pending, reply, after_lookup))
                    pending, reply = [], []
                pending.append(i)
            elif role == "agent" and pending:
                reply.append(masked[i])
            elif role == "system":
                after_lookup = True
            # system turns, and agent turns before any customer message, only feed context
        if pending and reply:
            answered.append((pending, reply, after_lookup))
        for customer_turns, reply_turns, lookup in answered:
            first = customer_turns[0]
            context = tuple(lines[max(0, first - context_turns) : first]) if context_turns else ()
            units.append(
                Unit(
                    id=f"{conv_id}#t{first}",
                    kind="transcript",
                    text=" ".join(masked[i] for i in customer_turns),
                    reply=" ".join(reply_turns),
                    source_id=conv_id,
                    turn=first,
                    intent=conv.get("intent"),
                    outcome=conv.get("outcome"),
                    context=context,
                    extra={"after_lookup": True} if lookup else {},
                )
            )
    return units


def _split_long(paragraph: str, chunk_words: int) -> list[str]:
    """Split a paragraph longer than `chunk_words` on sentences, then on words."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        words = sentence.split()
        for start in range(0, len(words), chunk_words):
            pieces.append(" ".join(words[start : start + chunk_words]))
    return [p for p in pieces if p]


def chunk_text(text: str, chunk_words: int) -> list[str]:
    """Split `text` into chunks of about `chunk_words` words on paragraph boundaries.

    Whole paragraphs are packed greedily; a paragraph that alone exceeds the budget is
    split on sentence ends (and, for a run-on sentence, every `chunk_words` words).
    """
    if chunk_words < 1:
        raise ValueError(f"chunk_words must be >= 1, got {chunk_words}")
    # single line breaks inside a paragraph (list items) are kept: they are how a reply reads
    paragraphs = [
        "\n".join(_clean(line) for line in p.splitlines() if line.strip()) for p in _PARAGRAPH_BREAK.split(text)
    ]
    pieces: list[str] = []
    for p in paragraphs:
        if not p:
            continue
        pieces.extend(_split_long(p, chunk_words) if len(p.split()) > chunk_words else [p])
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        n = len(piece.split())
        if current and size + n > chunk_words:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(piece)
        size += n
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def units_from_articles(articles: Iterable[dict[str, Any]], *, chunk_words: int) -> list[Unit]:
    """`kb` units from knowledge-base articles `{"id", "title", "text", "intents"}`.

    Each article is chunked (`chunk_text`); unit `id` is `"{article_id}#c{n}"` (n from 0),
    `text` is the title followed by the chunk (the title helps retrieval of short chunks),
    `intent` the first of `intents` (or None). KB text is company-written: not masked.
    """
    units: list[Unit] = []
    for art in articles:
        art_id = str(art["id"])
        title = _clean(art.get("title"))
        intents = art.get("intents") or []
        for n, chunk in enumerate(chunk_text(str(art.get("text") or ""), chunk_words)):
            units.append(
                Unit(
                    id=f"{art_id}#c{n}",
                    kind="kb",
                    text=f"{title}\n\n{chunk}" if title else chunk,
                    source_id=art_id,
                    intent=intents[0] if intents else None,
                    title=title or None,
                    extra={"chunk": n},
                )
            )
    return units


def units_from_qa(
    rows: Iterable[tuple[str, str, str | None]], *, source: str, scrubber: PiiScrubber | None = None
) -> list[Unit]:
    """`qa` units from (question, answer, intent) rows; `id` is `"{source}#r{n}"`, n from 0.

    Question and answer are masked like transcripts, as a two-turn conversation (Bitext
    answers, for instance, quote the customer's order number).
    """
    scrubber = scrubber or PiiScrubber()
    units: list[Unit] = []
    for n, (question, answer, intent) in enumerate(rows):
        (text, _), (reply, _) = scrubber.scrub_conversation([_clean(question), str(answer).strip()])
        units.append(
            Unit(
                id=f"{source}#r{n}",
                kind="qa",
                text=text,
                reply=reply,
                source_id=source,
                intent=intent or None,
            )
        )
    return units


def sha256_file(path: str | PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks), for source and index hashes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
