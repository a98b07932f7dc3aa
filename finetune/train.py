"""Fine-tune the generator on pair files with the HF Trainer.

    metrics = train_generator("pairs/", "scratch", "runs/r1", TrainConfig(max_minutes=25),
                              corpus_texts=load_corpus_texts("data"))

The Trainer (not a hand-written loop) is what lets the same call run on a CPU, one GPU or
several processes, each a copy of the same command (gloo joins them on CPUs, nccl on GPUs):

    torchrun --standalone --nproc_per_node 2 -m bot.cli finetune train --pairs pairs/ --out runs/r1
    accelerate launch --multi_gpu --num_processes 2 -m bot.cli finetune train --pairs pairs/ --out runs/r1

(accelerate's `--multi_gpu` starts the processes with torch's launcher, and so works on CPUs
too; its `--cpu` starts several only through mpirun. tests/e2e/test_distributed_train.py runs
both commands on two CPU processes.) Every rank trains; only the main one writes `base/`,
`final/` and the metadata, while the others wait for it (`finetune.trainer_hooks`), and the
metadata's "training" says how the run was spread. Loss is on reply tokens only: the prompt
and padding are labelled -100. Layout of `out_dir`:

    base/          the scratch base after pretraining (tokenizer included), reused on resume
    checkpoints/   Trainer checkpoints, one per epoch (resume=True continues the latest)
    final/         the model + tokenizer + csbot_model.json, written only when a run succeeds
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune.checkpoint import MODEL_META
from finetune.decoder import FALLBACK_GENERATION, VOTE_SIZES, EvidenceChoice, choose_evidence_order, vote_first
from finetune.guard import calibrate_min_overlap
from finetune.model import SCRATCH, GeneratorBaseConfig, _set_generation_ids, load_base, pretrain
from finetune.prompt import PAD, format_transcript
from finetune.train_data import (
    PadCollator,
    PairDataset,
    Pairs,
    PairsError,
    TooFewPairsError,
    read_pairs,
)
from finetune.trainer_hooks import (
    LogCallback,
    TimeBudget,
    ddp_backend,
    how_trained,
    is_main_process,
    quiet_stdout,
    require_agreement,
    start_process_group,
    trains_on_cpu,
    wait_for_everyone,
    world_size,
)
from retrieval.errors import CsbotError

# True: the Trainer's own progress bars; a callable: each log dict; None: quiet
TrainerLogs = bool | Callable[[dict], None] | None


# the reply length of the published Bitext recipe (Bitext answers run to about 150 tokens)
RECIPE_TARGET_TOKENS = 192


@dataclass
class TrainConfig:
    """How a composer is fine-tuned. The defaults are the published recipe (docs/benchmarks.md,
    "Generation: Bitext"), chosen on a development split for the scratch base and 30 minutes
    on 2 cores: `csbot finetune train`, the learning rounds and `csbot build` all use them."""

    epochs: float = 4.0
    lr: float = 1e-3  # scratch-sized models take a high rate; pass ~5e-5 for a pretrained GPT-2
    schedule: str = "cosine"  # any transformers lr_scheduler_type ("linear", "constant", ...)
    batch_size: int = 8
    grad_accumulation: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    seed: int = 0
    max_minutes: float | None = None  # the whole run, pretraining included
    # the schedule's last step moves to where max_minutes ends (finetune.trainer_hooks.TimeBudget)
    fit_schedule_to_budget: bool = True
    pretrain_share: float = 0.15  # of max_minutes, for the scratch base's pretraining
    early_stopping_patience: int = 2  # epochs without a better validation loss
    eval_each_epoch: bool = True
    max_length: int | None = None  # tokens per example; None: the model's n_positions
    # longer replies are cut (and get no <|endofreply|>); None: `RECIPE_TARGET_TOKENS`, at most
    # half the model's context
    max_target_tokens: int | None = None
    max_evidence: int = 1
    # which retrieved answer leads each pair's evidence: "retrieval", the best-ranked one;
    # "consensus", the retrieval vote of the top `consensus_k` (`finetune.decoder.vote_first`).
    # The composer then orders its prompts and compares its candidates the same way (the
    # model's metadata tells it). "auto": train on the best-ranked order, and tell the
    # composer to read whichever of the two (and which vote size) agrees best with the
    # validation targets (`finetune.decoder.choose_evidence_order`): on Bitext's development
    # split, reading the vote over 20 gained +0.021 ROUGE-L and training on it nothing more
    # (docs/benchmarks.md)
    evidence_order: str = "auto"
    consensus_k: int | None = None  # None: 20 with "consensus", chosen with "auto"
    # spreads this share of each target token's probability over the vocabulary while
    # fine-tuning (the Trainer's label_smoothing_factor); the validation loss is smoothed too
    label_smoothing: float = 0.0
    torch_threads: int | None = None  # None: leave torch's default (the caller decides)
    min_pairs: int = 20
    save_total_limit: int = 2


# ---------------------------------------------------------------------------------------------
# training


def _pretrain_texts(pairs: Sequence[dict], corpus_texts: Sequence[str] | None) -> list[str]:
    """Corpus texts plus each training conversation once (its longest pair, reply appended)."""
    longest: dict[str, dict] = {}
    for p in pairs:
        key = p.get("conversation_id") or p.get("id") or str(id(p))
        if key not in longest or p.get("turn", 0) > longest[key].get("turn", 0):
            longest[key] = p
    convs = [format_transcript([*p["context"], {"role": "agent", "text": p["target"]}]) for p in longest.values()]
    return list(corpus_texts or []) + convs


def _prepare_base(
    base: str,
    pairs: Pairs,
    out: Path,
    config: TrainConfig,
    base_config: GeneratorBaseConfig,
    corpus_texts,
    allow_download: bool,
    resume: bool,
    progress: TrainerLogs,
) -> tuple[Any, Any, dict]:
    pair_texts = [p["target"] for p in pairs.train] + [t["text"] for p in pairs.train for t in p["context"]]
    if base != SCRATCH:
        model, tok = load_base(base, corpus_texts=pair_texts, allow_download=allow_download)
        return model, tok, {}
    base_dir = out / "base"
    if resume and (base_dir / "config.json").is_file():
        # the checkpoint's embeddings belong to this tokenizer: never retrain it on resume
        model, tok = load_base(str(base_dir))
        return model, tok, {"pretrain_reused": True}
    texts = _pretrain_texts(pairs.train, corpus_texts)
    model, tok = load_base(SCRATCH, corpus_texts=texts + pair_texts, config=base_config)
    # every rank trains the tokenizer on the same texts; a different one would make its token
    # ids, and so its gradients, mean other words than the main process's
    require_agreement("the scratch tokenizer's sha256", _tokenizer_sha256(tok))
    if config.max_minutes is not None:
        base_config = GeneratorBaseConfig(
            **{**asdict(base_config), "pretrain_minutes": config.max_minutes * config.pretrain_share}
        )
    # None means "the Trainer's own bars" here as in fine-tuning
    metrics = pretrain(
        model, tok, texts, base_config, out / "pretrain-checkpoints", True if progress is None else progress
    )
    if is_main_process():
        _save_atomic(base_dir, lambda d: (model.save_pretrained(d), tok.save_pretrained(d)))
        shutil.rmtree(out / "pretrain-checkpoints", ignore_errors=True)
    wait_for_everyone()
    return model, tok, metrics


def _tokenizer_sha256(tok) -> str:
    import hashlib

    return hashlib.sha256(tok.backend_tokenizer.to_str().encode("utf-8")).hexdigest()


def train_generator(
    pairs_dir: str | Path,
    base: str,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    base_config: GeneratorBaseConfig | None = None,
    corpus_texts: Sequence[str] | None = None,
    allow_download: bool = False,
    resume: bool = False,
    progress: TrainerLogs = None,
    run_started: float | None = None,
) -> dict[str, Any]:
    """Fine-tune `base` ("scratch", a cached HF name or a directory) on the pairs in `pairs_dir`.

    Writes `out_dir/final` (model, tokenizer, csbot_model.json) only when the run succeeds,
    and returns the metrics. `progress`: None/True shows the Trainer's tqdm bars, False hides
    them, a callable gets every log dict instead. `corpus_texts` (transcripts, KB) feed the
    scratch base's tokenizer and pretraining. `run_started` (a `time.monotonic()` reading):
    when the run that `config.max_minutes` budgets began, if before this call (building the
    pairs, say); default now.
    """
    config = config or TrainConfig()
    base_config = base_config or GeneratorBaseConfig(seed=config.seed)
    started = time.monotonic() if run_started is None else run_started
    # refuse bad input before paying for the torch/transformers import
    pairs = read_pairs(pairs_dir)
    if len(pairs.train) < config.min_pairs:
        raise TooFewPairsError(config.min_pairs, len(pairs.train), Path(pairs_dir) / "train.jsonl")
    if not pairs.valid:
        raise PairsError(
            f"{Path(pairs_dir) / 'valid.jsonl'} has no pairs; validation loss, early stopping and "
            "the best-model choice need some: rebuild the pairs with a validation share"
        )
    config, reading = resolve_evidence_order(config, pairs.valid)
    if config.evidence_order == "consensus":
        k = config.consensus_k
        assert k is not None  # resolved above
        pairs = replace(
            pairs,
            train=[{**p, "evidence": vote_first(p.get("evidence", []), k)} for p in pairs.train],
            valid=[{**p, "evidence": vote_first(p.get("evidence", []), k)} for p in pairs.valid],
        )

    import torch
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    start_process_group()  # under torchrun / accelerate launch: join the other ranks now
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)

    model, tok, pre_metrics = _prepare_base(
        base, pairs, out, config, base_config, corpus_texts, allow_download, resume, progress
    )
    n_pos = model.config.n_positions
    max_length = min(config.max_length or n_pos, n_pos)
    if config.max_target_tokens is None:  # what the model's context allows of the recipe's length
        config = replace(config, max_target_tokens=min(RECIPE_TARGET_TOKENS, max_length // 2))
    assert config.max_target_tokens is not None
    if config.max_target_tokens >= max_length - 8:
        raise CsbotError(
            f"max_target_tokens {config.max_target_tokens} leaves no room for the prompt in "
            f"max_length {max_length}; lower it below {max_length - 8}"
        )
    train_ds = PairDataset(pairs.train, tok, max_length, config.max_target_tokens, config.max_evidence)
    valid_ds = PairDataset(pairs.valid, tok, max_length, config.max_target_tokens, config.max_evidence)

    ckpt_dir = out / "checkpoints"
    if not resume and ckpt_dir.exists() and is_main_process():
        # a fresh run must not rotate, resume or pick a "best" among another run's checkpoints
        shutil.rmtree(ckpt_dir)
    wait_for_everyone()  # no rank looks for checkpoints while the main one removes them
    steps_per_epoch = math.ceil(len(train_ds) / (config.batch_size * config.grad_accumulation * world_size()))
    strategy = "epoch" if config.eval_each_epoch else "no"
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accumulation,
        learning_rate=config.lr,
        lr_scheduler_type=config.schedule,
        # an int count: the meaning of a float warmup changed across transformers versions
        warmup_steps=math.ceil(steps_per_epoch * config.epochs * config.warmup_ratio),
        weight_decay=config.weight_decay,
        label_smoothing_factor=config.label_smoothing,
        eval_strategy=strategy,
        save_strategy=strategy,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=config.eval_each_epoch,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=max(1, min(50, steps_per_epoch // 4 or 1)),
        report_to="none",
        seed=config.seed,
        disable_tqdm=progress is False or callable(progress),
        remove_unused_columns=False,  # our dataset yields exactly the model's inputs
        use_cpu=trains_on_cpu(),
        ddp_backend=ddp_backend(),
        # GPT-2 uses every parameter in every step: DDP's search for unused ones is wasted work
        ddp_find_unused_parameters=False,
    )
    budget = TimeBudget(config.max_minutes, fit_schedule=config.fit_schedule_to_budget)
    callbacks = [budget.callback()]
    if config.eval_each_epoch and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    if callable(progress):
        callbacks.append(LogCallback(progress, "finetune"))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=valid_ds,
        data_collator=PadCollator(tok.convert_tokens_to_ids(PAD)),
        processing_class=tok,
        callbacks=callbacks,
    )
    quiet_stdout(trainer)

    last = get_last_checkpoint(str(ckpt_dir)) if resume and ckpt_dir.is_dir() else None
    eval_started = time.monotonic()
    valid_start = None if last else trainer.evaluate()["eval_loss"]
    if config.max_minutes is not None:
        # what the run has spent, and the final evaluation still to come, are not for training
        final_eval_minutes = (time.monotonic() - eval_started) / 60 if valid_start is not None else 0.0
        budget.minutes = max(config.max_minutes - (time.monotonic() - started) / 60 - final_eval_minutes, 0.0)
    result = trainer.train(resume_from_checkpoint=last)
    final_eval = trainer.evaluate()  # the best model when load_best_model_at_end, else the last
    minutes = (time.monotonic() - started) / 60

    metrics = {
        **pre_metrics,
        "train_loss": result.training_loss,
        "valid_loss": final_eval["eval_loss"],
        "valid_loss_start": valid_start,
        "best_valid_loss": trainer.state.best_metric,
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "epochs": trainer.state.epoch,
        "minutes": round(minutes, 3),
        "stopped_by": "max_minutes"
        if budget.stopped
        else ("early_stopping" if trainer.state.global_step < trainer.state.max_steps else None),
        "schedule_horizon": budget.horizon,
        "resumed_from": last,
        "n_train": len(train_ds),
        "n_valid": len(valid_ds),
        "max_length": max_length,
        # with evidence_order "auto": each vote size's leading answer against the validation
        # targets (mean ROUGE-L F1; 1 is the best-ranked answer), the best of which was taken
        "evidence_order_scores": {str(size): score for size, score in reading.scores.items()},
    }
    if trainer.is_world_process_zero():
        meta = _model_meta(base, pairs, pairs_dir, config, base_config, model, metrics, reading)
        meta["training"] = how_trained(trainer.args.device.type)

        def write(d: Path) -> None:
            _set_generation_ids(trainer.model, tok)
            trainer.save_model(str(d))
            tok.save_pretrained(str(d))
            (d / MODEL_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

        _save_atomic(out / "final", write)
    # every rank returns only once final/ is whole: whatever a rank's caller does next
    # (register it, exit, read it) sees the finished model, never a half-written one
    wait_for_everyone()
    return metrics


def _model_meta(
    base: str,
    pairs: Pairs,
    pairs_dir: str | Path,
    config: TrainConfig,
    base_config: GeneratorBaseConfig,
    model: Any,
    metrics: dict[str, Any],
    reading: EvidenceChoice,
) -> dict[str, Any]:
    """csbot_model.json: the configs, data and versions that made the model, and how the
    composer should run it (the caller adds "training": how the run was spread)."""
    return {
        "base": base,
        # how the composer should run this model unless told otherwise: the evidence count and
        # reply length it was trained with, and the guard threshold its validation replies clear
        "generation": generation_defaults(pairs.valid, config, reading),
        "data_sha256": pairs.data_sha256,
        "pairs_dir": str(Path(pairs_dir).resolve()),
        "train_config": asdict(config),
        "base_config": asdict(base_config) if base == SCRATCH else None,
        "model_config": {
            k: model.config.to_dict().get(k)
            for k in ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "csbot_pointer")
        },
        "metrics": metrics,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
    }


def resolve_evidence_order(config: TrainConfig, valid: Sequence[dict]) -> tuple[TrainConfig, EvidenceChoice]:
    """`config` with its vote size filled in, and how the composer should read the model's
    evidence: with "auto", as chosen on the validation pairs (the scores of each vote size
    with it); otherwise as trained."""
    if config.evidence_order not in ("auto", "retrieval", "consensus"):
        raise CsbotError(f"evidence_order must be 'auto', 'retrieval' or 'consensus'; got {config.evidence_order!r}")
    if config.consensus_k is not None and not 2 <= config.consensus_k <= 50:
        raise CsbotError(f"consensus_k must be between 2 and 50; got {config.consensus_k}")
    if config.evidence_order == "retrieval":
        k = config.consensus_k or int(FALLBACK_GENERATION["consensus_k"])
        return replace(config, consensus_k=k), EvidenceChoice("retrieval", k, {})
    if config.evidence_order == "consensus":
        k = config.consensus_k or max(VOTE_SIZES)
        return replace(config, consensus_k=k), EvidenceChoice("consensus", k, {})
    sizes = VOTE_SIZES if config.consensus_k is None else (1, config.consensus_k)
    choice = choose_evidence_order(valid, sizes)
    return replace(config, consensus_k=choice.consensus_k), choice


def generation_defaults(
    valid: Sequence[dict], config: TrainConfig, reading: EvidenceChoice | None = None, quantile: float = 0.05
) -> dict[str, Any]:
    """`evidence_k`, `max_new_tokens`, how to read the evidence (`reading`, default as
    trained) and the guard's `min_overlap` for a model trained with `config`: the overlap
    that all but `quantile` of the validation targets reach against their own context and
    evidence (as many items as the prompt will hold, in the order the composer reads them),
    i.e. the share of good human replies the guard may wrongly reject."""
    revote = reading is not None and reading.evidence_order == "consensus" and config.evidence_order != "consensus"

    def read(evidence: list[Any]) -> list[Any]:
        return vote_first(evidence, reading.consensus_k) if revote and reading is not None else evidence

    samples = [
        (
            p["target"],
            [t["text"] for t in p["context"]]
            + [
                e["text"] if isinstance(e, dict) else str(e) for e in read(p.get("evidence", []))[: config.max_evidence]
            ],
        )
        for p in valid
    ]
    return {
        "evidence_k": config.max_evidence,
        "evidence_order": reading.evidence_order if reading else config.evidence_order,
        "consensus_k": reading.consensus_k if reading else config.consensus_k,
        "max_new_tokens": config.max_target_tokens,
        "min_overlap": calibrate_min_overlap(samples, quantile) if samples else None,
        "min_overlap_quantile": quantile,
        "min_overlap_samples": len(samples),
    }


def _save_atomic(final: Path, write: Callable[[Path], Any]) -> None:
    """Write into a sibling temp dir, then swap it in: an interrupted save leaves either the
    previous `final` or none, never half a model."""
    tmp = final.with_name(f".{final.name}.tmp")
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("csbot", "torch", "transformers", "tokenizers", "accelerate"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out
