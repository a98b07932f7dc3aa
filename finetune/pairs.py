"""Supervised pairs for the GPT-2 composer: (context, evidence) -> the reply to learn.

Sources: every conversation in the store, plus transcript files (our JSONL or ABCD,
read by `retrieval.importers.load_import` and passed in as `extra_conversations`).

Targets:
- a human agent's reply (`target_kind: "agent"`); when the agent edited a bot suggestion
  before sending it (`messages.edited_from`), the edited text (`"edited"`);
- a bot reply composed from evidence (action "answer", composer not "policy") with positive
  or no feedback (`"bot"`).

Excluded, each counted in the manifest under `excluded`:
- `negative_feedback`: bot replies with a "down" rating (any, even if also rated up);
- `failed_before_handoff`: in a conversation that was handed to a human, bot turns with
  action fallback/clarify/handoff, and every bot turn after the last answer before a handoff;
- `policy`: fixed replies (composer "policy": small talk, slot questions, notices);
- `not_an_answer`: other bot turns that are not answers (a composer's clarify or fallback);
- `no_customer_turn`: replies with no customer turn before them (an agent's opening line);
- `empty`: replies with no text;
- `duplicate`: the same scrubbed context and target as an earlier pair.

Context: the last `context_turns` customer/agent turns before the target (bot turns appear
as "agent", system turns are left out). Evidence: the top `evidence_k` units of the
workspace index for the last customer turn (scrubbed, so masked like the dialogue manager
masks a query), never from the pair's own conversation. Everything written (context,
evidence, target) is scrubbed by `finetune.scrub.scrub`. The split is by conversation:
a conversation's pairs all go to train or all to valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import CsbotError
from finetune.scrub import find_names, scrub
from retrieval.files import fsync_dir, write_durable

PAIRS_FORMAT = 1
TRAIN_FILE, VALID_FILE, MANIFEST_FILE = "train.jsonl", "valid.jsonl", "manifest.json"
STORE_SOURCE = "store"
EXCLUSION_REASONS = (
    "negative_feedback", "failed_before_handoff", "policy", "not_an_answer",
    "no_customer_turn", "empty", "duplicate",
)
TARGET_KINDS = ("agent", "bot", "edited")
FAILED_ACTIONS = frozenset({"fallback", "clarify", "handoff"})
FILTERS = {
    "targets": [
        "human agent replies (target_kind agent)",
        "agent edits of bot suggestions: the edited text (target_kind edited)",
        "bot replies with action 'answer', composer not 'policy', and no 'down' rating (target_kind bot)",
    ],
    "excluded": {
        "negative_feedback": "bot replies with a 'down' rating",
        "failed_before_handoff": "in handed-off conversations: bot fallback/clarify/handoff turns and "
                                 "bot turns after the last answer before a handoff",
        "policy": "fixed replies (composer 'policy')",
        "not_an_answer": "other bot turns whose action is not 'answer'",
        "no_customer_turn": "replies with no customer turn before them",
        "empty": "replies with no text",
        "duplicate": "same scrubbed context and target as an earlier pair",
    },
    "evidence": "top-k index units for the scrubbed last customer turn, excluding units of the pair's own conversation",
    "split": "by conversation: sha256('<seed>:<conversation id>') < valid_fraction -> valid",
}

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class PairsError(CsbotError):
    """Pairs cannot be built from this input (bad parameters or conversations)."""


class TooFewPairsError(PairsError):
    def __init__(self, need: int, have: int, detail: str = ""):
        self.need, self.have = need, have
        super().__init__(
            f"need at least {need} pairs, have {have}{detail}; log more conversations, pass "
            "--transcripts FILE, or lower --min-pairs. Nothing was written."
        )


class OutputDirError(PairsError):
    pass


@dataclass
class PairsResult:
    """Pairs ready to write: `train` and `valid` hold the JSONL objects, one per pair:
    `{"id": "<conversation_id>#<turn>", "conversation_id", "turn", "context": [{"role":
    "customer"|"agent", "text"}], "evidence": [{"id", "text", "score"}], "target",
    "target_kind": "agent"|"bot"|"edited", "source": "store"|"<file name>"}`."""

    train: list[dict[str, Any]]
    valid: list[dict[str, Any]]
    excluded: dict[str, int]
    pii_scrubbed: dict[str, dict[str, int]]
    parameters: dict[str, Any]
    sources: list[dict[str, Any]]
    embedder_id: str | None
    index_units: int
    conversations: dict[str, int] = field(default_factory=dict)

    @property
    def pairs(self) -> list[dict[str, Any]]:
        return self.train + self.valid

    def counts(self) -> dict[str, Any]:
        kinds = Counter(p["target_kind"] for p in self.pairs)
        by_source = Counter(p["source"] for p in self.pairs)
        return {
            "pairs": len(self.pairs),
            "train": len(self.train),
            "valid": len(self.valid),
            "target_kind": {k: kinds.get(k, 0) for k in TARGET_KINDS},
            "source": dict(sorted(by_source.items())),
            "conversations": dict(self.conversations),
        }


# -- reading conversations -------------------------------------------------------------

@dataclass
class _Turn:
    turn: int
    role: str  # customer | agent | bot | system
    text: str
    kind: str | None = None  # target kind when this turn is a target
    excluded: str | None = None  # exclusion reason when it is a reply that is not a target


@dataclass
class _Conversation:
    id: str
    source: str
    turns: list[_Turn]


def _store_conversations(store: Any) -> list[_Conversation]:
    ratings = store.feedback_ratings()
    handoff_messages: dict[str, list[int | None]] = {}
    for h in store.handoffs():
        handoff_messages.setdefault(h["conversation_id"], []).append(h["message_id"])
    by_conv: dict[str, list[dict[str, Any]]] = {}
    for m in store.iter_messages():
        by_conv.setdefault(m["conversation_id"], []).append(m)
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
            t = _Turn(m["turn"], m["role"], text)
            if m["role"] == "agent":
                t.kind = "edited" if m.get("edited_from") is not None else "agent"
            elif m["role"] == "bot":
                if "down" in ratings.get(m["id"], ()):
                    t.excluded = "negative_feedback"
                elif handoff_turns and (
                    m["action"] in FAILED_ACTIONS or any(a < m["turn"] <= h for a, h in failed_spans)
                ):
                    t.excluded = "failed_before_handoff"
                elif m["composer"] == "policy":
                    t.excluded = "policy"
                elif m["action"] != "answer":
                    t.excluded = "not_an_answer"
                else:
                    t.kind = "bot"
            turns.append(t)
        conversations.append(_Conversation(conv_id, STORE_SOURCE, turns))
    return conversations


def _file_conversations(extra: Iterable[dict[str, Any]]) -> list[_Conversation]:
    from retrieval.importers import validate_conversation

    conversations = []
    for n, raw in enumerate(extra, start=1):
        source = str(raw.get("source") or "transcripts") if isinstance(raw, dict) else "transcripts"
        conv, reason = validate_conversation(raw, f"conversation {n}")
        if reason:
            raise PairsError(f"extra conversation {n} ({source}): {reason}")
        assert conv is not None
        turns = [
            _Turn(i, t["role"], t["text"].strip(), kind="agent" if t["role"] == "agent" else None)
            for i, t in enumerate(conv["turns"])
        ]
        conversations.append(_Conversation(conv["id"], source, turns))
    return conversations


# -- building ------------------------------------------------------------------------

def _split_of(conversation_id: str, seed: int, valid_fraction: float) -> tuple[str, float]:
    digest = hashlib.sha256(f"{seed}:{conversation_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return ("valid" if position < valid_fraction else "train"), position


def _add(total: Counter, counts: Counter) -> None:
    for k, v in counts.items():
        total[k] += v


def build_pairs(
    store: Any,
    index: Any,
    embedder: Any,
    *,
    context_turns: int = 4,
    evidence_k: int = 3,
    valid_fraction: float = 0.1,
    seed: int = 0,
    extra_conversations: Iterable[dict[str, Any]] = (),
    min_pairs: int = 20,
    protect: Iterable[str] = (),
    sources: Sequence[dict[str, Any]] = (),
    progress: Progress = _quiet,
    show_bars: bool = False,
) -> PairsResult:
    """Build the pairs (see the module docstring); nothing is written here.

    `store`: a open `ConversationStore` (or None); `index`: a `VectorIndex`; `embedder`: the
    loaded embedder the index was built with (`encode`, `model_id`). `extra_conversations`:
    conversations in our JSONL format, each optionally with a `"source"` key (the file name
    written into the pairs). `protect`: the company's own words, never masked as names.
    `sources`: descriptions of the input files, copied into the manifest.
    Raises `TooFewPairsError` when fewer than `min_pairs` pairs remain, before any encoding.
    """
    if context_turns < 1:
        raise PairsError(f"context_turns must be at least 1, got {context_turns}")
    if evidence_k < 0:
        raise PairsError(f"evidence_k must be 0 or more, got {evidence_k}")
    if not 0 <= valid_fraction < 1:
        raise PairsError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if min_pairs < 1:
        raise PairsError(f"min_pairs must be at least 1, got {min_pairs}")
    protect = tuple(protect)

    progress("reading conversations")
    conversations = _store_conversations(store) if store is not None else []
    n_store = len(conversations)
    conversations += _file_conversations(extra_conversations)
    seen_ids: dict[str, str] = {}
    for conv in conversations:
        if conv.id in seen_ids:
            raise PairsError(
                f"conversation id {conv.id!r} is in both {seen_ids[conv.id]} and {conv.source}; "
                "pass each transcript file once (pair ids and the split are per conversation id)"
            )
        seen_ids[conv.id] = conv.source

    excluded: Counter[str] = Counter({r: 0 for r in EXCLUSION_REASONS})
    pii_context: Counter[str] = Counter()
    pii_target: Counter[str] = Counter()
    candidates: list[tuple[dict[str, Any], str]] = []  # (pair without evidence, query text)
    seen_keys: set[str] = set()
    for conv in conversations:
        names: list[str] = []
        for t in conv.turns:
            names += [n for n in find_names(t.text, protect) if n not in names]
        scrubbed = [scrub(t.text, protect=protect, known_names=names) for t in conv.turns]
        context_counted: set[int] = set()
        for i, t in enumerate(conv.turns):
            if t.kind is None and t.excluded is None:
                continue  # customer and system turns
            if t.excluded is not None:
                excluded[t.excluded] += 1
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
            pair = {
                "id": f"{conv.id}#{t.turn}",
                "conversation_id": conv.id,
                "turn": t.turn,
                "context": context,
                "evidence": [],
                "target": target,
                "target_kind": t.kind,
                "source": conv.source,
            }
            candidates.append((pair, scrubbed[customer[-1]][0]))

    n_conversations = len({p["conversation_id"] for p, _ in candidates})
    if len(candidates) < min_pairs:
        reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in excluded.items() if n)
        detail = (f" (from {len(conversations)} conversations: {n_store} in the store, "
                  f"{len(conversations) - n_store} from files; excluded: {reasons or 'none'})")
        raise TooFewPairsError(min_pairs, len(candidates), detail)

    pii_evidence: Counter[str] = Counter()
    if evidence_k and len(index):
        progress(f"retrieving evidence for {len(candidates)} pairs")
        own_units = Counter(u.source_id for u in index.units)
        fetch = min(len(index), evidence_k + max((own_units[p["conversation_id"]] for p, _ in candidates), default=0))
        vectors = embedder.encode([q for _, q in candidates], progress=show_bars)
        hits_per_pair = index.search_batch(vectors, k=fetch)
        evidence_cache: dict[str, str] = {}
        for (pair, _), hits in zip(candidates, hits_per_pair):
            for hit in hits:
                if hit.unit.source_id == pair["conversation_id"]:
                    continue  # never the pair's own conversation: no peeking at the answer
                if hit.unit.id not in evidence_cache:
                    text, counts = scrub(hit.unit.evidence_text, protect=protect)
                    evidence_cache[hit.unit.id] = text
                    _add(pii_evidence, counts)
                pair["evidence"].append(
                    {"id": hit.unit.id, "text": evidence_cache[hit.unit.id], "score": round(float(hit.score), 4)}
                )
                if len(pair["evidence"]) == evidence_k:
                    break

    splits = {}
    for conv_id in dict.fromkeys(p["conversation_id"] for p, _ in candidates):
        splits[conv_id] = _split_of(conv_id, seed, valid_fraction)
    if valid_fraction > 0 and len(splits) >= 2 and all(s == "train" for s, _ in splits.values()):
        # a validation loss needs something to validate on: take the closest conversation
        nearest = min(splits, key=lambda c: splits[c][1])
        splits[nearest] = ("valid", splits[nearest][1])
    train = [p for p, _ in candidates if splits[p["conversation_id"]][0] == "train"]
    valid = [p for p, _ in candidates if splits[p["conversation_id"]][0] == "valid"]

    types = ("email", "phone", "card_number", "order_id", "name")
    pii = {
        "context": {k: pii_context.get(k, 0) for k in types},
        "target": {k: pii_target.get(k, 0) for k in types},
        "evidence": {k: pii_evidence.get(k, 0) for k in types},
    }
    pii["total"] = {k: sum(pii[part][k] for part in ("context", "target", "evidence")) for k in types}
    split_conversations = Counter(s for s, _ in splits.values())
    return PairsResult(
        train=train,
        valid=valid,
        excluded=dict(excluded),
        pii_scrubbed=pii,
        parameters={
            "context_turns": context_turns, "evidence_k": evidence_k, "valid_fraction": valid_fraction,
            "seed": seed, "min_pairs": min_pairs, "protected_words": len(protect),
        },
        sources=[{"name": STORE_SOURCE, "conversations": n_store}, *sources],
        embedder_id=getattr(embedder, "model_id", None) if embedder is not None else None,
        index_units=len(index),
        conversations={"total": n_conversations, "train": split_conversations.get("train", 0),
                       "valid": split_conversations.get("valid", 0)},
    )


# -- writing -------------------------------------------------------------------------

def _jsonl_bytes(pairs: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs).encode("utf-8")


def write_pairs(result: PairsResult, out_dir: str | Path) -> dict[str, Any]:
    """Write `train.jsonl`, `valid.jsonl` and `manifest.json` into `out_dir`; returns the manifest.

    The set is written into a temporary directory beside `out_dir` and renamed into place,
    so a crash leaves either the previous set or the new one, never a mix. `out_dir` may be
    new, empty, or an earlier pairs set (replaced); a directory holding other files is refused.
    `data_sha256` is the sha256 of train.jsonl's bytes followed by valid.jsonl's.
    """
    out = Path(out_dir)
    ours = {TRAIN_FILE, VALID_FILE, MANIFEST_FILE}
    if out.exists():
        if not out.is_dir():
            raise OutputDirError(f"{out} exists and is not a directory; pass --out a new or empty directory")
        others = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if others:
            raise OutputDirError(
                f"{out} holds other files ({', '.join(others[:3])}); pass --out a new or empty directory "
                "or an earlier pairs directory"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    train_bytes, valid_bytes = _jsonl_bytes(result.train), _jsonl_bytes(result.valid)
    manifest = {
        "format": PAIRS_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": result.counts(),
        "excluded": dict(result.excluded),
        "pii_scrubbed": result.pii_scrubbed,
        "data_sha256": hashlib.sha256(train_bytes + valid_bytes).hexdigest(),
        "files": {TRAIN_FILE: hashlib.sha256(train_bytes).hexdigest(),
                  VALID_FILE: hashlib.sha256(valid_bytes).hexdigest()},
        "parameters": dict(result.parameters),
        "filters": FILTERS,
        "sources": list(result.sources),
        "embedder_id": result.embedder_id,
        "index_units": result.index_units,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write_durable(tmp / TRAIN_FILE, train_bytes)
        write_durable(tmp / VALID_FILE, valid_bytes)
        write_durable(tmp / MANIFEST_FILE,
                    (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        os.chmod(tmp, 0o755)
        fsync_dir(tmp)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)  # the commit point
        fsync_dir(out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
