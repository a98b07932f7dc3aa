"""`csbot report`: the support metrics of a built workspace's conversations, as JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.console import WorkspaceOpt, error_edge, load_config, print_json
from bot.metrics import check_range, parse_day, support_metrics_in_workspace

FLAGS = ("--since", "--until")  # what the range's errors call its ends


def report(
    since: Annotated[str, typer.Option("--since", help="First UTC day, YYYY-MM-DD")],
    until: Annotated[
        str | None, typer.Option("--until", help="Last UTC day, YYYY-MM-DD, included [default: today]")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Support metrics for the conversations started from --since to --until, per UTC day
    and in total: handoff and bot-resolved rates, first-response and handle times, CSAT,
    suggestion use, fallbacks, the intents that hand over most. Prints the JSON that
    GET /api/v1/agent/metrics answers."""
    with error_edge():
        first = parse_day(since, "--since")
        last = check_range(first, parse_day(until, "--until") if until is not None else None, names=FLAGS)
    config = load_config(workspace)
    with error_edge():
        figures = support_metrics_in_workspace(config.workspace, first, last, store_target=config.store_target)
    print_json(figures)
