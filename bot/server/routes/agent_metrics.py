"""The support metrics for the agent panel: GET /api/v1/agent/metrics, the JSON that
`csbot report` prints (bot/metrics.py documents every key), for any signed-in agent.

The figures are a read of the whole range's conversations, so they run on the store
worker like every other store read; "today" (the default end of the range) and the
report's `generated_at` come from the app's agent clock, which tests set."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError

from bot.metrics import MetricsRangeError, check_range, parse_day, support_metrics
from bot.server.access import Ready
from bot.server.agent_auth import SignedIn, agent_clock
from bot.server.schemas import ErrorOut

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 422, 503)}
_DAY = "a UTC day, YYYY-MM-DD"


@router.get("/metrics", responses=_ERRORS)
async def metrics(
    request: Request,
    info: SignedIn,
    rt: Ready,
    since: Annotated[str, Query(max_length=32, description=f"first day of the range: {_DAY}")],
    until: Annotated[
        str | None, Query(max_length=32, description=f"last day of the range, included: {_DAY} [default: today]")
    ] = None,
) -> dict[str, Any]:
    """Support figures for the conversations started from `since` to `until`, per UTC day
    and in total (handoff and bot-resolved rates, first-response and handle times, CSAT,
    suggestion use, fallbacks, the intents that hand over most); rates with nothing to
    divide by are null. 422 `invalid_request` for a day that is not YYYY-MM-DD, a range
    that ends before it starts or one longer than 366 days."""
    now = agent_clock(request)()
    try:
        first = parse_day(since, "since")
        last = check_range(first, parse_day(until, "until") if until is not None else None, now)
    except MetricsRangeError as e:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", e.field), "msg": str(e)}]) from e
    return await rt.store.call(lambda store: support_metrics(store, first, last, now=now))
