"""`csbot report`: the metrics JSON of a workspace's store on stdout, and bad dates or a
missing build as one line on stderr (the real Typer app, a real SQLite store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.store import ConversationStore
from bot.workspace import WORKSPACE_FORMAT
from tests.bot import metrics_data


@pytest.fixture
def workspace(tmp_path):
    """A workspace as far as the report needs one: a manifest and a filled store."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workspace.json").write_text(json.dumps({"format": WORKSPACE_FORMAT}))
    with ConversationStore(ws / "store.db").open() as store:
        metrics_data.fill(store)
    return ws


def csbot(*args: str):
    return CliRunner().invoke(app, list(args))


def test_prints_the_figures_of_the_range_as_one_json_line(workspace):
    result = csbot(
        "report", "--since", metrics_data.SINCE, "--until", metrics_data.UNTIL, "--workspace", str(workspace)
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert (report["since"], report["until"]) == ("2024-05-01", "2024-05-03")
    assert report["totals"] == metrics_data.TOTALS
    assert [d["date"] for d in report["days"]] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert report["handoff_intents"] == metrics_data.HANDOFF_INTENTS


def test_without_until_the_range_ends_today(workspace):
    since = datetime.now(UTC).date() - timedelta(days=2)
    result = csbot("report", "--since", since.isoformat(), "--workspace", str(workspace))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # the range reaches the day the report was made (the wall clock: the CLI has no other)
    assert report["until"] == report["generated_at"][:10]
    assert report["days"][0]["date"] == since.isoformat()
    assert report["days"][-1]["date"] == report["until"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2024-5-1"], "error: --since '2024-5-1' is not a date; give it as YYYY-MM-DD"),
        (["--since", "2024-05-01", "--until", "May 3"], "error: --until 'May 3' is not a date"),
        (["--since", "2024-05-03", "--until", "2024-05-01"], "error: --until 2024-05-01 is before --since 2024-05-03"),
        (["--since", "2020-01-01", "--until", "2024-01-01"], "a report covers at most 366: ask for the range in parts"),
    ],
)
def test_a_bad_range_is_one_line_on_stderr_and_exit_code_1(workspace, args, message):
    result = csbot("report", *args, "--workspace", str(workspace))
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_a_missing_build_says_how_to_make_one(tmp_path):
    result = csbot("report", "--since", "2024-05-01", "--until", "2024-05-03", "--workspace", str(tmp_path / "none"))
    assert result.exit_code == 1
    assert "run `csbot build --workspace" in result.stderr
    assert not (tmp_path / "none" / "store.db").exists()
