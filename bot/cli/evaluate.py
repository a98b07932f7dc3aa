"""`csbot eval ...` and `csbot bench ...`: measure the intent classifier, the retriever and the
GPT-2 composer (bot.evaluation); each prints its figures as one JSON object on the last line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeGuard, cast, get_args

import typer

from bot.cli.console import WorkspaceOpt, error_edge, fail, load_config, print_json, require_files, step
from bot.evaluation.generation import Decoding, evaluate_generation
from bot.evaluation.generation_bench import bench_generation as run_bench
from bot.evaluation.intents_and_retrieval import evaluate_intents, evaluate_retrieval
from finetune.registry import ModelRegistry

eval_app = typer.Typer(help="Measure the intent classifier and the retriever.", no_args_is_help=True)
bench_app = typer.Typer(help="Time the GPT-2 composer's decoding.", no_args_is_help=True)

ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Write report.json, a confusion-matrix PNG and the most-confused pairs here"),
]


def _is_decoding(value: str) -> TypeGuard[Decoding]:
    return value in get_args(Decoding)


@eval_app.command("intents")
def eval_intents(
    train: Annotated[Path, typer.Option("--train", help="CSV: text,category or instruction,intent")],
    test: Annotated[Path, typer.Option("--test", help="CSV with the same columns")],
    oos_label: Annotated[
        str | None, typer.Option("--oos-label", help="Test rows with this label must be predicted out of scope")
    ] = None,
    report: ReportOpt = None,
) -> None:
    """Train on TRAIN, test on TEST; the last line is one JSON object."""
    config = load_config(None)
    require_files(train, test)
    with error_edge():
        result = evaluate_intents(config, train, test, oos_label=oos_label, report_dir=report, progress=step)
    print_json(result)


@eval_app.command("retrieval")
def eval_retrieval(
    corpus: Annotated[Path, typer.Option("--corpus", help="Bitext-style CSV (instruction, intent, response) to index")],
    test: Annotated[Path, typer.Option("--test", help="Bitext-style CSV whose instructions are the queries")],
    report: ReportOpt = None,
) -> None:
    """Index CORPUS, query with TEST; the last line is one JSON object."""
    config = load_config(None)
    require_files(corpus, test)
    with error_edge():
        result = evaluate_retrieval(config, corpus, test, report_dir=report, progress=step)
    print_json(result)


@eval_app.command("generation")
def eval_generation(
    model: Annotated[Path, typer.Option("--model", help="GPT-2 composer directory (a training run's final/)")],
    corpus: Annotated[
        Path,
        typer.Option("--corpus", help="Bitext-style CSV (instruction, intent, response) to retrieve evidence from"),
    ],
    test: Annotated[
        Path,
        typer.Option(
            "--test",
            help="Bitext-style CSV of questions and reference responses, or a training run's pairs/ "
            "directory: its validation rows (the development split), their own rows left out of --corpus",
        ),
    ],
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N test rows")] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option("--max-new-tokens", help="Reply length cap in tokens [default: the model's trained reply length]"),
    ] = None,
    min_overlap: Annotated[
        float | None,
        typer.Option("--min-overlap", help="The guard's overlap threshold [default: calibrated at training]"),
    ] = None,
    decoding: Annotated[str, typer.Option("--decoding", help="greedy, beam or top_p")] = "greedy",
    repetition_penalty: Annotated[float, typer.Option("--repetition-penalty", help="1.0: none")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of sampling (top_p and the sampled candidates)")] = 0,
    temperature: Annotated[
        float, typer.Option("--temperature", help="Temperature of sampling (top_p and the sampled candidates)")
    ] = 0.7,
    top_p: Annotated[
        float, typer.Option("--top-p", help="Nucleus of sampling (top_p and the sampled candidates)")
    ] = 0.9,
    candidates: Annotated[
        int,
        typer.Option(
            "--candidates",
            help="Greedy: replies decoded per question (the "
            "greedy one + samples), the one agreeing most with the retrieved "
            "answers sent; 1: greedy alone",
        ),
    ] = 5,
    int8: Annotated[bool, typer.Option("--int8/--float32", help="Weights of the fast decoder")] = True,
    streamed: Annotated[
        bool,
        typer.Option(
            "--streamed",
            help="Score the reply the streaming route sends (chosen on first sentences, sent "
            "sentence by sentence) instead of the whole-reply path's",
        ),
    ] = False,
    concurrent: Annotated[
        int,
        typer.Option(
            "--concurrent",
            help="Compose this many rows at a time, their candidates decoded together as `csbot serve` "
            "decodes them with batching on (1: one row at a time)",
        ),
    ] = 1,
    evidence_order: Annotated[
        str | None,
        typer.Option(
            "--evidence-order",
            help="retrieval: the best-ranked retrieved answer leads the prompt's evidence; consensus: the "
            "retrieval vote (the one agreeing most with the other top answers) [default: what the model's "
            "training chose, in its metadata]",
        ),
    ] = None,
    copy_bias: Annotated[
        float,
        typer.Option(
            "--copy-bias",
            help="Added to the logit of a token that continues, in the prompt, the reply's last tokens "
            "(how many: --copy-span; 0: off)",
        ),
    ] = 0.0,
    copy_span: Annotated[
        int,
        typer.Option(
            "--copy-span",
            help="With --copy-bias: the longest tail of the reply (2 to 32 tokens) aligned with the prompt, whose "
            "continuation there gets the bias (2: the last two tokens)",
        ),
    ] = 2,
    candidate_evidence: Annotated[
        str | None,
        typer.Option(
            "--candidate-evidence",
            help="same: every candidate reads the same prompt (the greedy reply and samples); votes: candidate i "
            "is greedy on a prompt led by the i-th most agreed-on retrieved answer [default: votes when the "
            "evidence order is consensus, else same]",
        ),
    ] = None,
    consensus_k: Annotated[
        int | None,
        typer.Option(
            "--consensus-k",
            help="Retrieved answers the candidates are compared with (and the retrieval vote is taken "
            "over); at least that many are retrieved [default: what the model's training chose]",
        ),
    ] = None,
    check_claims: Annotated[
        bool,
        typer.Option(
            "--check-claims/--no-check-claims",
            help="The guard rejects a reply claiming an action done that no evidence claims",
        ),
    ] = True,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.json and samples.jsonl (every row's replies) here")
    ] = None,
) -> None:
    """Generate replies to TEST's questions from CORPUS's evidence; the last line is one JSON object."""
    config = load_config(None)
    require_files(corpus)
    if not test.is_file() and not (test / "valid.jsonl").is_file():
        fail(f"--test {test}: neither a CSV file nor a pairs directory with valid.jsonl")
    if not _is_decoding(decoding):
        fail(f"--decoding {decoding!r}: use greedy, beam or top_p")
    if candidates < 1:
        fail(f"--candidates must be at least 1; got {candidates}")
    if evidence_order not in (None, "retrieval", "consensus"):
        fail(f"--evidence-order {evidence_order!r}: use retrieval or consensus")
    if not 0 <= copy_bias <= 20:
        fail(f"--copy-bias must be between 0 and 20; got {copy_bias}")
    if not 2 <= copy_span <= 32:
        fail(f"--copy-span must be between 2 and 32; got {copy_span}")
    if candidate_evidence not in (None, "same", "votes"):
        fail(f"--candidate-evidence {candidate_evidence!r}: use same or votes")
    if not 0 < temperature <= 5:
        fail(f"--temperature must be above 0 and at most 5; got {temperature}")
    if not 0 < top_p <= 1:
        fail(f"--top-p must be above 0 and at most 1; got {top_p}")
    if consensus_k is not None and not 0 <= consensus_k <= 50:
        fail(f"--consensus-k must be between 0 and 50; got {consensus_k}")
    with error_edge():
        result = evaluate_generation(
            config,
            model,
            corpus,
            test,
            limit=limit,
            max_new_tokens=max_new_tokens,
            min_overlap=min_overlap,
            decoding=decoding,
            repetition_penalty=repetition_penalty,
            seed=seed,
            temperature=temperature,
            top_p=top_p,
            candidates=candidates,
            int8=int8,
            streamed=streamed,
            evidence_order=cast(Literal["retrieval", "consensus"] | None, evidence_order),
            copy_bias=copy_bias,
            copy_span=copy_span,
            candidate_evidence=cast(Literal["same", "votes"] | None, candidate_evidence),
            consensus_k=consensus_k,
            check_claims=check_claims,
            concurrent=concurrent,
            report_dir=report,
            progress=step,
        )
    print_json(result)


def _model_or_promoted(model: Path | None, workspace: Path | None) -> Path:
    """--model, or the workspace's promoted generator."""
    if model is not None:
        return model
    config = load_config(workspace)
    with error_edge():
        entry = ModelRegistry.for_workspace(config.workspace).promoted()
    if entry is None:
        fail(
            f"no --model given and no generator promoted in {config.workspace}; pass --model DIR "
            "(a `csbot finetune train` run's final/ directory)"
        )
    return entry.path


@bench_app.command("generation")
def bench_generation(
    model: Annotated[
        Path | None, typer.Option("--model", help="GPT-2 composer directory [default: the promoted one]")
    ] = None,
    prompts: Annotated[int, typer.Option("--prompts", help="How many prompts")] = 8,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="Prompts from DIR/valid.jsonl (`csbot finetune pairs`, or a run's pairs/) instead of the demo "
            "conversations",
        ),
    ] = None,
    data: Annotated[
        Path,
        typer.Option("--data", help="Demo data directory (conversations.jsonl; domain.json and company.json if there)"),
    ] = Path("data"),
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Tokens generated per prompt, on every side")
    ] = 48,
    repeats: Annotated[int, typer.Option("--repeats", help="Time every prompt this many times")] = 1,
    workspace: WorkspaceOpt = None,
) -> None:
    """Our decoder in float32 and int8 against transformers.pipeline (float32) on the same model and
    prompts, one at a time and batched, then the shipped reply end to end; the last line is one JSON object."""
    if prompts < 1 or repeats < 1:
        fail(f"--prompts and --repeats must be at least 1; got {prompts} and {repeats}")
    model_dir = _model_or_promoted(model, workspace)
    with error_edge():
        result = run_bench(
            model_dir,
            prompts=prompts,
            pairs=pairs,
            data_dir=data,
            max_new_tokens=max_new_tokens,
            repeats=repeats,
            progress=step,
        )
    print_json(result)
