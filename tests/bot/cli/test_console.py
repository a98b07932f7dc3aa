"""The CLI's shared edge: typed errors become one line on stderr and exit code 1; other
exceptions keep their traceback; results are one JSON line on stdout."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from bot.cli.console import error_edge, fail, print_json, require_files
from bot.errors import CsbotError


def run(command) -> object:
    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)  # two commands: typer runs the named one
    return CliRunner().invoke(app, [command.__name__])


def test_a_typed_error_is_one_message_and_exit_code_1() -> None:
    def broken() -> None:
        with error_edge():
            raise CsbotError("index missing: run `csbot build` first")

    result = run(broken)
    assert result.exit_code == 1
    assert "error: index missing: run `csbot build` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_untyped_error_is_a_bug_and_keeps_its_traceback() -> None:
    def buggy() -> None:
        with error_edge():
            raise KeyError("oops")

    result = run(buggy)
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_fail_exits_with_the_code_given() -> None:
    def refused() -> None:
        fail("--port must be a number", code=2)

    result = run(refused)
    assert result.exit_code == 2 and "--port must be a number" in result.stderr


def test_require_files_names_the_missing_one(tmp_path) -> None:
    present = tmp_path / "a.csv"
    present.write_text("x")

    def check() -> None:
        require_files(present, tmp_path / "b.csv")

    result = run(check)
    assert result.exit_code == 1 and "b.csv does not exist or is not a file" in result.stderr


@pytest.mark.parametrize(
    ("ensure_ascii", "expected"), [(True, '{"reply": "caf\\u00e9"}\n'), (False, '{"reply": "café"}\n')]
)
def test_print_json_writes_one_line(capsys, ensure_ascii, expected) -> None:
    print_json({"reply": "café"}, ensure_ascii=ensure_ascii)
    assert capsys.readouterr().out == expected
