"""The `csbot` command line: a thin layer over the library. Typed errors from below become
one-line messages and a non-zero exit here, and nowhere else."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from bot.config import CsbotConfig
from bot.contracts import turn_to_dict
from bot.errors import CsbotError
from retrieval.errors import RetrievalError

app = typer.Typer(
    help="csbot: a customer-service assistant with intents, retrieval and a grounded composer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
eval_app = typer.Typer(help="Measure the intent classifier and the retriever.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
bench_app = typer.Typer(help="Time the GPT-2 composer's decoding.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

from bot.cli.finetune import finetune_app  # noqa: E402 - light: its commands import what they need

app.add_typer(finetune_app, name="finetune")

from bot.cli.models import models_app  # noqa: E402 - light: the registry imports no torch

app.add_typer(models_app, name="models")

err = Console(stderr=True)
out = Console()

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Built assistant directory [env CSBOT_WORKSPACE; default ./.csbot]"),
]


class ImportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"
    bitext = "bitext"
    abcd = "abcd"


def _config(workspace: Path | None) -> CsbotConfig:
    try:
        return CsbotConfig.from_env(workspace)
    except ValueError as e:
        _fail(str(e))


def _fail(message: str, code: int = 1):
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class _Edge:
    """Turns csbot's typed errors into a message and exit code 1."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, (CsbotError, RetrievalError)):
            _fail(str(exc))
        return False


def _require_files(*paths: Path) -> None:
    for p in paths:
        if not p.is_file():
            _fail(f"{p} does not exist or is not a file")


def _step(message: str) -> None:
    err.print(f"[cyan]•[/] {message}", highlight=False)


@app.command()
def build(
    workspace: WorkspaceOpt = None,
    data: Annotated[
        Path, typer.Option("--data", help="Data directory (conversations.jsonl, kb.jsonl, intents.csv, domain.json)")
    ] = Path("data"),
    generator_minutes: Annotated[
        float,
        typer.Option(
            "--generator-minutes",
            help="Also train a GPT-2 generator on the data's conversations for at most this "
            "many minutes (one `finetune round`; promoted only if it beats the retrieval composer; reused on a "
            "rebuild of the same data). 0: retrieval only",
        ),
    ] = 0.0,
) -> None:
    """Ingest the data, build the FAISS index and train the intent classifier (and, with
    --generator-minutes, a GPT-2 generator)."""
    from bot.workspace import build_workspace

    config = _config(workspace)
    if not data.is_dir():
        _fail(f"data directory {data} does not exist; pass --data DIR")
    if generator_minutes < 0:
        _fail(f"--generator-minutes must be 0 or more; got {generator_minutes}")
    with _Edge():
        report = build_workspace(config, data, progress=_step, show_bars=True)
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {w}")
    out.print(
        f"Built {report.workspace} in {report.seconds:.0f}s: {report.n_units} retrieval units "
        f"({report.n_conversations} conversations, {report.n_articles} articles; {report.index_kind} index), "
        f"{len(report.intents)} intents from {report.n_intent_examples} examples.",
        highlight=False,
    )
    if generator_minutes > 0:
        from bot.learning import RoundSettings, run_round
        from bot.workspace import company_facts

        _step(f"training the generator (at most {generator_minutes:g} minutes)")
        with _Edge():
            outcome = run_round(
                config,
                RoundSettings(
                    transcripts=[data / "conversations.jsonl"],
                    formats=["jsonl"],
                    max_minutes=generator_minutes,
                    reuse=True,
                ),
                protect=company_facts(config.workspace),
                progress=_step,
            )
        used = "the GPT-2 generator" if outcome["promoted"] else "the retrieval composer"
        out.print(f"Generator: {outcome['reason']}; the assistant answers with {used}.", highlight=False)


@app.command()
def ask(
    text: Annotated[str, typer.Argument(help="The customer's message")],
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="Continue this conversation id")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Answer one message and print the result as one JSON object."""
    from bot.workspace import Assistant

    config = _config(workspace)
    with _Edge(), Assistant(config) as assistant:
        result = assistant.manager.handle(text, conversation_id=conversation, channel="cli")
    sys.stdout.write(json.dumps(turn_to_dict(result), ensure_ascii=False) + "\n")


@app.command()
def chat(
    workspace: WorkspaceOpt = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="Resume this conversation id")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show intent, confidence, action and sources")] = False,
) -> None:
    """Chat with the assistant in the terminal (Ctrl-D or /quit to leave)."""
    from bot.workspace import Assistant

    config = _config(workspace)
    with _Edge(), Assistant(config) as assistant:
        manager = assistant.manager
        conversation_id = conversation
        if conversation_id is not None and not assistant.store.conversation_exists(conversation_id):
            _fail(f"unknown conversation id {conversation_id!r}; omit --conversation to start a new one")
        conversation_id = conversation_id or manager.start_conversation(channel="cli")
        out.print(f"[dim]conversation {conversation_id} · /quit to leave[/]")
        while True:
            try:
                text = out.input("[bold]you>[/] ")
            except (EOFError, KeyboardInterrupt):
                out.print()
                break
            if text.strip() in ("/quit", "/exit"):
                break
            try:
                result = manager.handle(text, conversation_id=conversation_id, channel="cli")
            except CsbotError as e:
                err.print(f"[red]{e}[/]", highlight=False)
                continue
            out.print(f"[bold green]bot>[/] {result.reply}", highlight=False)
            if result.buttons:
                out.print("     " + "  ".join(f"[reverse] {b} [/]" for b in result.buttons))
            if debug:
                flag = " OOS" if result.out_of_scope else ""
                out.print(
                    f"[dim]     intent={result.intent} confidence={result.confidence:.2f}{flag} "
                    f"action={result.action} composer={result.composer} {result.latency_ms:.0f}ms"
                    + (f" note={result.note}" if result.note else "")
                    + "[/]",
                    highlight=False,
                )
                for s in result.sources[:3]:
                    out.print(f"[dim]     {s.score:.2f} {s.id}: {s.text[:90]}[/]", highlight=False)
        out.print(f"[dim]conversation saved as {conversation_id}[/]")


@app.command()
def serve(
    workspace: WorkspaceOpt = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on [env CSBOT_HOST; default 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port [env CSBOT_PORT; default 8000]")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="Inference workers (threads, one loaded assistant each) [env CSBOT_WORKERS; default 1]"
        ),
    ] = None,
) -> None:
    """Serve the assistant over HTTP: REST API, streamed replies (SSE), Rasa REST channel, the widget and /demo."""
    from pydantic import ValidationError

    from bot.server.settings import ServerSettings
    from bot.workspace import read_manifest

    flags = {"workspace": workspace, "host": host, "port": port, "workers": workers}
    try:
        settings = ServerSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as e:
        _fail("; ".join(f"{'.'.join(map(str, x['loc'])) or 'settings'}: {x['msg']}" for x in e.errors()))
    with _Edge():
        read_manifest(settings.workspace)  # a missing build is refused here, before the port opens

    try:
        settings.csbot_config()
    except ValueError as e:  # a bad CSBOT_* value of the assistant's own
        _fail(str(e))
    from bot.server.serve import serve as run_server

    err.print(
        f"[cyan]•[/] serving {settings.workspace} on http://{settings.host}:{settings.port} "
        f"({settings.workers} inference worker(s); the models load in the background, GET /readyz)",
        highlight=False,
    )
    run_server(settings)


@app.command()
def forget(
    conversation: Annotated[
        list[str] | None, typer.Option("--conversation", "-c", help="A conversation id to erase (repeatable)")
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Erase every conversation that mentions this email address")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Erase a customer's conversations (a privacy request): messages, ratings, CSAT,
    handoffs, and the training pairs built from them. Prints what went, by id and count."""
    from bot.privacy import forget_conversations, forget_customer
    from bot.store import ConversationStore
    from bot.workspace import read_manifest

    if bool(conversation) == bool(email):
        _fail("name what to erase: --conversation ID (repeatable) or --email ADDRESS, not both")
    if email is not None and "@" not in email:
        _fail(f"--email {email!r} is not an email address")
    config = _config(workspace)
    with _Edge():
        read_manifest(config.workspace)
        with ConversationStore(config.workspace / "store.db") as store:
            if email is not None:
                report = forget_customer(store, config.workspace, email)
            else:
                report = forget_conversations(store, config.workspace, list(conversation or []), "request by id")
    if not report.conversations and not report.pairs:
        _step("nothing to erase: no such conversation in the store or the training pairs")
    sys.stdout.write(json.dumps(report.to_json()) + "\n")


@app.command()
def purge(
    older_than_days: Annotated[
        float, typer.Option("--older-than-days", help="Erase conversations idle longer than this")
    ],
    workspace: WorkspaceOpt = None,
) -> None:
    """Erase every conversation idle longer than --older-than-days (what CSBOT_RETENTION_DAYS
    does on a running server, at start and hourly)."""
    from bot.privacy import purge_idle
    from bot.store import ConversationStore
    from bot.workspace import read_manifest

    if older_than_days <= 0:
        _fail(f"--older-than-days must be more than 0; got {older_than_days:g}")
    config = _config(workspace)
    with _Edge():
        read_manifest(config.workspace)
        with ConversationStore(config.workspace / "store.db") as store:
            report = purge_idle(store, config.workspace, older_than_days)
    _step(f"erased {len(report.conversations)} conversation(s) idle over {older_than_days:g} days")
    sys.stdout.write(json.dumps(report.to_json()) + "\n")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="File to import", exists=False)],
    format: Annotated[
        ImportFormat,
        typer.Option("--format", "-f", help="jsonl (our conversations), csv (question/answer), bitext, abcd"),
    ],
    question_column: Annotated[str, typer.Option(help="csv: the question column")] = "question",
    answer_column: Annotated[str, typer.Option(help="csv: the answer column")] = "answer",
    intent_column: Annotated[str | None, typer.Option(help="csv: an optional intent column")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Add transcripts or Q&A pairs to the index without a rebuild."""
    from bot.workspace import import_file

    if not file.is_file():
        _fail(f"{file} does not exist or is not a file")
    config = _config(workspace)
    with _Edge():
        summary = import_file(
            config,
            file,
            format.value,
            progress=_step,
            question_column=question_column,
            answer_column=answer_column,
            intent_column=intent_column,
        )
    sys.stdout.write(json.dumps(summary) + "\n")


ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Write report.json, a confusion-matrix PNG and the most-confused pairs here"),
]


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
    from bot.evaluation.intents_and_retrieval import evaluate_intents

    config = _config(None)
    _require_files(train, test)
    with _Edge():
        result = evaluate_intents(config, train, test, oos_label=oos_label, report_dir=report, progress=_step)
    sys.stdout.write(json.dumps(result) + "\n")


@eval_app.command("retrieval")
def eval_retrieval(
    corpus: Annotated[Path, typer.Option("--corpus", help="Bitext-style CSV (instruction, intent, response) to index")],
    test: Annotated[Path, typer.Option("--test", help="Bitext-style CSV whose instructions are the queries")],
    report: ReportOpt = None,
) -> None:
    """Index CORPUS, query with TEST; the last line is one JSON object."""
    from bot.evaluation.intents_and_retrieval import evaluate_retrieval

    config = _config(None)
    _require_files(corpus, test)
    with _Edge():
        result = evaluate_retrieval(config, corpus, test, report_dir=report, progress=_step)
    sys.stdout.write(json.dumps(result) + "\n")


def _model_dir(model: Path | None, workspace: Path | None) -> Path:
    """--model, or the workspace's promoted generator."""
    if model is not None:
        return model
    from finetune.registry import ModelRegistry

    config = _config(workspace)
    with _Edge():
        entry = ModelRegistry.for_workspace(config.workspace).promoted()
    if entry is None:
        _fail(
            f"no --model given and no generator promoted in {config.workspace}; pass --model DIR "
            "(a `csbot finetune train` run's final/ directory)"
        )
    return entry.path


@eval_app.command("generation")
def eval_generation(
    model: Annotated[Path, typer.Option("--model", help="GPT-2 composer directory (a training run's final/)")],
    corpus: Annotated[
        Path,
        typer.Option("--corpus", help="Bitext-style CSV (instruction, intent, response) to retrieve evidence from"),
    ],
    test: Annotated[Path, typer.Option("--test", help="Bitext-style CSV: questions and reference responses")],
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
    seed: Annotated[int, typer.Option("--seed", help="Seed of top_p sampling")] = 0,
    candidates: Annotated[
        int,
        typer.Option(
            "--candidates",
            help="Greedy: replies decoded per question (the "
            "greedy one + samples), the one agreeing most with the retrieved "
            "answers sent; 1: greedy alone",
        ),
    ] = 3,
    int8: Annotated[bool, typer.Option("--int8/--float32", help="Weights of the fast decoder")] = True,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write report.json and samples.jsonl (every row's replies) here")
    ] = None,
) -> None:
    """Generate replies to TEST's questions from CORPUS's evidence; the last line is one JSON object."""
    from bot.evaluation.generation import evaluate_generation

    config = _config(None)
    _require_files(corpus, test)
    if decoding not in ("greedy", "beam", "top_p"):
        _fail(f"--decoding {decoding!r}: use greedy, beam or top_p")
    if candidates < 1:
        _fail(f"--candidates must be at least 1; got {candidates}")
    with _Edge():
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
            candidates=candidates,
            int8=int8,
            report_dir=report,
            progress=_step,
        )
    sys.stdout.write(json.dumps(result) + "\n")


@bench_app.command("generation")
def bench_generation(
    model: Annotated[
        Path | None, typer.Option("--model", help="GPT-2 composer directory [default: the promoted one]")
    ] = None,
    prompts: Annotated[int, typer.Option("--prompts", help="How many prompts")] = 8,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs", help="Prompts from DIR/valid.jsonl (`csbot finetune pairs`) instead of the demo conversations"
        ),
    ] = None,
    data: Annotated[Path, typer.Option("--data", help="Demo data directory (conversations.jsonl)")] = Path("data"),
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Tokens generated per prompt, on both sides")
    ] = 48,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8/--float32", help="Weights of our decoder (the pipeline runs the float32 model either way)"
        ),
    ] = True,
    workspace: WorkspaceOpt = None,
) -> None:
    """Our decoding against transformers.pipeline on the same model and prompts; the last line is one JSON object."""
    from bot.evaluation.generation import bench_generation as run_bench

    model_dir = _model_dir(model, workspace)
    with _Edge():
        result = run_bench(
            model_dir,
            prompts=prompts,
            pairs=pairs,
            data_dir=data,
            max_new_tokens=max_new_tokens,
            int8=int8,
            progress=_step,
        )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    app()
