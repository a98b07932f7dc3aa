"""`build_pairs`: the conversations' targets become (context, evidence, target) pairs,
filtered, scrubbed, given evidence from the index and split by conversation (the rules are in
`finetune.pairs`); nothing is written here."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from finetune.pairs.conversations import (
    DOWN_VOTE_CONVERSATIONS,
    STORE_SOURCE,
    ConversationSource,
    answers_after_lookup,
    file_conversations,
    store_conversations,
)
from finetune.pairs.errors import PairsError, TooFewHeldOutPairsError, TooFewPairsError
from finetune.pairs.layout import pair_counts
from finetune.scrub import find_names, scrub
from retrieval.index import VectorIndex
from retrieval.progress import Progress, no_progress

if TYPE_CHECKING:
    import numpy as np

EXCLUSION_REASONS = (
    "negative_feedback",
    "failed_before_handoff",
    "policy",
    "not_an_answer",
    "untrusted_bot_reply",
    "after_lookup",
    "heldout_bot_reply",
    "no_customer_turn",
    "empty",
    "duplicate",
    "discarded_suggestion",
)
HELDOUT_KINDS = frozenset({"agent", "suggested", "edited"})
SUGGESTION_OUTCOMES = ("shown", "sent", "edited", "discarded")
FILTERS = {
    "targets": [
        "human agent replies typed by the agent (target_kind agent)",
        "reply suggestions an agent sent as they were (target_kind suggested)",
        "agent edits of reply suggestions: the edited text (target_kind edited)",
        "bot replies with action 'answer' and composer not 'policy' that a human agent rated 'up', or any such "
        "reply with include_bot_replies (target_kind bot)",
    ],
    "excluded": {
        "negative_feedback": "bot replies a human agent rated 'down', bot replies whose top retrieved source "
        "(or text) customers rated 'down' in at least down_vote_conversations conversations, and human agent "
        "replies anyone rated 'down'",
        "failed_before_handoff": "in handed-off conversations: bot fallback/clarify/handoff turns and "
        "bot turns after the last answer before a handoff",
        "policy": "fixed replies (composer 'policy')",
        "not_an_answer": "other bot turns whose action is not 'answer'",
        "untrusted_bot_reply": "bot answers no human agent rated 'up' (without include_bot_replies)",
        "after_lookup": "replies right after a system turn (an order lookup) with no customer turn between: "
        "they may state that customer's record, which the pair's context does not show (unless "
        "keep_after_lookup)",
        "heldout_bot_reply": "trusted bot answers in held-out conversations",
        "no_customer_turn": "replies with no customer turn before them",
        "empty": "replies with no text",
        "duplicate": "same scrubbed context and target as an earlier pair (held-out pairs first)",
        "discarded_suggestion": "reply suggestions an agent discarded (never sent, so never a message; "
        "counted from the store)",
    },
    "heldout": "the heldout_conversations files, and store conversations with a human agent reply whose "
    "sha256('csbot-heldout:<conversation id>') falls below heldout_share; human agent replies only "
    "(agent, suggested, edited)",
    "evidence": "top-k index units for the scrubbed last customer turn, excluding units of the pair's own conversation "
    "before near-duplicate replies are folded, then units answered after an order lookup (as the live composers do)",
    "split": "by conversation: sha256('<seed>:<conversation id>') < valid_fraction -> valid",
}


class QueryEncoder(Protocol):
    """What pairs need of the embedder the index was built with (`retrieval.embedder.SentenceEmbedder`
    is one): the evidence query's vectors, and its id for the manifest."""

    @property
    def model_id(self) -> str: ...

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray: ...


@dataclass
class PairsResult:
    """Pairs ready to write: `train`, `valid` and `heldout` hold the JSONL objects, one per
    pair: `{"id": "<conversation_id>#<turn>", "conversation_id", "turn", "context": [{"role":
    "customer"|"agent", "text"}], "evidence": [{"id", "text", "score"}], "target",
    "target_kind": "agent"|"suggested"|"edited"|"bot", "source": "store"|"<file name>"}`.
    `suggestions`: how the store's reply suggestions ended (`SUGGESTION_OUTCOMES`; zeros
    without a store)."""

    train: list[dict[str, Any]]
    valid: list[dict[str, Any]]
    excluded: dict[str, int]
    pii_scrubbed: dict[str, dict[str, int]]
    parameters: dict[str, Any]
    sources: list[dict[str, Any]]
    embedder_id: str | None
    index_units: int
    conversations: dict[str, int] = field(default_factory=dict)
    heldout: list[dict[str, Any]] = field(default_factory=list)
    suggestions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUGGESTION_OUTCOMES, 0))

    @property
    def pairs(self) -> list[dict[str, Any]]:
        """The pairs a model trains on (train + valid); never the held-out ones."""
        return self.train + self.valid

    def counts(self) -> dict[str, Any]:
        return pair_counts(self.train, self.valid, self.heldout)


def _split_of(conversation_id: str, seed: int, valid_fraction: float) -> tuple[str, float]:
    digest = hashlib.sha256(f"{seed}:{conversation_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return ("valid" if position < valid_fraction else "train"), position


def _add(total: Counter[str], counts: Counter[str]) -> None:
    for k, v in counts.items():
        total[k] += v


def _attach_evidence(
    candidates: Sequence[tuple[dict[str, Any], str, bool]],
    index: VectorIndex,
    embedder: QueryEncoder | None,
    *,
    evidence_k: int,
    protect: Iterable[str],
    progress: Progress,
    show_bars: bool,
) -> Counter[str]:
    """Fill each candidate pair's `evidence` with the top `evidence_k` units for its query
    (never from the pair's own conversation), scrubbed, less those answered after an order
    lookup (`extra["after_lookup"]`), which the live composers leave out too; returns the
    counts of what scrubbing masked in them."""
    pii_evidence: Counter[str] = Counter()
    if not evidence_k or not len(index):
        return pii_evidence
    if embedder is None:
        raise PairsError("evidence_k > 0 needs the embedder the index was built with; pass it, or evidence_k=0")
    progress(f"retrieving evidence for {len(candidates)} pairs")
    vectors = embedder.encode([q for _, q, _ in candidates], progress=show_bars)
    # never the pair's own conversation: no peeking at the answer. Its units are left out
    # before near-duplicates fold, so another conversation's copy of the same reply keeps
    # its own rank, as for a new conversation the index has never seen
    hits_per_pair = index.search_batch(
        vectors, k=evidence_k, exclude_sources=[p["conversation_id"] for p, _, _ in candidates]
    )
    evidence_cache: dict[str, str] = {}
    for (pair, _, _), hits in zip(candidates, hits_per_pair, strict=True):
        evidence: list[dict[str, Any]] = pair["evidence"]
        for hit in hits:
            unit = hit.unit
            if unit.extra.get("after_lookup"):
                # live composers never show or replay a reply written from one customer's
                # order record (bot.composers): a pair's evidence is what they would use
                continue
            if unit.id not in evidence_cache:
                text, counts = scrub(unit.evidence_text, protect=protect)
                evidence_cache[unit.id] = text
                _add(pii_evidence, counts)
            evidence.append({"id": unit.id, "text": evidence_cache[unit.id], "score": round(float(hit.score), 4)})
    return pii_evidence


def build_pairs(
    store: ConversationSource | None,
    index: VectorIndex,
    embedder: QueryEncoder | None,
    *,
    context_turns: int = 4,
    evidence_k: int = 3,
    valid_fraction: float = 0.1,
    seed: int = 0,
    extra_conversations: Iterable[dict[str, Any]] = (),
    min_pairs: int = 20,
    include_bot_replies: bool = False,
    down_vote_conversations: int = DOWN_VOTE_CONVERSATIONS,
    heldout_conversations: Iterable[dict[str, Any]] = (),
    heldout_share: float = 0.0,
    min_heldout: int = 0,
    keep_after_lookup: bool = False,
    protect: Iterable[str] = (),
    sources: Sequence[dict[str, Any]] = (),
    progress: Progress = no_progress,
    show_bars: bool = False,
) -> PairsResult:
    """Build the pairs (see the module docstring); nothing is written here.

    `store`: a open `ConversationStore` (or None); `index`: a `VectorIndex`; `embedder`: the
    loaded embedder the index was built with (`encode`, `model_id`). `extra_conversations`:
    conversations in our JSONL format, each optionally with a `"source"` key (the file name
    written into the pairs); `heldout_conversations` likewise, for the held-out set only.
    `include_bot_replies`: trust bot answers no agent vouched for. `down_vote_conversations`:
    how many distinct conversations' customer 👎 exclude a reply pattern. `heldout_share`: the
    share of agent-answered store conversations held out. `keep_after_lookup`: keep the replies
    that answer a message during which an order was looked up (a system turn): their facts come
    from a record the context leaves out, so by default they are neither trained on nor scored
    (the model would learn to state an order's status it cannot see; the live bot answers
    those turns with business actions). `protect`: the company's own words,
    never masked as names. `sources`: descriptions of the input files, copied into the manifest.
    Raises `TooFewPairsError` when fewer than `min_pairs` pairs remain for training, and
    `TooFewHeldOutPairsError` when fewer than `min_heldout` are held out, before any encoding.
    """
    if context_turns < 1:
        raise PairsError(f"context_turns must be at least 1, got {context_turns}")
    if evidence_k < 0:
        raise PairsError(f"evidence_k must be 0 or more, got {evidence_k}")
    if not 0 <= valid_fraction < 1:
        raise PairsError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if min_pairs < 1:
        raise PairsError(f"min_pairs must be at least 1, got {min_pairs}")
    if down_vote_conversations < 1:
        raise PairsError(f"down_vote_conversations must be at least 1, got {down_vote_conversations}")
    if not 0 <= heldout_share < 1:
        raise PairsError(f"heldout_share must be in [0, 1), got {heldout_share}")
    protect = tuple(protect)

    progress("reading conversations")
    conversations = (
        store_conversations(
            store,
            include_bot_replies=include_bot_replies,
            down_vote_conversations=down_vote_conversations,
            heldout_share=heldout_share,
        )
        if store is not None
        else []
    )
    n_store = len(conversations)
    suggestions = dict.fromkeys(SUGGESTION_OUTCOMES, 0)
    if store is not None:
        for outcome, n in store.suggestion_outcomes().items():
            suggestions[outcome] = suggestions.get(outcome, 0) + int(n)
    conversations += file_conversations(extra_conversations)
    conversations += file_conversations(heldout_conversations, heldout=True)
    seen_ids: dict[str, str] = {}
    for conv in conversations:
        if conv.id in seen_ids:
            raise PairsError(
                f"conversation id {conv.id!r} is in both {seen_ids[conv.id]} and {conv.source}; "
                "pass each transcript file once, and never a held-out conversation for training "
                "(pair ids, the split and the held-out set are per conversation id)"
            )
        seen_ids[conv.id] = conv.source
    # held-out conversations first: a training pair that duplicates one of theirs is dropped
    conversations = [c for c in conversations if c.heldout] + [c for c in conversations if not c.heldout]

    excluded: Counter[str] = Counter(dict.fromkeys(EXCLUSION_REASONS, 0))
    excluded["discarded_suggestion"] = suggestions["discarded"]
    pii_context: Counter[str] = Counter()
    pii_target: Counter[str] = Counter()
    candidates: list[tuple[dict[str, Any], str, bool]] = []  # (pair without evidence, query text, held out)
    seen_keys: set[str] = set()
    for conv in conversations:
        names: list[str] = []
        for t in conv.turns:
            names += [n for n in find_names(t.text, protect) if n not in names]
        scrubbed = [scrub(t.text, protect=protect, known_names=names) for t in conv.turns]
        context_counted: set[int] = set()
        after_lookup = answers_after_lookup(conv.turns)
        for i, t in enumerate(conv.turns):
            if t.kind is None and t.excluded is None:
                continue  # customer and system turns
            reason = t.excluded
            if reason is None and after_lookup[i] and not keep_after_lookup:
                reason = "after_lookup"
            if reason is not None:
                excluded[reason] += 1
                continue
            if conv.heldout and t.kind not in HELDOUT_KINDS:
                excluded["heldout_bot_reply"] += 1
                continue
            target, target_pii = scrubbed[i]
            target = target.strip()
            if not target:
                excluded["empty"] += 1
                continue
            before = [j for j in range(i) if conv.turns[j].role != "system" and conv.turns[j].text]
            customer = [j for j in before if conv.turns[j].role == "customer"]
            if not customer:
                excluded["no_customer_turn"] += 1
                continue
            window = before[-context_turns:]
            context = [
                {"role": "customer" if conv.turns[j].role == "customer" else "agent", "text": scrubbed[j][0]}
                for j in window
            ]
            key = hashlib.sha256(json.dumps([context, target], ensure_ascii=False).encode()).hexdigest()
            if key in seen_keys:
                excluded["duplicate"] += 1
                continue
            seen_keys.add(key)
            _add(pii_target, target_pii)
            for j in window:
                if j not in context_counted:
                    context_counted.add(j)
                    _add(pii_context, scrubbed[j][1])
            pair: dict[str, Any] = {
                "id": f"{conv.id}#{t.turn}",
                "conversation_id": conv.id,
                "turn": t.turn,
                "context": context,
                "evidence": [],
                "target": target,
                "target_kind": t.kind,
                "source": conv.source,
            }
            candidates.append((pair, scrubbed[customer[-1]][0], conv.heldout))

    trainable = [p for p, _, held in candidates if not held]
    n_heldout = len(candidates) - len(trainable)
    if len(trainable) < min_pairs:
        reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in excluded.items() if n)
        n_files = len(conversations) - n_store
        detail = (
            f" (from {len(conversations)} conversations: {n_store} in the store, "
            f"{n_files} from files; {n_heldout} pairs held out; excluded: {reasons or 'none'})"
        )
        raise TooFewPairsError(min_pairs, len(trainable), detail)
    if n_heldout < min_heldout:
        raise TooFewHeldOutPairsError(min_heldout, n_heldout)

    pii_evidence = _attach_evidence(
        candidates, index, embedder, evidence_k=evidence_k, protect=protect, progress=progress, show_bars=show_bars
    )

    splits = {}
    for conv_id in dict.fromkeys(p["conversation_id"] for p in trainable):
        splits[conv_id] = _split_of(conv_id, seed, valid_fraction)
    if valid_fraction > 0 and len(splits) >= 2 and all(s == "train" for s, _ in splits.values()):
        # a validation loss needs something to validate on: take the closest conversation
        nearest = min(splits, key=lambda c: splits[c][1])
        splits[nearest] = ("valid", splits[nearest][1])
    train = [p for p in trainable if splits[p["conversation_id"]][0] == "train"]
    valid = [p for p in trainable if splits[p["conversation_id"]][0] == "valid"]
    heldout = [p for p, _, held in candidates if held]

    types = ("email", "phone", "card_number", "order_id", "name")
    pii = {
        "context": {k: pii_context.get(k, 0) for k in types},
        "target": {k: pii_target.get(k, 0) for k in types},
        "evidence": {k: pii_evidence.get(k, 0) for k in types},
    }
    pii["total"] = {k: sum(pii[part][k] for part in ("context", "target", "evidence")) for k in types}
    return PairsResult(
        train=train,
        valid=valid,
        heldout=heldout,
        excluded=dict(excluded),
        pii_scrubbed=pii,
        parameters={
            "context_turns": context_turns,
            "evidence_k": evidence_k,
            "valid_fraction": valid_fraction,
            "seed": seed,
            "min_pairs": min_pairs,
            "protected_words": len(protect),
            "include_bot_replies": include_bot_replies,
            "down_vote_conversations": down_vote_conversations,
            "heldout_share": heldout_share,
            "keep_after_lookup": keep_after_lookup,
        },
        sources=[{"name": STORE_SOURCE, "conversations": n_store}, *sources],
        embedder_id=embedder.model_id if embedder is not None else None,
        index_units=len(index),
        conversations=pair_counts(train, valid, heldout)["conversations"],
        suggestions=suggestions,
    )
