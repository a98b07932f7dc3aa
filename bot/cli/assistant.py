"""`csbot build`, `ask`, `chat` and `import`: make an assistant from data, talk to it, feed it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.console import (
    WorkspaceOpt,
    err,
    error_edge,
    fail,
    load_config,
    out,
    print_json,
    require_files,
    step,
)
from bot.contracts import TurnResult, turn_to_dict
from bot.errors import CsbotError
from bot.learning import round_on_data
from bot.workspace import Assistant, build_workspace, import_file


class ImportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    bitext = "bitext"
    abcd = "abcd"


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
    generator_base: Annotated[
        str,
        typer.Option(
            "--generator-base",
            help="What the --generator-minutes round trains from: scratch, or a GPT-2 checkpoint "
            "directory (for example one csbot trained on a larger corpus)",
        ),
    ] = "scratch",
) -> None:
    """Ingest the data, build the FAISS index and train the intent classifier (and, with
    --generator-minutes, a GPT-2 generator)."""
    config = load_config(workspace)
    if not data.is_dir():
        fail(f"data directory {data} does not exist; pass --data DIR")
    if generator_minutes < 0:
        fail(f"--generator-minutes must be 0 or more; got {generator_minutes}")
    if generator_base != "scratch" and not Path(generator_base).is_dir():
        fail(
            f"--generator-base {generator_base} is not a directory; pass a GPT-2 checkpoint "
            "directory (config.json, weights, tokenizer) or scratch"
        )
    with error_edge():
        report = build_workspace(config, data, progress=step, show_bars=True)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    out.print(
        f"Built {report.workspace} in {report.seconds:.0f}s: {report.n_units} retrieval units "
        f"({report.n_conversations} conversations, {report.n_articles} articles; {report.index_kind} index), "
        f"{len(report.intents)} intents from {report.n_intent_examples} examples.",
        highlight=False,
    )
    if generator_minutes > 0:
        step(f"training the generator (at most {generator_minutes:g} minutes)")
        with error_edge():
            outcome = round_on_data(config, data, generator_minutes, base=generator_base, progress=step)
        used = "the GPT-2 generator" if outcome["promoted"] else "the retrieval composer"
        out.print(f"Generator: {outcome['reason']}; the assistant answers with {used}.", highlight=False)


def ask(
    text: Annotated[str, typer.Argument(help="The customer's message")],
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="Continue this conversation id")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Answer one message and print the result as one JSON object."""
    config = load_config(workspace)
    with error_edge(), Assistant(config) as assistant:
        result = assistant.manager.handle(text, conversation_id=conversation, channel="cli")
    print_json(turn_to_dict(result), ensure_ascii=False)


def chat(
    workspace: WorkspaceOpt = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="Resume this conversation id")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show intent, confidence, action and sources")] = False,
) -> None:
    """Chat with the assistant in the terminal (Ctrl-D or /quit to leave)."""
    config = load_config(workspace)
    with error_edge(), Assistant(config) as assistant:
        manager = assistant.manager
        if conversation is not None and not assistant.store.conversation_exists(conversation):
            fail(f"unknown conversation id {conversation!r}; omit --conversation to start a new one")
        conversation_id = conversation or manager.start_conversation(channel="cli")
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
            except CsbotError as e:  # a bad message is said and the chat goes on
                err.print(f"[red]{e}[/]", highlight=False)
                continue
            print_turn(result, debug=debug)
        out.print(f"[dim]conversation saved as {conversation_id}[/]")


def print_turn(result: TurnResult, *, debug: bool) -> None:
    """One bot turn in the terminal: the reply, its buttons and, with `debug`, why it was chosen."""
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
        for source in result.sources[:3]:
            out.print(f"[dim]     {source.score:.2f} {source.id}: {source.text[:90]}[/]", highlight=False)


def import_(
    file: Annotated[Path, typer.Argument(help="File to import", exists=False)],
    import_format: Annotated[
        ImportFormat,
        typer.Option("--format", "-f", help="jsonl (our conversations), csv (question/answer), bitext, abcd"),
    ],
    question_column: Annotated[str, typer.Option(help="csv: the question column")] = "question",
    answer_column: Annotated[str, typer.Option(help="csv: the answer column")] = "answer",
    intent_column: Annotated[str | None, typer.Option(help="csv: an optional intent column")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Add transcripts or Q&A pairs to the index without a rebuild."""
    require_files(file)
    config = load_config(workspace)
    with error_edge():
        summary = import_file(
            config,
            file,
            import_format.value,
            progress=step,
            question_column=question_column,
            answer_column=answer_column,
            intent_column=intent_column,
        )
    print_json(summary)
