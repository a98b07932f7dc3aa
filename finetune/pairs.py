"""Supervised pairs for the GPT-2 composer: (context, evidence) -> the reply to learn.

Sources: every conversation in the store, plus transcript files (our JSONL or ABCD,
read by `retrieval.importers.load_import` and passed in as `extra_conversations`).

Who is trusted. The store's customers are anonymous website visitors: they choose what they
write and they may rate replies, so anything they alone decide can be crafted to steer the
model. A reply becomes a target only on the word of someone we trust:
- a human agent's reply (`target_kind: "agent"`); when the agent edited a bot suggestion
  before sending it (`messages.edited_from`), the edited text (`"edited"`): always;
- a bot reply composed from evidence (action "answer", composer not "policy") (`"bot"`): only
  when a human agent rated it 👍, or when the operator passes `include_bot_replies` (their
  visitors are trusted, e.g. signed-in customers). A customer's 👍 alone is not enough.
- transcript files: their agent turns (the operator chose the file).

Votes. A single customer's 👎 does not remove a reply: anyone can vote, and a good reply
pattern must not vanish from training on one visitor's word. A bot reply is excluded for
its votes when a human agent rated it 👎, or when customers 👎'd replies built on the same
retrieved source (the top unit it was composed from; its text when it had none) in at
least `down_vote_conversations` distinct conversations; then every bot reply of that
pattern is left out (unless an agent 👍'd that very reply).

Excluded, each counted in the manifest under `excluded` (a reply is counted under the first
reason that applies, in this order):
- `negative_feedback`: bot replies an agent 👎'd, or of a pattern 👎'd in enough conversations;
- `failed_before_handoff`: in a conversation that was handed to a human, bot turns with
  action fallback/clarify/handoff, and every bot turn after the last answer before a handoff;
- `policy`: fixed replies (composer "policy": small talk, slot questions, notices);
- `not_an_answer`: other bot turns that are not answers (a composer's clarify or fallback);
- `untrusted_bot_reply`: bot answers nobody trusted vouched for (see above);
- `heldout_bot_reply`: trusted bot answers in a held-out conversation (held-out targets are
  human replies; the rest of a held-out conversation is never trained on);
- `no_customer_turn`: replies with no customer turn before them (an agent's opening line);
- `empty`: replies with no text;
- `duplicate`: the same scrubbed context and target as an earlier pair (held-out pairs come
  first, so a training copy of a held-out pair is the one dropped).

Held-out pairs (`heldout.jsonl`, what the learning loop scores models on, never trained on):
the conversations of `heldout_conversations` (a curated file, e.g. data/heldout.jsonl) and,
from the store, conversations a human agent answered whose id falls in the `heldout_share`
by a fixed hash (`is_heldout_conversation`), so a conversation held out once is held out in
every round. An anonymous conversation (no agent reply) is never held out: its customer
alone would decide what the models are judged on. Their targets are agent/edited replies.

Context: the last `context_turns` customer/agent turns before the target (bot turns appear
as "agent", system turns are left out). Evidence: the top `evidence_k` units of the
workspace index for the last customer turn (scrubbed, so masked like the dialogue manager
masks a query), never from the pair's own conversation. Everything written (context,
evidence, target) is scrubbed by `finetune.scrub.scrub`. The split is by conversation:
a conversation's pairs all go to train or all to valid.

Privacy: `find_pairs_dirs` finds every pairs directory in a workspace and `erase_from_pairs`
rewrites one without the pairs of given conversations (what `csbot forget` calls).
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

from finetune.scrub import find_names, scrub
from retrieval.errors import CsbotError
from retrieval.files import fsync_dir, write_durable

PAIRS_FORMAT = 1
TRAIN_FILE, VALID_FILE, HELDOUT_FILE, MANIFEST_FILE = "train.jsonl", "valid.jsonl", "heldout.jsonl", "manifest.json"
PAIR_FILES = (TRAIN_FILE, VALID_FILE, HELDOUT_FILE)
STORE_SOURCE = "store"
# customers' 👎 on replies of one pattern, in this many distinct conversations, exclude the pattern
DOWN_VOTE_CONVERSATIONS = 3
# the salt of the held-out hash: independent of the split's seed, so changing --seed never
# moves a conversation between training and the held-out set
HELDOUT_SALT = "csbot-heldout"
EXCLUSION_REASONS = (
    "negative_feedback",
    "failed_before_handoff",
    "policy",
    "not_an_answer",
    "untrusted_bot_reply",
    "heldout_bot_reply",
    "no_customer_turn",
    "empty",
    "duplicate",
)
TARGET_KINDS = ("agent", "bot", "edited")
HELDOUT_KINDS = frozenset({"agent", "edited"})
FAILED_ACTIONS = frozenset({"fallback", "clarify", "handoff"})
FILTERS = {
    "targets": [
        "human agent replies (target_kind agent)",
        "agent edits of bot suggestions: the edited text (target_kind edited)",
        "bot replies with action 'answer' and composer not 'policy' that a human agent rated 'up', or any such "
        "reply with include_bot_replies (target_kind bot)",
    ],
    "excluded": {
        "negative_feedback": "bot replies a human agent rated 'down', and bot replies whose top retrieved source "
        "(or text) customers rated 'down' in at least down_vote_conversations conversations",
        "failed_before_handoff": "in handed-off conversations: bot fallback/clarify/handoff turns and "
        "bot turns after the last answer before a handoff",
        "policy": "fixed replies (composer 'policy')",
        "not_an_answer": "other bot turns whose action is not 'answer'",
        "untrusted_bot_reply": "bot answers no human agent rated 'up' (without include_bot_replies)",
        "heldout_bot_reply": "trusted bot answers in held-out conversations",
        "no_customer_turn": "replies with no customer turn before them",
        "empty": "replies with no text",
        "duplicate": "same scrubbed context and target as an earlier pair (held-out pairs first)",
    },
    "heldout": "the heldout_conversations files, and store conversations with a human agent reply whose "
    "sha256('csbot-heldout:<conversation id>') falls below heldout_share; agent/edited targets only",
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


class TooFewHeldOutPairsError(PairsError):
    def __init__(self, need: int, have: int):
        self.need, self.have = need, have
        super().__init__(
            f"need at least {need} held-out pairs to compare models on, have {have}; pass --heldout FILE "
            "(curated conversations in our JSONL format that are never trained on, like data/heldout.jsonl), "
            "or let human agents answer more conversations (a fixed share of those is held out). "
            "Nothing was written."
        )


class OutputDirError(PairsError):
    pass


@dataclass
class PairsResult:
    """Pairs ready to write: `train`, `valid` and `heldout` hold the JSONL objects, one per
    pair: `{"id": "<conversation_id>#<turn>", "conversation_id", "turn", "context": [{"role":
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
    heldout: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pairs(self) -> list[dict[str, Any]]:
        """The pairs a model trains on (train + valid); never the held-out ones."""
        return self.train + self.valid

    def counts(self) -> dict[str, Any]:
        return _counts(self.train, self.valid, self.heldout)


def _counts(train: list[dict[str, Any]], valid: list[dict[str, Any]], heldout: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's counts, from the pairs themselves (so a rewrite recounts the same way)."""
    pairs = train + valid
    kinds = Counter(p["target_kind"] for p in pairs)
    by_source = Counter(p["source"] for p in pairs)

    def conversations(ps: list[dict[str, Any]]) -> int:
        return len({p["conversation_id"] for p in ps})

    return {
        "pairs": len(pairs),
        "train": len(train),
        "valid": len(valid),
        "heldout": len(heldout),
        "target_kind": {k: kinds.get(k, 0) for k in TARGET_KINDS},
        "source": dict(sorted(by_source.items())),
        "conversations": {
            "total": conversations(pairs),
            "train": conversations(train),
            "valid": conversations(valid),
            "heldout": conversations(heldout),
        },
    }


def is_heldout_conversation(conversation_id: str, share: float) -> bool:
    """The stable held-out rule for the store's agent-answered conversations: the conversation's
    place in [0, 1) by a salted sha256 of its id is below `share`. It depends on nothing that
    changes between rounds, so a conversation held out once stays held out (and never trained
    on) as long as the share is not raised."""
    digest = hashlib.sha256(f"{HELDOUT_SALT}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


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
    heldout: bool = False


def _reply_pattern(message: dict[str, Any]) -> str:
    """What customers' 👎 are counted against: the top retrieved unit the reply was composed
    from (the retrieval composer replays it; the generator wrote from it), else the text."""
    sources = message.get("sources") or []
    if sources and isinstance(sources[0], dict) and sources[0].get("id"):
        return f"source:{sources[0]['id']}"
    return "text:" + " ".join((message.get("text") or "").lower().split())


def _store_conversations(
    store: Any, *, include_bot_replies: bool, down_vote_conversations: int, heldout_share: float
) -> list[_Conversation]:
    votes = store.feedback_votes()
    handoff_messages: dict[str, list[int | None]] = {}
    for h in store.handoffs():
        handoff_messages.setdefault(h["conversation_id"], []).append(h["message_id"])
    by_conv: dict[str, list[dict[str, Any]]] = {}
    for m in store.iter_messages():
        by_conv.setdefault(m["conversation_id"], []).append(m)
    down_in: dict[str, set[str]] = {}
    for conv_id, messages in by_conv.items():
        for m in messages:
            if m["role"] == "bot" and votes.get(m["id"]) == ("down", "customer"):
                down_in.setdefault(_reply_pattern(m), set()).add(conv_id)
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
            t = _Turn(m["turn"], m["role"], text)
            if m["role"] == "agent":
                t.kind = "edited" if m.get("edited_from") is not None else "agent"
            elif m["role"] == "bot":
                vote = votes.get(m["id"])
                vouched = vote == ("up", "agent")
                if vote == ("down", "agent") or (not vouched and _reply_pattern(m) in down_patterns):
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
        conversations.append(_Conversation(conv_id, STORE_SOURCE, turns, heldout=heldout))
    return conversations


def _file_conversations(extra: Iterable[dict[str, Any]], *, heldout: bool = False) -> list[_Conversation]:
    from retrieval.importers import validate_conversation

    what = "held-out conversation" if heldout else "extra conversation"
    conversations = []
    for n, raw in enumerate(extra, start=1):
        source = str(raw.get("source") or "transcripts") if isinstance(raw, dict) else "transcripts"
        conv, reason = validate_conversation(raw, f"conversation {n}")
        if reason:
            raise PairsError(f"{what} {n} ({source}): {reason}")
        assert conv is not None
        turns = [
            _Turn(i, t["role"], t["text"].strip(), kind="agent" if t["role"] == "agent" else None)
            for i, t in enumerate(conv["turns"])
        ]
        conversations.append(_Conversation(conv["id"], source, turns, heldout=heldout))
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
    include_bot_replies: bool = False,
    down_vote_conversations: int = DOWN_VOTE_CONVERSATIONS,
    heldout_conversations: Iterable[dict[str, Any]] = (),
    heldout_share: float = 0.0,
    min_heldout: int = 0,
    protect: Iterable[str] = (),
    sources: Sequence[dict[str, Any]] = (),
    progress: Progress = _quiet,
    show_bars: bool = False,
) -> PairsResult:
    """Build the pairs (see the module docstring); nothing is written here.

    `store`: a open `ConversationStore` (or None); `index`: a `VectorIndex`; `embedder`: the
    loaded embedder the index was built with (`encode`, `model_id`). `extra_conversations`:
    conversations in our JSONL format, each optionally with a `"source"` key (the file name
    written into the pairs); `heldout_conversations` likewise, for the held-out set only.
    `include_bot_replies`: trust bot answers no agent vouched for. `down_vote_conversations`:
    how many distinct conversations' customer 👎 exclude a reply pattern. `heldout_share`: the
    share of agent-answered store conversations held out. `protect`: the company's own words,
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
        _store_conversations(
            store,
            include_bot_replies=include_bot_replies,
            down_vote_conversations=down_vote_conversations,
            heldout_share=heldout_share,
        )
        if store is not None
        else []
    )
    n_store = len(conversations)
    conversations += _file_conversations(extra_conversations)
    conversations += _file_conversations(heldout_conversations, heldout=True)
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
        for i, t in enumerate(conv.turns):
            if t.kind is None and t.excluded is None:
                continue  # customer and system turns
            if t.excluded is not None:
                excluded[t.excluded] += 1
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

    pii_evidence: Counter[str] = Counter()
    if evidence_k and len(index):
        progress(f"retrieving evidence for {len(candidates)} pairs")
        own_units = Counter(u.source_id for u in index.units)
        fetch = min(
            len(index), evidence_k + max((own_units[p["conversation_id"]] for p, _, _ in candidates), default=0)
        )
        vectors = embedder.encode([q for _, q, _ in candidates], progress=show_bars)
        hits_per_pair = index.search_batch(vectors, k=fetch)
        evidence_cache: dict[str, str] = {}
        for (pair, _, _), hits in zip(candidates, hits_per_pair):
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
        },
        sources=[{"name": STORE_SOURCE, "conversations": n_store}, *sources],
        embedder_id=getattr(embedder, "model_id", None) if embedder is not None else None,
        index_units=len(index),
        conversations=_counts(train, valid, heldout)["conversations"],
    )


# -- writing -------------------------------------------------------------------------


def _jsonl_bytes(pairs: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs).encode("utf-8")


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _hashes(files: dict[str, bytes]) -> dict[str, Any]:
    """The manifest's hashes: `data_sha256` of what a model trains on (train.jsonl's bytes
    then valid.jsonl's), and one sha256 per pairs file."""
    return {
        "data_sha256": hashlib.sha256(files.get(TRAIN_FILE, b"") + files.get(VALID_FILE, b"")).hexdigest(),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name in PAIR_FILES},
    }


def _replace_dir(out: Path, files: dict[str, bytes]) -> None:
    """Make `out` hold exactly `files`: written into a temporary directory beside it and
    renamed into place, so a crash leaves the old set or the new one, never a mix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, data in files.items():
            write_durable(tmp / name, data)
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


def write_pairs(result: PairsResult, out_dir: str | Path) -> dict[str, Any]:
    """Write `train.jsonl`, `valid.jsonl`, `heldout.jsonl` (when there are held-out pairs) and
    `manifest.json` into `out_dir`; returns the manifest.

    The set is written into a temporary directory beside `out_dir` and renamed into place,
    so a crash leaves either the previous set or the new one, never a mix. `out_dir` may be
    new, empty, or an earlier pairs set (replaced); a directory holding other files is refused.
    `data_sha256` is the sha256 of train.jsonl's bytes followed by valid.jsonl's.
    """
    out = Path(out_dir)
    ours = {*PAIR_FILES, MANIFEST_FILE}
    if out.exists():
        if not out.is_dir():
            raise OutputDirError(f"{out} exists and is not a directory; pass --out a new or empty directory")
        others = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if others:
            raise OutputDirError(
                f"{out} holds other files ({', '.join(others[:3])}); pass --out a new or empty directory "
                "or an earlier pairs directory"
            )
    files = {TRAIN_FILE: _jsonl_bytes(result.train), VALID_FILE: _jsonl_bytes(result.valid)}
    if result.heldout:
        files[HELDOUT_FILE] = _jsonl_bytes(result.heldout)
    manifest = {
        "format": PAIRS_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": result.counts(),
        "excluded": dict(result.excluded),
        "pii_scrubbed": result.pii_scrubbed,
        **_hashes(files),
        "parameters": dict(result.parameters),
        "filters": FILTERS,
        "sources": list(result.sources),
        "embedder_id": result.embedder_id,
        "index_units": result.index_units,
    }
    _replace_dir(out, {**files, MANIFEST_FILE: _manifest_bytes(manifest)})
    return manifest


# -- erasing -------------------------------------------------------------------------


def _source_of_unit(unit_id: str) -> str:
    """The conversation (or article) an index unit id comes from: `<source id>#t<turn>`."""
    return unit_id.rsplit("#", 1)[0]


def erase_from_pairs(pairs_dir: str | Path, conversation_ids: Iterable[str]) -> int:
    """Rewrite the pairs directory without the pairs of `conversation_ids` (and without any
    evidence item taken from them); returns how many pairs were removed.

    Why a rewrite and not a filter at read time: a privacy request means the text must be
    gone from disk. The directory is replaced whole (as `write_pairs` writes it), and its
    manifest is brought up to date, counts, `data_sha256` and file hashes included, so a later
    check of the set against its manifest passes; the manifest's `erased` says how many pairs
    and evidence items were removed so far (never which). A directory without any of these
    conversations is left untouched. A line that is not JSON raises PairsError naming it:
    nothing is rewritten then, and the request must not be reported as done.
    """
    d = Path(pairs_dir)
    ids = {str(c) for c in conversation_ids}
    present = [name for name in PAIR_FILES if (d / name).is_file()]
    if not ids or not present:
        return 0
    kept: dict[str, bytes] = {}
    removed = evidence_removed = 0
    for name in present:
        lines = []
        for n, line in enumerate((d / name).read_bytes().splitlines(keepends=True), start=1):
            if not line.strip():
                continue
            try:
                pair = json.loads(line)
            except ValueError as e:
                raise PairsError(f"{d / name}:{n} is not JSON ({e}); fix or remove {d} and erase again") from None
            if not isinstance(pair, dict):
                raise PairsError(f"{d / name}:{n} is not a pair object; fix or remove {d} and erase again")
            if str(pair.get("conversation_id")) in ids:
                removed += 1
                continue
            evidence = pair.get("evidence") or []
            clean = [e for e in evidence if _source_of_unit(str(e.get("id", ""))) not in ids]
            if len(clean) != len(evidence):
                evidence_removed += len(evidence) - len(clean)
                line = (json.dumps({**pair, "evidence": clean}, ensure_ascii=False) + "\n").encode("utf-8")
            lines.append(line if line.endswith(b"\n") else line + b"\n")
        kept[name] = b"".join(lines)
    if not removed and not evidence_removed:
        return 0

    files = dict(kept)
    manifest_path = d / MANIFEST_FILE
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            manifest = None
        if isinstance(manifest, dict):
            read = {name: [json.loads(x) for x in kept.get(name, b"").splitlines() if x.strip()] for name in PAIR_FILES}
            erased = manifest.get("erased") if isinstance(manifest.get("erased"), dict) else {}
            manifest.update(
                {
                    "counts": _counts(read[TRAIN_FILE], read[VALID_FILE], read[HELDOUT_FILE]),
                    **_hashes(kept),
                    "erased": {
                        "pairs": int(erased.get("pairs", 0)) + removed,
                        "evidence_items": int(erased.get("evidence_items", 0)) + evidence_removed,
                        "last_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    },
                }
            )
            files[MANIFEST_FILE] = _manifest_bytes(manifest)
        else:
            files[MANIFEST_FILE] = manifest_path.read_bytes()  # not ours to repair; kept as it was
    for p in d.iterdir():  # anything else in the directory comes along unchanged
        if p.name not in files and p.is_file():
            files[p.name] = p.read_bytes()
    _replace_dir(d, files)
    return removed


def find_pairs_dirs(workspace: str | Path) -> list[Path]:
    """Every directory inside `workspace` that holds pairs (train.jsonl, valid.jsonl or
    heldout.jsonl): the learning loop's `finetune/rounds/*/pairs/`, a `csbot finetune pairs
    --out` or `finetune train --corpus` output placed inside the workspace, and the temporary
    or old copies a crashed write left behind (they hold the same text). Sorted; symbolic
    links are not followed (what they point at is outside the workspace's care)."""
    root = Path(workspace)
    if not root.is_dir():
        return []
    found = []
    for dirpath, _, filenames in os.walk(root):
        if any(name in filenames for name in PAIR_FILES):
            found.append(Path(dirpath))
    return sorted(found)
