"""One turn of the learning loop: logged conversations -> pairs -> a candidate model ->
compared with the promoted one on held-out pairs -> promoted only if it is better.

    report = run_round(config, RoundSettings(max_minutes=10))

Layout, inside the workspace:

    finetune/rounds/<round id>/pairs/     the pairs this round built (store + transcripts)
    finetune/rounds/<round id>/run/       the training run (final/ when it succeeded)
    finetune/rounds/<round id>/round.json what was compared, the figures, the decision

The held-out set is this round's validation pairs. The split is by conversation id (a
hash), so a conversation held out now was held out in every earlier round too: the promoted
model never trained on it, and the comparison is fair to both. The candidate is registered
either way (so it can be inspected or promoted by hand); the registry pointer moves only
when the candidate's ROUGE-L beats the promoted model's by at least `min_gain` and its
hallucinated-entity rate is no worse. With no model promoted, the assistant answers with the
retrieval composer, so that is what the first candidate must beat: a generator that writes
worse replies than replaying the best retrieved one is registered but never promoted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.errors import CsbotError

Progress = Callable[[str], None]
# the share of replies naming an invented value that a candidate may have (the guard still
# stops each one): the bar of 1%
HALLUCINATION_TOLERANCE = 0.01


def _quiet(_: str) -> None:
    pass


@dataclass
class RoundSettings:
    transcripts: Sequence[Path] = ()
    formats: Sequence[str] = ()  # one per transcript file ("jsonl" or "abcd")
    base: str = "scratch"
    max_minutes: float | None = 10.0
    eval_limit: int = 100  # validation pairs compared (the first N, in file order)
    min_gain: float = 0.001  # ROUGE-L the candidate must gain over the current composer
    context_turns: int = 4
    evidence_k: int = 3
    valid_fraction: float = 0.1
    min_pairs: int = 20
    seed: int = 0
    train_overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    # skip training when a registered model was trained on exactly these pairs with the same
    # base and budget (what `csbot build --generator-minutes` does on a rebuild)
    reuse: bool = False


def build_workspace_pairs(config: Any, out: Path, *, transcripts: Sequence[Path] = (), formats: Sequence[str] = (),
                          context_turns: int = 4, evidence_k: int = 3, valid_fraction: float = 0.1,
                          min_pairs: int = 20, seed: int = 0, protect: Sequence[str] = (),
                          progress: Progress = _quiet, show_bars: bool = False) -> dict[str, Any]:
    """Pairs from the workspace's store plus transcript files, written to `out`; the manifest."""
    from bot.store import ConversationStore
    from bot.workspace import read_manifest
    from finetune.pairs import build_pairs, write_pairs
    from retrieval.embedder import SentenceEmbedder
    from retrieval.importers import load_import
    from retrieval.index import VectorIndex
    from retrieval.threads import configure_threads

    read_manifest(config.workspace)  # a missing or unfinished workspace says how to build it
    extra: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    for path, fmt in zip(transcripts, formats):
        progress(f"reading {path} ({fmt})")
        batch = load_import(path, fmt)  # validates the whole file first
        extra += [{**c, "source": batch.source} for c in batch.conversations]
        sources.append({"name": batch.source, "path": str(path), "format": fmt, "sha256": batch.sha256,
                        "conversations": len(batch.conversations)})
    configure_threads(config.embedder.torch_threads, config.index.faiss_threads)
    progress("loading the embedder and the index")
    embedder = SentenceEmbedder(config.embedder).load()
    index = VectorIndex.load(config.workspace / "index", embedder_id=embedder.model_id, config=config.index)
    with ConversationStore(config.workspace / "store.db").open() as store:
        result = build_pairs(
            store, index, embedder, context_turns=context_turns, evidence_k=evidence_k,
            valid_fraction=valid_fraction, seed=seed, extra_conversations=extra, min_pairs=min_pairs,
            protect=protect, sources=sources, progress=progress, show_bars=show_bars,
        )
    progress(f"writing {len(result.train)} train and {len(result.valid)} valid pairs to {out}")
    return write_pairs(result, out)


def run_round(config: Any, settings: RoundSettings, *, protect: Sequence[str] = (),
              progress: Progress = _quiet) -> dict[str, Any]:
    """Run one round (see the module docstring) and return its report (also in round.json)."""
    from bot.evaluation_generation import evaluate_on_pairs, retrieval_on_pairs
    from finetune.model import GeneratorBaseConfig
    from finetune.registry import ModelRegistry
    from finetune.train import TrainConfig, read_pairs, train_generator

    if settings.eval_limit < 1:
        raise CsbotError(f"eval_limit must be at least 1; got {settings.eval_limit}")
    ws = config.workspace
    registry = ModelRegistry.for_workspace(ws)
    current = registry.promoted()
    round_id = datetime.now(timezone.utc).strftime("round-%Y%m%d-%H%M%S")
    root = ws / "finetune" / "rounds" / round_id
    manifest = build_workspace_pairs(
        config, root / "pairs", transcripts=settings.transcripts, formats=settings.formats,
        context_turns=settings.context_turns, evidence_k=settings.evidence_k,
        valid_fraction=settings.valid_fraction, min_pairs=settings.min_pairs, seed=settings.seed,
        protect=protect, progress=progress, show_bars=True,
    )
    if settings.reuse:
        for entry in registry.list():
            meta = entry.metadata
            if (meta.get("data_sha256") == manifest["data_sha256"] and meta.get("base") == settings.base
                    and (meta.get("train_config") or {}).get("max_minutes") == settings.max_minutes):
                report = {"round": round_id, "reused": entry.id, "promoted": entry.promoted,
                          "reason": f"{entry.id} was trained on the same pairs with the same settings",
                          "data_sha256": manifest["data_sha256"]}
                (root / "round.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
                return report
    train_config = TrainConfig(**{"max_minutes": settings.max_minutes, "seed": settings.seed,
                                  "max_evidence": settings.evidence_k,
                                  "lr": 5e-4 if settings.base == "scratch" else 5e-5,
                                  **settings.train_overrides})
    progress(f"training the candidate ({settings.base}, at most {settings.max_minutes} minutes)")
    metrics = train_generator(root / "pairs", settings.base, root / "run", train_config,
                              base_config=GeneratorBaseConfig(seed=settings.seed))
    final = root / "run" / "final"

    held_out = read_pairs(root / "pairs").valid[: settings.eval_limit]
    progress(f"comparing on {len(held_out)} held-out pairs")
    candidate_eval = evaluate_on_pairs(final, held_out, progress=progress)
    if current:
        current_id, current_eval = current.id, evaluate_on_pairs(current.path, held_out, progress=progress)
    else:
        current_id, current_eval = "retrieval", retrieval_on_pairs(held_out)
    better, reason = is_better(candidate_eval, current_eval, current_id, settings.min_gain)
    entry = registry.register(final, name=round_id)
    if better:
        registry.promote(entry.id)
    report = {
        "round": round_id,
        "pairs": manifest["counts"],
        "data_sha256": manifest["data_sha256"],
        "train": {k: metrics.get(k) for k in ("valid_loss", "best_valid_loss", "steps", "epochs", "minutes",
                                              "stopped_by")},
        "held_out_pairs": len(held_out),
        "candidate": {"id": entry.id, **candidate_eval},
        "current": {"id": current_id, **current_eval},
        "promoted": better,
        "reason": reason,
        "settings": {**asdict(settings), "transcripts": [str(p) for p in settings.transcripts]},
    }
    (root / "round.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def is_better(candidate: dict[str, Any], current: dict[str, Any], current_id: str,
              min_gain: float) -> tuple[bool, str]:
    """Promote or not, and why: ROUGE-L must rise by at least `min_gain`, and the
    hallucinated-entity rate (before the guard) must stay within `HALLUCINATION_TOLERANCE`
    of the current one's."""
    gain = candidate["rougeL_f1"] - current["rougeL_f1"]
    versus = f"ROUGE-L {candidate['rougeL_f1']} vs {current['rougeL_f1']} for {current_id}"
    if gain < min_gain:
        return False, f"{versus}: gain {gain:+.4f} is below the required {min_gain}"
    allowed = max(current["hallucinated_entity_rate"], HALLUCINATION_TOLERANCE)
    if candidate["hallucinated_entity_rate"] > allowed:
        return False, (f"hallucinated-entity rate {candidate['hallucinated_entity_rate']} is above "
                       f"{allowed} ({current_id}: {current['hallucinated_entity_rate']})")
    return True, f"{versus} (gain {gain:+.4f})"
