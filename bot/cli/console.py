"""What every `csbot` command shares: the two consoles, the error edge (typed errors become
one line on stderr and exit code 1, here and nowhere below), the progress printer, the
--workspace option and the one place the config is built."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from bot.errors import CsbotError
from bot.settings import CsbotSettings

out = Console()
err = Console(stderr=True)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Built assistant directory [env CSBOT_WORKSPACE; default ./.csbot]"),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Say what is wrong on stderr and exit with `code`."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def error_edge() -> Iterator[None]:
    """Turns csbot's typed errors (any `CsbotError`) into their message and exit code 1;
    anything else is a bug and keeps its traceback."""
    try:
        yield
    except CsbotError as e:
        fail(str(e))


def step(message: str) -> None:
    """The CLI's `retrieval.progress.Progress`: one line of progress on stderr."""
    err.print(f"[cyan]•[/] {message}", highlight=False)


def load_config(workspace: Path | None) -> CsbotSettings:
    """The config from CSBOT_* variables and --workspace; a bad value exits with its message."""
    try:
        return CsbotSettings.from_env(workspace)
    except ValueError as e:
        fail(str(e))


def require_files(*paths: Path) -> None:
    """Exit unless every path is an existing file."""
    for path in paths:
        if not path.is_file():
            fail(f"{path} does not exist or is not a file")


def print_json(value: object, *, ensure_ascii: bool = True) -> None:
    """The command's result: one JSON object on the last line of stdout."""
    sys.stdout.write(json.dumps(value, ensure_ascii=ensure_ascii) + "\n")
