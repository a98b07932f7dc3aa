"""The prompt layout shared by training and generation (GODEL-like: context, knowledge, response).

    <|context|><|customer|> where is my order?<|agent|> What's the order number?
    <|customer|> its {{Order Number}}<|knowledge|> evidence 1<|sep|> evidence 2<|response|>
    → target: " Thanks! Order {{Order Number}} has shipped ...<|endofreply|>"

Every piece of text follows a special token and starts with one space, so a word at the start
of a turn is tokenised like the same word in running text ("Ġwhere", not "where"). Special and
added tokens split the text before BPE runs, so the token count of a prompt is exactly the sum
of its pieces' counts: truncation can budget piece by piece and the total still holds.

Pure Python: importing this module loads neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from retrieval.entities import ENTITY_TYPES, PLACEHOLDER_RE
from retrieval.errors import CsbotError

CONTEXT = "<|context|>"
KNOWLEDGE = "<|knowledge|>"
SEP = "<|sep|>"
RESPONSE = "<|response|>"
END_OF_REPLY = "<|endofreply|>"
END_OF_TEXT = "<|endoftext|>"  # separates documents when pretraining (GPT-2's own eos)
PAD = "<|pad|>"
CUSTOMER = "<|customer|>"
AGENT = "<|agent|>"
SYSTEM = "<|system|>"

# The bot speaks for the support team, so its turns read like an agent's: the model learns one
# voice from both human and bot replies.
ROLE_TOKENS: dict[str, str] = {"customer": CUSTOMER, "agent": AGENT, "bot": AGENT, "system": SYSTEM}

SPECIAL_TOKENS: tuple[str, ...] = (
    END_OF_TEXT,
    PAD,
    CONTEXT,
    CUSTOMER,
    AGENT,
    SYSTEM,
    KNOWLEDGE,
    SEP,
    RESPONSE,
    END_OF_REPLY,
)

# Placeholders are added as whole (non-special) tokens so the model copies `{{Order Number}}` as
# one unit instead of spelling it, and decoding keeps them (skip_special_tokens drops only the
# layout tokens). `{{Name}}` is what the pair builder writes for personal names.
PLACEHOLDERS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [e.placeholder for e in ENTITY_TYPES]
        + ["{{Order Number}}", "{{Email}}", "{{Phone Number}}", "{{Card Number}}", "{{Name}}"]
    )
)


class PromptError(CsbotError):
    """A conversation or budget the prompt layout cannot represent."""


class _Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...
    def decode(self, ids: Sequence[int], **kwargs: Any) -> str: ...


def placeholders_in_corpus(texts: Iterable[str], min_count: int = 2, limit: int = 200) -> list[str]:
    """Our fixed placeholders plus every other `{{...}}` seen at least `min_count` times.

    Imported corpora bring their own (Bitext has `{{Website URL}}`, `{{Refund Amount}}`, ...);
    making each a single token lets the model copy them the same way. `limit` caps how many
    of the vocabulary slots they may take.
    """
    from collections import Counter

    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(m.group(0) for m in PLACEHOLDER_RE.finditer(text))
    extra = [p for p, n in counts.most_common() if n >= min_count and p not in PLACEHOLDERS]
    return list(PLACEHOLDERS) + extra[:limit]


def _turn(turn: Mapping[str, str]) -> tuple[str, str]:
    role, text = turn.get("role"), turn.get("text")
    if role not in ROLE_TOKENS:
        raise PromptError(f"context turn has role {role!r}; use one of {sorted(ROLE_TOKENS)}")
    return ROLE_TOKENS[role], " " + " ".join(str(text or "").split())


def _evidence_text(item: Mapping[str, Any] | str) -> str:
    text = item if isinstance(item, str) else item.get("text", "")
    return " " + " ".join(str(text).split())


def _cut(tokenizer: _Tokenizer, text: str, max_tokens: int, *, keep: str) -> tuple[str, int]:
    """`text` cut to at most `max_tokens` tokens, keeping its "start" or "end"; and its count."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= max_tokens:
        return text, len(ids)
    if max_tokens <= 0:
        return "", 0
    ids = ids[:max_tokens] if keep == "start" else ids[-max_tokens:]
    cut = tokenizer.decode(ids)
    # decode(encode(x)) can re-tokenise one token longer at a byte boundary; shave until it fits
    while cut and len(tokenizer.encode(cut, add_special_tokens=False)) > max_tokens:
        cut = cut[1:] if keep == "end" else cut[:-1]
    return cut, len(tokenizer.encode(cut, add_special_tokens=False))


def format_prompt(
    context: Sequence[Mapping[str, str]],
    evidence: Sequence[Mapping[str, Any] | str] = (),
    *,
    tokenizer: _Tokenizer | None = None,
    max_tokens: int | None = None,
    max_context_tokens: int | None = None,
    max_evidence: int = 3,
    min_evidence_tokens: int = 16,
) -> str:
    """The prompt for `context` (oldest turn first) and `evidence` (best first), ending with
    `<|response|>`: what the model continues with its reply.

    With a `tokenizer` and `max_tokens` the prompt fits in `max_tokens` tokens (the model's
    n_positions minus room for the reply). Why these rules: the latest turn is what the reply
    answers, and the top evidence is what it should say, so both are kept first:

    1. context, newest turn first, whole turns, within `max_context_tokens` (default half the
       budget); the newest turn is always kept, cut from its start if it alone is too long
       (the question usually ends a message);
    2. evidence in rank order (at most `max_evidence`) in what remains; the first item that
       does not fit whole is cut at its end if at least `min_evidence_tokens` remain;
    3. budget the evidence left unused goes to older context turns.
    """
    if not context:
        raise PromptError("a prompt needs at least one context turn (the customer's message); got none")
    turns = [_turn(t) for t in context]
    items = [_evidence_text(e) for e in list(evidence)[:max_evidence]]

    if tokenizer is None or max_tokens is None:
        return _render(turns, items)

    def n(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    # layout tokens: <|context|>, one role token per turn, <|knowledge|>, seps, <|response|>
    fixed = 3  # <|context|> <|knowledge|> <|response|>
    if max_tokens < fixed + 2:
        raise PromptError(f"prompt budget of {max_tokens} tokens is too small; give it at least {fixed + 2}")
    budget = max_tokens - fixed
    ctx_cap = budget // 2 if max_context_tokens is None else min(max_context_tokens, budget)

    # 1. newest turns first, whole
    kept: list[tuple[str, str]] = []
    used = 0
    for role, text in reversed(turns):
        cost = 1 + n(text)
        if not kept and cost > ctx_cap:
            text, k = _cut(tokenizer, text, max(ctx_cap - 1, 1), keep="end")
            cost = 1 + k
        elif cost > ctx_cap - used:
            break
        kept.append((role, text))
        used += cost
    # 2. evidence in rank order
    left = budget - used
    kept_items: list[str] = []
    for item in items:
        cost = n(item) + (1 if kept_items else 0)  # <|sep|> between items
        if cost <= left:
            kept_items.append(item)
            left -= cost
            continue
        room = left - (1 if kept_items else 0)
        if room >= min_evidence_tokens:
            cut, k = _cut(tokenizer, item, room, keep="start")
            kept_items.append(cut)
            left -= k + (1 if len(kept_items) > 1 else 0)
        break
    # 3. older turns get what the evidence left
    for role, text in reversed(turns[: len(turns) - len(kept)]):
        cost = 1 + n(text)
        if cost > left:
            break
        kept.append((role, text))
        left -= cost
    return _render(list(reversed(kept)), kept_items)


def _render(turns: Sequence[tuple[str, str]], items: Sequence[str]) -> str:
    ctx = "".join(role + text for role, text in turns)
    return CONTEXT + ctx + KNOWLEDGE + SEP.join(items) + RESPONSE


def format_target(target: str, *, end: bool = True) -> str:
    """The reply as the model writes it: one leading space, then `<|endofreply|>` (unless the
    reply was cut, so the model never learns to end mid-sentence)."""
    return " " + " ".join(target.split()) + (END_OF_REPLY if end else "")


def format_transcript(turns: Iterable[Mapping[str, str]]) -> str:
    """A whole conversation in the prompt's role layout, for causal-LM pretraining, so the
    pretrained model already knows the turn structure that fine-tuning uses."""
    return CONTEXT + "".join(r + t for r, t in (_turn(t) for t in turns))
