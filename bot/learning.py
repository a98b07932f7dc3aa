"""One turn of the learning loop: logged conversations -> pairs -> a candidate model ->
compared with the composer in use on a fixed held-out set -> promoted only if it is better
(or, with `require_approval`, left for a person to approve).

    report = run_round(config, RoundSettings(max_minutes=10))

Layout, inside the workspace:

    finetune/rounds/<round id>/pairs/     the pairs this round built (store + transcripts);
                                          heldout.jsonl: the held-out pairs it was scored on
    finetune/rounds/<round id>/run/       the training run (final/ when it succeeded)
    finetune/rounds/<round id>/round.json what was compared, the figures, the decision

The held-out set decides promotion, so whoever controls it steers the model. It is made
only of what we trust, never of anonymous customers' conversations (see `finetune.pairs`):
- curated files (`RoundSettings.heldout`; by default `heldout.jsonl` in the data folder the
  workspace was built from: the demo ships one made by data/generate.py with its own seed
  and ids, never used for training or the index);
- store conversations a human agent answered, held out by a fixed hash of their id
  (`heldout_share`), so a conversation held out once is held out in every round.
Held-out conversations are never trained on (neither train nor valid), so the promoted
model never saw them either, and candidate and current composer are scored on the same
pairs. round.json records the set: each file's sha256, the share, the pair ids scored and
the sha256 of those pairs.

Before the comparison, the round may choose the candidate's agreement floor
(`GeneratorConfig.min_agreement`: its reply is sent only where it is close enough to one of
the retrieved answers, else the retrieval composer's) on its validation pairs, never on the
held-out ones, and records it in the model's csbot_model.json; the candidate is then scored
with it, as the live bot will run it. This is opt-in (`choose_agreement`, `csbot finetune
round --choose-agreement`): on the demo it did not pay for the decoding it costs.

The candidate is registered either way (so it can be inspected or promoted by hand). It
beats the current composer when its ROUGE-L is higher by at least `min_gain` and its
hallucinated-entity rate is no worse; then the registry pointer moves, or, with
`require_approval`, the candidate is registered as awaiting approval and a person promotes
it with `csbot models approve ID`. With no model promoted, the assistant answers with the
retrieval composer, so that is what the first candidate must beat.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bot.domain import Domain
from bot.errors import CsbotError
from bot.evaluation.heldout import AsLive, choose_min_agreement, evaluate_on_pairs, retrieval_on_pairs
from bot.settings import CsbotSettings
from bot.store import ConversationStore
from bot.training import default_lr
from bot.workspace import company_facts, read_manifest
from finetune.checkpoint import set_generation_settings
from finetune.decoder import VOTE_SIZES
from finetune.model import GeneratorBaseConfig
from finetune.pairs import (
    DOWN_VOTE_CONVERSATIONS,
    HELDOUT_FILE,
    VALID_FILE,
    TooFewHeldOutPairsError,
    build_pairs,
    write_pairs,
)
from finetune.registry import ModelRegistry
from finetune.train import TrainConfig, train_generator
from retrieval.embedder import SentenceEmbedder
from retrieval.importers import ImportFormat, load_import
from retrieval.index import VectorIndex
from retrieval.progress import Progress, no_progress
from retrieval.threads import configure_threads

# the share of decoded candidates naming an invented value that a model may have (the guard
# still stops each one)
HALLUCINATION_TOLERANCE = 0.01
HELDOUT_DATA_FILE = "heldout.jsonl"  # the curated held-out file beside a workspace's data
# agent-answered store conversations held out for scoring (by a fixed hash of their id)
HELDOUT_SHARE = 0.2


@dataclass
class RoundSettings:
    """What one round learns from, how long it trains, and what it takes to be promoted."""

    transcripts: Sequence[Path] = ()
    formats: Sequence[ImportFormat] = ()  # one per transcript file ("jsonl" or "abcd")
    base: str = "scratch"
    max_minutes: float | None = 10.0
    eval_limit: int = 100  # held-out pairs compared (the first N, in file order)
    min_gain: float = 0.001  # ROUGE-L the candidate must gain over the current composer
    context_turns: int = 4
    # retrieved units per pair: what the retrieval composer and the candidates' consensus see,
    # as live (the prompt takes the first TrainConfig.max_evidence of them, the vote first with
    # TrainConfig.evidence_order "consensus"); the training's "auto" order tries votes of up
    # to this many
    evidence_k: int = max(VOTE_SIZES)
    valid_fraction: float = 0.1
    min_pairs: int = 20
    seed: int = 0
    train_overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    base_overrides: dict[str, Any] = field(default_factory=dict)  # GeneratorBaseConfig fields (scratch base)
    # skip training when a registered model was trained on exactly these pairs with the same
    # base and budget (what `csbot build --generator-minutes` does on a rebuild)
    reuse: bool = False
    # curated held-out files (our JSONL); None: heldout.jsonl in the workspace's data folder, if any
    heldout: Sequence[Path] | None = None
    heldout_share: float = HELDOUT_SHARE
    include_bot_replies: bool = False  # see finetune.pairs: bot replies no agent vouched for
    # customers' 👎 in this many distinct conversations exclude a reply pattern
    down_vote_conversations: int = DOWN_VOTE_CONVERSATIONS
    # replies right after an order lookup state a record the pairs do not show: left out of
    # training and scoring unless kept (see finetune.pairs)
    keep_after_lookup: bool = False
    # a better candidate waits for `csbot models approve ID` instead of being promoted
    require_approval: bool = False
    # choose the candidate's agreement floor (GeneratorConfig.min_agreement) on its first
    # validation pairs (as many as held-out pairs are scored) and record it in the model
    # before it is compared; off by default: on the demo it did not pay (docs/benchmarks.md)
    choose_agreement: bool = False


def default_heldout_files(workspace: Path) -> list[Path]:
    """`heldout.jsonl` in the data folder the workspace was built from, when it is there."""
    data_dir = read_manifest(workspace).get("data_dir")
    path = Path(data_dir) / HELDOUT_DATA_FILE if data_dir else None
    return [path] if path is not None and path.is_file() else []


def build_workspace_pairs(
    config: CsbotSettings,
    out: Path,
    *,
    transcripts: Sequence[Path] = (),
    formats: Sequence[ImportFormat] = (),
    context_turns: int = 4,
    evidence_k: int = 3,
    valid_fraction: float = 0.1,
    min_pairs: int = 20,
    seed: int = 0,
    include_bot_replies: bool = False,
    down_vote_conversations: int = DOWN_VOTE_CONVERSATIONS,
    keep_after_lookup: bool = False,
    heldout: Sequence[Path] = (),
    heldout_share: float = 0.0,
    min_heldout: int = 0,
    progress: Progress = no_progress,
    show_bars: bool = False,
) -> dict[str, Any]:
    """Pairs from the workspace's store plus transcript files (and held-out pairs from the
    `heldout` files and the store's `heldout_share`), written to `out`; the manifest.

    The workspace's company facts (company.json) are kept as they are, never scrubbed as PII."""
    read_manifest(config.workspace)  # a missing or unfinished workspace says how to build it
    if len(formats) != len(transcripts):
        raise CsbotError(f"{len(transcripts)} transcript files but {len(formats)} formats: give one format per file")
    extra: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    held_format: ImportFormat = "jsonl"
    for path, fmt, into in [
        *((p, f, extra) for p, f in zip(transcripts, formats, strict=True)),
        *((p, held_format, held) for p in heldout),
    ]:
        progress(f"reading {path} ({fmt}{', held out' if into is held else ''})")
        batch = load_import(path, fmt, config=config.imports)  # validates the whole file first
        into += [{**c, "source": batch.source} for c in batch.conversations]
        sources.append(
            {
                "name": batch.source,
                "path": str(path),
                "format": fmt,
                "sha256": batch.sha256,
                "conversations": len(batch.conversations),
                "heldout": into is held,
            }
        )
    configure_threads(config.embedder.torch_threads, config.index.faiss_threads)
    progress("loading the embedder and the index")
    embedder = SentenceEmbedder(config.embedder).load()
    index = VectorIndex.load(config.workspace / "index", embedder_id=embedder.model_id, config=config.index)
    with ConversationStore(config.store_target).open() as store:
        result = build_pairs(
            store,
            index,
            embedder,
            context_turns=context_turns,
            evidence_k=evidence_k,
            valid_fraction=valid_fraction,
            seed=seed,
            extra_conversations=extra,
            min_pairs=min_pairs,
            include_bot_replies=include_bot_replies,
            down_vote_conversations=down_vote_conversations,
            keep_after_lookup=keep_after_lookup,
            heldout_conversations=held,
            heldout_share=heldout_share,
            min_heldout=min_heldout,
            protect=company_facts(config.workspace),
            sources=sources,
            progress=progress,
            show_bars=show_bars,
        )
    progress(
        f"writing {len(result.train)} train, {len(result.valid)} valid and {len(result.heldout)} "
        f"held-out pairs to {out}"
    )
    return write_pairs(result, out)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def heldout_record(
    manifest: dict[str, Any], scored: list[dict[str, Any]], available: int, share: float
) -> dict[str, Any]:
    """What round.json says about the held-out set: enough to know it was the same set."""
    data = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in scored).encode("utf-8")
    files = [
        {k: s.get(k) for k in ("name", "path", "sha256", "conversations")}
        for s in manifest.get("sources", [])
        if s.get("heldout")
    ]
    return {
        "pairs": len(scored),
        "available": available,
        "files": files,
        "store_share": share,
        "store_pairs": sum(p["source"] == "store" for p in scored),
        "sha256": hashlib.sha256(data).hexdigest(),
        "ids": [p["id"] for p in scored],
    }


def run_round(config: CsbotSettings, settings: RoundSettings, *, progress: Progress = no_progress) -> dict[str, Any]:
    """Run one round (see the module docstring) and return its report (also in round.json)."""
    if settings.eval_limit < 1:
        raise CsbotError(f"eval_limit must be at least 1; got {settings.eval_limit}")
    ws = config.workspace
    heldout_files = list(settings.heldout) if settings.heldout is not None else default_heldout_files(ws)
    for path in heldout_files:
        if not Path(path).is_file():
            raise CsbotError(
                f"held-out file {path} does not exist; pass --heldout FILE (conversations in our "
                "JSONL format that are never trained on)"
            )
    registry = ModelRegistry.for_workspace(ws)
    current = registry.promoted()  # a broken pointer stops the round here, with its fix
    round_id = datetime.now(UTC).strftime("round-%Y%m%d-%H%M%S")
    root = ws / "finetune" / "rounds" / round_id
    manifest = build_workspace_pairs(
        config,
        root / "pairs",
        transcripts=settings.transcripts,
        formats=settings.formats,
        context_turns=settings.context_turns,
        evidence_k=settings.evidence_k,
        valid_fraction=settings.valid_fraction,
        min_pairs=settings.min_pairs,
        seed=settings.seed,
        include_bot_replies=settings.include_bot_replies,
        down_vote_conversations=settings.down_vote_conversations,
        keep_after_lookup=settings.keep_after_lookup,
        heldout=heldout_files,
        heldout_share=settings.heldout_share,
        min_heldout=0 if settings.reuse else 1,
        progress=progress,
        show_bars=True,
    )
    if settings.reuse:
        for entry in registry.list():
            meta = entry.metadata
            if (
                meta.get("data_sha256") == manifest["data_sha256"]
                and meta.get("base") == settings.base
                and (meta.get("train_config") or {}).get("max_minutes") == settings.max_minutes
                and all((meta.get("base_config") or {}).get(k) == v for k, v in settings.base_overrides.items())
            ):
                report = {
                    "round": round_id,
                    "reused": entry.id,
                    "promoted": entry.promoted,
                    "decision": "reused",
                    "reason": f"{entry.id} was trained on the same pairs with the same settings",
                    "data_sha256": manifest["data_sha256"],
                }
                (root / "round.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
                return report
    available = _read_jsonl(root / "pairs" / HELDOUT_FILE)
    if not available:
        raise TooFewHeldOutPairsError(1, 0)
    train_config = TrainConfig(
        **{
            "max_minutes": settings.max_minutes,
            "seed": settings.seed,
            "lr": default_lr(settings.base),
            **settings.train_overrides,
        }
    )
    progress(f"training the candidate ({settings.base}, at most {settings.max_minutes} minutes)")
    base_config = GeneratorBaseConfig(**{"seed": settings.seed, **settings.base_overrides})
    metrics = train_generator(root / "pairs", settings.base, root / "run", train_config, base_config=base_config)
    final = root / "run" / "final"

    # both sides fall back as the live bot would: this workspace's thresholds and unsure message
    domain = Domain.load(ws / "domain.json")
    dialogue = config.dialogue
    # both GPT-2 sides decode as the live bot does: its generator settings and company facts
    live = AsLive(config.generator, company_facts(ws), dialogue, domain)
    held_out = available[: settings.eval_limit]
    agreement = None
    # as many validation pairs as held-out pairs are scored: the choice costs what the comparison does
    valid = _read_jsonl(root / "pairs" / VALID_FILE)[: len(held_out)]
    if settings.choose_agreement and valid:
        progress(f"choosing the agreement floor on {len(valid)} validation pairs")
        agreement = choose_min_agreement(final, valid, live, progress=progress)
        set_generation_settings(final, min_agreement=agreement["min_agreement"], min_agreement_choice=agreement)

    progress(f"comparing on {len(held_out)} held-out pairs")
    as_shipped = partial(evaluate_on_pairs, live=live, progress=progress)
    candidate_eval = as_shipped(final, held_out)
    if current:
        current_id = current.id
        current_eval = as_shipped(current.path, held_out)
    else:
        current_id, current_eval = "retrieval", retrieval_on_pairs(held_out, dialogue=dialogue, domain=domain)
    better, reason = is_better(candidate_eval, current_eval, current_id, settings.min_gain)
    awaiting = better and settings.require_approval
    entry = registry.register(
        final, name=round_id, awaiting_approval={"round": round_id, "reason": reason} if awaiting else None
    )
    if awaiting:
        decision = "awaiting_approval"
        reason += f"; awaiting approval: promote it with `csbot models approve {entry.id}`"
    elif better:
        registry.promote(entry.id)
        decision = "promoted"
    else:
        decision = "kept"
    report = {
        "round": round_id,
        "pairs": manifest["counts"],
        "excluded": manifest["excluded"],
        "data_sha256": manifest["data_sha256"],
        "train": {
            k: metrics.get(k) for k in ("valid_loss", "best_valid_loss", "steps", "epochs", "minutes", "stopped_by")
        },
        "agreement": agreement,
        "held_out_pairs": len(held_out),
        "held_out": heldout_record(manifest, held_out, len(available), settings.heldout_share),
        "candidate": {"id": entry.id, **candidate_eval},
        "current": {"id": current_id, **current_eval},
        "promoted": decision == "promoted",
        "awaiting_approval": awaiting,
        "decision": decision,
        "reason": reason,
        "settings": {
            **asdict(settings),
            "transcripts": [str(p) for p in settings.transcripts],
            "heldout": [str(p) for p in heldout_files],
        },
    }
    (root / "round.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def round_on_data(
    config: CsbotSettings,
    data_dir: Path,
    max_minutes: float,
    *,
    base: str = "scratch",
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """The round `csbot build --generator-minutes` runs: a generator trained from `base` on the
    data folder's conversations, reused on a rebuild of the same data."""
    settings = RoundSettings(
        transcripts=[data_dir / "conversations.jsonl"],
        formats=["jsonl"],
        base=base,
        max_minutes=max_minutes,
        reuse=True,
    )
    return run_round(config, settings, progress=progress)


def is_better(candidate: dict[str, Any], current: dict[str, Any], current_id: str, min_gain: float) -> tuple[bool, str]:
    """Promote or not, and why: ROUGE-L must rise by at least `min_gain`, and the
    hallucinated-entity rate (before the guard) must stay within `HALLUCINATION_TOLERANCE`
    of the current one's."""
    gain = candidate["rougeL_f1"] - current["rougeL_f1"]
    versus = f"ROUGE-L {candidate['rougeL_f1']} vs {current['rougeL_f1']} for {current_id}"
    if gain < min_gain:
        return False, f"{versus}: gain {gain:+.4f} is below the required {min_gain}"
    allowed = max(current["hallucinated_entity_rate"], HALLUCINATION_TOLERANCE)
    if candidate["hallucinated_entity_rate"] > allowed:
        return False, (
            f"hallucinated-entity rate {candidate['hallucinated_entity_rate']} is above "
            f"{allowed} ({current_id}: {current['hallucinated_entity_rate']})"
        )
    return True, f"{versus} (gain {gain:+.4f})"
