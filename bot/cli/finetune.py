"""`csbot finetune pairs`, `train` and `round`: training data for the GPT-2 composer, a
training run, and one turn of the learning loop (bot.learning, bot.training).

`train` also runs as several processes of one data-parallel run, launched as a module:

    torchrun --standalone --nproc_per_node 8 -m bot.cli finetune train --pairs pairs/ --out runs/r1
    accelerate launch --multi_gpu --num_processes 8 -m bot.cli finetune train --pairs pairs/ --out runs/r1

Only the main process prints progress and the result; the model's metadata says how the run
was spread (finetune.train).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.console import WorkspaceOpt, error_edge, fail, load_config, print_json, require_files, step
from bot.learning import RoundSettings, build_workspace_pairs, run_round
from bot.training import default_lr, train_composer
from finetune.model import GeneratorBaseConfig
from finetune.train import TrainConfig
from finetune.trainer_hooks import is_main_process
from retrieval.importers import ImportFormat
from retrieval.progress import no_progress

finetune_app = typer.Typer(
    help="Build fine-tuning data for the GPT-2 composer from logged conversations and transcripts.",
    no_args_is_help=True,
)


# both commands that build pairs take it
KeepAfterLookupOpt = Annotated[
    bool,
    typer.Option(
        "--keep-after-lookup",
        help="Also learn the replies right after an order lookup (a system turn): they state a "
        "record the pair does not show, so by default they are left out",
    ),
]


class TranscriptFormat(StrEnum):
    jsonl = "jsonl"
    abcd = "abcd"


@finetune_app.command("pairs")
def pairs(
    out: Annotated[Path, typer.Option("--out", help="Directory for train.jsonl, valid.jsonl and manifest.json")],
    workspace: WorkspaceOpt = None,
    transcripts: Annotated[
        list[Path] | None,
        typer.Option("--transcripts", help="Transcript file to add (repeatable); conversations in it become pairs too"),
    ] = None,
    formats: Annotated[
        list[TranscriptFormat] | None,
        typer.Option(
            "--format", "-f", help="Format of each --transcripts file (one for all, or one per file) [default jsonl]"
        ),
    ] = None,
    context_turns: Annotated[int, typer.Option("--context-turns", help="Turns of context before each reply")] = 4,
    evidence_k: Annotated[
        int,
        typer.Option(
            "--evidence-k",
            help="Retrieved units per pair (never from its own conversation); the training's default "
            "evidence order weighs a vote of up to this many",
        ),
    ] = RoundSettings.evidence_k,
    valid_fraction: Annotated[
        float, typer.Option("--valid-fraction", help="Share of conversations held out for validation")
    ] = 0.1,
    min_pairs: Annotated[int, typer.Option("--min-pairs", help="Refuse to write fewer pairs than this")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the train/valid split")] = 0,
    include_bot_replies: Annotated[
        bool,
        typer.Option(
            "--include-bot-replies",
            help="Also learn the bot's answers that no human agent rated 👍 (only when "
            "you trust who talks to the bot: anonymous visitors choose what these pairs teach)",
        ),
    ] = False,
    keep_after_lookup: KeepAfterLookupOpt = False,
    down_vote_conversations: Annotated[
        int,
        typer.Option(
            "--down-vote-conversations",
            help="Customers' 👎 in this many distinct conversations exclude every bot "
            "reply built on the same retrieved source (an agent's 👎 excludes its reply at once)",
        ),
    ] = 3,
) -> None:
    """Build supervised pairs (context, evidence, target reply) from the store and transcripts.

    Progress goes to stderr; the last line of stdout is one JSON object: the manifest's counts
    (per target kind: agent, suggested, edited, bot), the exclusions per reason (discarded
    reply suggestions included) and how the store's reply suggestions ended.
    """
    transcripts = list(transcripts or [])
    format_values: list[ImportFormat] = [f.value for f in (formats or [])]
    if format_values and not transcripts:
        fail("--format is given without --transcripts FILE")
    if len(format_values) not in (0, 1, len(transcripts)):
        fail(
            f"{len(transcripts)} --transcripts files but {len(format_values)} --format values: "
            "give one --format for all files or one per file"
        )
    if len(format_values) <= 1:
        format_values = (format_values or ["jsonl"]) * len(transcripts)
    require_files(*transcripts)
    config = load_config(workspace)
    with error_edge():
        manifest = build_workspace_pairs(
            config,
            out,
            transcripts=transcripts,
            formats=format_values,
            context_turns=context_turns,
            evidence_k=evidence_k,
            valid_fraction=valid_fraction,
            min_pairs=min_pairs,
            seed=seed,
            include_bot_replies=include_bot_replies,
            down_vote_conversations=down_vote_conversations,
            keep_after_lookup=keep_after_lookup,
            progress=step,
            show_bars=True,
        )
    summary = {
        "out": str(out),
        **manifest["counts"],
        "excluded": manifest["excluded"],
        "suggestions": manifest["suggestions"],
        "pii_scrubbed": manifest["pii_scrubbed"]["total"],
        "data_sha256": manifest["data_sha256"],
    }
    print_json(summary)


@finetune_app.command("train")
def train(
    out: Annotated[Path, typer.Option("--out", help="Run directory: checkpoints/ while training, final/ when done")],
    pairs: Annotated[Path | None, typer.Option("--pairs", help="A directory written by `csbot finetune pairs`")] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            help="Instead of --pairs: a Bitext-style CSV (instruction, "
            "intent, response); pairs are built into OUT/pairs with evidence "
            "retrieved from the other rows",
        ),
    ] = None,
    base: Annotated[
        str,
        typer.Option(
            "--base",
            help="scratch (our tokenizer + a small GPT-2 pretrained on the corpus), "
            "or an HF GPT-2 checkpoint: a name in the local cache or a directory",
        ),
    ] = "scratch",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Corpus folder for the scratch base's tokenizer and "
            "pretraining [default: data/ with --pairs, none with --corpus]",
        ),
    ] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Budget for the whole run, pretraining included")
    ] = None,
    epochs: Annotated[float, typer.Option("--epochs")] = TrainConfig.epochs,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Default 1e-3 for scratch, 5e-5 for a pretrained base")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = TrainConfig.batch_size,
    evidence_k: Annotated[
        int, typer.Option("--evidence-k", help="Evidence items per prompt (and per --corpus pair)")
    ] = TrainConfig.max_evidence,
    max_target_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-target-tokens",
            help="Reply tokens learned (and generated) per pair [default: 192, at most half the model's context]",
        ),
    ] = None,
    pretrain_share: Annotated[
        float, typer.Option("--pretrain-share", help="Share of --max-minutes for the scratch base's pretraining")
    ] = TrainConfig.pretrain_share,
    label_smoothing: Annotated[
        float, typer.Option("--label-smoothing", help="Label smoothing while fine-tuning (0: none)")
    ] = TrainConfig.label_smoothing,
    evidence_order: Annotated[
        str,
        typer.Option(
            "--evidence-order",
            help="retrieval: the best-ranked retrieved answer leads each pair's evidence; consensus: the "
            "retrieval vote of the top --consensus-k does; auto: whichever agrees best with the validation "
            "targets (the composer then orders its prompts the same way)",
        ),
    ] = TrainConfig.evidence_order,
    consensus_k: Annotated[
        int | None,
        typer.Option(
            "--consensus-k",
            help="How many retrieved answers of each pair vote [default: 20 with consensus; auto tries 3, 5, 10, 20]",
        ),
    ] = None,
    vocab_size: Annotated[
        int, typer.Option("--vocab-size", help="Scratch BPE vocabulary (upper bound)")
    ] = GeneratorBaseConfig.vocab_size,
    n_layer: Annotated[int, typer.Option("--n-layer", help="Scratch GPT-2 layers")] = GeneratorBaseConfig.n_layer,
    n_embd: Annotated[int, typer.Option("--n-embd", help="Scratch GPT-2 width")] = GeneratorBaseConfig.n_embd,
    n_positions: Annotated[
        int, typer.Option("--n-positions", help="Scratch GPT-2 context length in tokens")
    ] = GeneratorBaseConfig.n_positions,
    dropout: Annotated[
        float, typer.Option("--dropout", help="Scratch GPT-2 dropout (0 suits runs of a few epochs)")
    ] = GeneratorBaseConfig.dropout,
    pointer: Annotated[
        bool,
        typer.Option(
            "--pointer/--no-pointer",
            help="Scratch GPT-2 with a pointer that copies earlier tokens (the evidence) beside its vocabulary",
        ),
    ] = GeneratorBaseConfig.pointer,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in --out")] = False,
    allow_download: Annotated[
        bool, typer.Option("--allow-download", help="Let transformers fetch --base from the hub")
    ] = False,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace whose model registry gets the result [env CSBOT_WORKSPACE; default ./.csbot]",
        ),
    ] = None,
    register: Annotated[
        bool | None,
        typer.Option(
            "--register/--no-register",
            help="Register OUT/final in the workspace's registry (not promoted); default: when the workspace exists",
        ),
    ] = None,
) -> None:
    """Fine-tune a GPT-2 composer on pairs (or on a Q/A corpus); the last stdout line is the
    metrics as JSON, with "registered": the registry id of the model (null when not registered).

    Several processes (`torchrun ... -m bot.cli finetune train ...`) train one model together.
    """
    config = load_config(workspace)
    ws = config.workspace
    if (pairs is None) == (corpus is None):
        fail("pass exactly one of --pairs DIR (from `csbot finetune pairs`) or --corpus FILE.csv")
    if register is None:
        register = ws.is_dir()
    elif register and not ws.is_dir():
        fail(
            f"--register: workspace {ws} does not exist; build it (`csbot build --workspace {ws}`), "
            "pass --workspace DIR, or --no-register"
        )
    if pairs is not None and not pairs.is_dir():
        fail(f"pairs directory {pairs} does not exist; make one with `csbot finetune pairs --out {pairs}`")
    if corpus is not None and not corpus.is_file():
        fail(f"corpus file {corpus} does not exist or is not a file")
    if data is None and pairs is not None and base == "scratch":
        data = Path("data")
    if data is not None and not data.is_dir():
        fail(f"data directory {data} does not exist; the scratch base pretrains on it (pass --data DIR)")
    if not 0 <= pretrain_share < 1:
        fail(f"--pretrain-share must be in [0, 1); got {pretrain_share}")
    if not 0 <= label_smoothing < 1:
        fail(f"--label-smoothing must be in [0, 1); got {label_smoothing}")
    if evidence_order not in ("auto", "retrieval", "consensus"):
        fail(f"--evidence-order {evidence_order!r}: use auto, retrieval or consensus")
    if consensus_k is not None and not 2 <= consensus_k <= 50:
        fail(f"--consensus-k must be between 2 and 50; got {consensus_k}")
    if pointer and base != "scratch":
        fail(
            f"--pointer builds the scratch GPT-2 with a pointer; the checkpoint --base {base} keeps its own "
            "shape: drop --pointer, or train --base scratch"
        )
    train_config = TrainConfig(
        evidence_order=evidence_order,
        consensus_k=consensus_k,
        epochs=epochs,
        lr=lr if lr is not None else default_lr(base),
        batch_size=batch_size,
        seed=seed,
        max_minutes=max_minutes,
        max_evidence=evidence_k,
        max_target_tokens=max_target_tokens,
        pretrain_share=pretrain_share,
        label_smoothing=label_smoothing,
    )
    base_config = GeneratorBaseConfig(
        n_layer=n_layer,
        n_embd=n_embd,
        n_positions=n_positions,
        vocab_size=vocab_size,
        dropout=dropout,
        pointer=pointer,
        seed=seed,
    )
    # under torchrun / accelerate launch every rank runs this command; one speaks for the run
    main = is_main_process()
    with error_edge():
        metrics = train_composer(
            config,
            out,
            base,
            train_config,
            base_config=base_config,
            pairs=pairs,
            corpus=corpus,
            data=data,
            allow_download=allow_download,
            resume=resume,
            register=register,
            progress=step if main else no_progress,
        )
    if main:
        print_json(metrics)


@finetune_app.command("round")
def round_(
    workspace: WorkspaceOpt = None,
    transcripts: Annotated[
        list[Path] | None,
        typer.Option("--transcripts", help="Transcript file to learn from besides the store (repeatable)"),
    ] = None,
    fmt: Annotated[
        TranscriptFormat, typer.Option("--format", "-f", help="Format of the --transcripts files")
    ] = TranscriptFormat.jsonl,
    base: Annotated[
        str, typer.Option("--base", help="scratch, or an HF GPT-2 checkpoint (name in the local cache or directory)")
    ] = "scratch",
    max_minutes: Annotated[float, typer.Option("--max-minutes", help="Training budget of the candidate")] = 10.0,
    eval_limit: Annotated[int, typer.Option("--eval-limit", help="Held-out pairs both models are scored on")] = 100,
    min_gain: Annotated[
        float,
        typer.Option(
            "--min-gain",
            help="ROUGE-L the candidate must gain over the current "
            "composer (the promoted model, else retrieval) to be promoted",
        ),
    ] = 0.001,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and of training")] = 0,
    heldout: Annotated[
        list[Path] | None,
        typer.Option(
            "--heldout",
            help="Curated held-out conversations (our JSONL; repeatable), never trained on "
            "[default: heldout.jsonl in the data folder the workspace was built from]",
        ),
    ] = None,
    heldout_share: Annotated[
        float,
        typer.Option(
            "--heldout-share",
            help="Share of the store's conversations answered by a human agent that is held "
            "out, by a fixed hash of their id (anonymous conversations never are)",
        ),
    ] = 0.2,
    include_bot_replies: Annotated[
        bool, typer.Option("--include-bot-replies", help="Also learn the bot's answers that no human agent rated 👍")
    ] = False,
    down_vote_conversations: Annotated[
        int,
        typer.Option(
            "--down-vote-conversations",
            help="Customers' 👎 in this many distinct conversations exclude a reply pattern",
        ),
    ] = 3,
    keep_after_lookup: KeepAfterLookupOpt = False,
    require_approval: Annotated[
        bool,
        typer.Option(
            "--require-approval",
            help="A better candidate is registered as awaiting approval, not promoted; a "
            "person promotes it with `csbot models approve ID`",
        ),
    ] = False,
    choose_agreement: Annotated[
        bool,
        typer.Option(
            "--choose-agreement",
            help="Choose the candidate's agreement floor on its validation pairs (GPT-2's reply is "
            "sent only where it is that close to a retrieved answer) and record it in the model",
        ),
    ] = False,
) -> None:
    """One learning-loop round: pairs from the store (+ transcripts) -> train a candidate ->
    score it and the composer in use on the same held-out pairs -> register it, and promote it
    only if it is better (with --require-approval: leave it for a person to approve). The last
    stdout line is the round's report as JSON."""
    transcripts = list(transcripts or [])
    require_files(*transcripts, *(heldout or []))
    if not 0 <= heldout_share < 1:
        fail(f"--heldout-share must be in [0, 1); got {heldout_share}")
    if down_vote_conversations < 1:
        fail(f"--down-vote-conversations must be at least 1; got {down_vote_conversations}")
    if max_minutes <= 0:
        fail(f"--max-minutes must be above 0; got {max_minutes}")
    config = load_config(workspace)
    settings = RoundSettings(
        transcripts=transcripts,
        formats=[fmt.value] * len(transcripts),
        base=base,
        max_minutes=max_minutes,
        eval_limit=eval_limit,
        min_gain=min_gain,
        seed=seed,
        heldout=heldout,
        heldout_share=heldout_share,
        include_bot_replies=include_bot_replies,
        down_vote_conversations=down_vote_conversations,
        keep_after_lookup=keep_after_lookup,
        require_approval=require_approval,
        choose_agreement=choose_agreement,
    )
    with error_edge():
        report = run_round(config, settings, progress=step)
    said = {"promoted": "promoted ", "awaiting_approval": "registered, awaiting approval, "}
    step(
        said.get(report["decision"], "kept the composer in use; registered ")
        + f"{report['candidate']['id']}: {report['reason']}"
    )
    print_json(report)
