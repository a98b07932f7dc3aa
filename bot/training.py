"""Train one GPT-2 composer by hand (`csbot finetune train`), on a pairs directory or on a
question/answer corpus, and register the result in the workspace's model registry.

    metrics = train_composer(config, Path("runs/r1"), "scratch", TrainConfig(max_minutes=20),
                             pairs=Path("pairs/"), data=Path("data"), register=True)

Registering never promotes: a person does (`csbot models promote ID`), or a learning round
(bot.learning) when its candidate beats the composer in use.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bot.errors import CsbotError
from bot.settings import CsbotSettings
from finetune.checkpoint import MODEL_META
from finetune.corpus import pairs_from_corpus
from finetune.decoder import VOTE_SIZES
from finetune.model import GeneratorBaseConfig, load_corpus_texts
from finetune.pairs import write_pairs
from finetune.registry import ModelRegistry, RegistryError
from finetune.train import TrainConfig, train_generator
from finetune.trainer_hooks import end_process_group, is_main_process, start_process_group, wait_for_everyone
from retrieval.embedder import SentenceEmbedder
from retrieval.progress import Progress, no_progress
from retrieval.threads import configure_threads

# The scratch base's rate is TrainConfig's default, the published recipe's (docs/benchmarks.md);
# a pretrained GPT-2 is only nudged.
SCRATCH_LR = TrainConfig.lr
PRETRAINED_LR = 5e-5


class RegistrationFailedError(CsbotError):
    """The model was trained and saved, but copying it into the registry failed."""

    def __init__(self, final: Path, workspace: Path, cause: Exception):
        super().__init__(
            f"the model was trained and saved in {final}, but registering it failed: {cause}; "
            f"register it later with `csbot models add {final} --workspace {workspace}`"
        )


def default_lr(base: str) -> float:
    """The learning rate for a base: high for the scratch model, low for a pretrained one,
    and for a model csbot trained (its csbot_model.json says how) the rate it was trained
    at: nudged at 5e-5, the small scratch-built model barely moves in a few minutes (on the
    demo corpus, from the Bitext recipe's model: ROUGE-L 0.23 at 5e-5, 0.31 at 3e-4, 0.34 at
    1e-3; docs/benchmarks.md)."""
    if base == "scratch":
        return SCRATCH_LR
    meta_file = Path(base) / MODEL_META
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return PRETRAINED_LR  # loading the base reports what is wrong with it
        trained = meta.get("train_config") if isinstance(meta, dict) else None
        lr = trained.get("lr") if isinstance(trained, dict) else None
        if isinstance(lr, int | float) and not isinstance(lr, bool) and lr > 0:
            return float(lr)
    return PRETRAINED_LR


def build_corpus_pairs(
    config: CsbotSettings, corpus: Path, out: Path, evidence_k: int, seed: int, *, progress: Progress = no_progress
) -> None:
    """Pairs from a Bitext-style CSV, each with evidence retrieved from the other rows, written to `out`."""
    configure_threads(config.embedder.torch_threads, config.index.faiss_threads)
    progress("loading the embedder")
    embedder = SentenceEmbedder(config.embedder).load()
    result = pairs_from_corpus(
        corpus, embedder, index_config=config.index, evidence_k=evidence_k, seed=seed, progress=progress, show_bars=True
    )
    progress(f"writing {len(result.train)} train and {len(result.valid)} valid pairs to {out}")
    write_pairs(result, out)


def train_composer(
    config: CsbotSettings,
    out: Path,
    base: str,
    train_config: TrainConfig,
    *,
    base_config: GeneratorBaseConfig,
    pairs: Path | None = None,
    corpus: Path | None = None,
    data: Path | None = None,
    allow_download: bool = False,
    resume: bool = False,
    register: bool = False,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Train on `pairs` (a `csbot finetune pairs` directory) or on `corpus` (its pairs built
    into OUT/pairs first; a resumed run reuses them); the scratch base pretrains on `data`.

    Returns the run's metrics with "registered": the registry id of OUT/final, or None when
    `register` is off (or this is not the main process of a distributed run).
    """
    run_started = time.monotonic()  # --max-minutes budgets the whole command, pairs included
    if corpus is not None:
        if pairs is not None:
            raise CsbotError("train on a pairs directory or on a corpus, not on both")
        pairs = out / "pairs"
        if not (resume and (pairs / "manifest.json").is_file()):
            # under torchrun / accelerate launch every rank runs this: one writes, the others wait
            start_process_group()
            if is_main_process():
                # the vote needs the top consensus_k answers of every pair, not only the prompt's
                evidence_k = train_config.max_evidence
                if train_config.evidence_order != "retrieval":
                    evidence_k = max(evidence_k, train_config.consensus_k or max(VOTE_SIZES))
                build_corpus_pairs(config, corpus, pairs, evidence_k, train_config.seed, progress=progress)
            wait_for_everyone()
    elif pairs is None:
        raise CsbotError("nothing to train on: give a pairs directory or a corpus")
    corpus_texts = load_corpus_texts(data) if (base == "scratch" and data is not None) else None
    progress(f"training from base {base!r} on {pairs} into {out}")
    metrics = train_generator(
        pairs,
        base,
        out,
        train_config,
        base_config=base_config,
        corpus_texts=corpus_texts,
        allow_download=allow_download,
        resume=resume,
        run_started=run_started,
    )
    registered = None
    final = out / "final"
    if register and is_main_process() and (final / MODEL_META).is_file():
        try:
            registered = ModelRegistry.for_workspace(config.workspace).register(final).id
        except (RegistryError, OSError) as e:
            raise RegistrationFailedError(final, config.workspace, e) from e
        progress(
            f"registered {registered} in {config.workspace / 'models'}; "
            f"promote it with `csbot models promote {registered}`"
        )
    end_process_group()  # every rank leaves together, after the main one registered the model
    return {**metrics, "registered": registered}
