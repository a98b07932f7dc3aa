"""Signing in to the agent panel, reading the session back, and signing out.

Signing in sets the `csbot_agent` cookie (HttpOnly, SameSite=Lax, Path=/, and Secure
when the request came over https, directly or through a trusted proxy) and returns the
session's CSRF token; a reloaded page gets that token again from GET, since the cookie
itself is out of its scripts' reach. Failed sign-ins are throttled per name and per
client address (429 + Retry-After).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from bot.agents.clock import parse_timestamp
from bot.agents.errors import CsrfError
from bot.server.agent_auth import (
    COOKIE_NAME,
    Ready,
    SessionCookie,
    SignedIn,
    SignedInWrite,
    agent_clock,
    came_over_https,
    run_agents,
)
from bot.server.agent_schemas import SessionOut, SignInIn
from bot.server.schemas import ErrorOut

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 429, 503)}


@router.post("/session", response_model=SessionOut, responses=_ERRORS)
async def sign_in(body: SignInIn, request: Request, response: Response, rt: Ready) -> dict:
    """Sign in with a name and password: the session (with its CSRF token) and its cookie.
    401 `sign_in_failed` for a wrong name or password or a disabled account alike; 429
    `sign_in_throttled` after CSBOT_AGENT_MAX_FAILED_SIGN_INS failures for the name or from
    the address within CSBOT_AGENT_SIGN_IN_WINDOW_MINUTES."""
    _same_origin(request)
    address = rt.clients.key(request.scope)
    token, info = await run_agents(request, lambda s: s.sessions.sign_in(body.name, body.password, address))
    seconds = (parse_timestamp(info.expires_at) - agent_clock(request)()).total_seconds()
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=max(0, int(seconds)),
        path="/",
        secure=came_over_https(request),
        httponly=True,
        samesite="lax",
    )
    return info.to_json()


def _same_origin(request: Request) -> None:
    """Another site's page may not sign a browser in (into an account of the attacker's
    choosing). Browsers mark a request a page of another site made with
    `Sec-Fetch-Site: cross-site`; unlike Origin against Host, that holds behind proxies
    that rewrite Host. Clients that send no such header (scripts, curl) are not browsers."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise CsrfError()


@router.get("/session", response_model=SessionOut, responses=_ERRORS)
async def current_session(info: SignedIn) -> dict:
    """The signed-in agent and the session's CSRF token (401 `not_signed_in` when none)."""
    return info.to_json()


@router.delete("/session", status_code=204, response_class=Response, responses=_ERRORS)
async def sign_out(request: Request, info: SignedInWrite, cookie: SessionCookie = None) -> Response:
    """End the session and clear its cookie."""
    await run_agents(request, lambda s: s.sessions.sign_out(cookie))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", secure=came_over_https(request), httponly=True, samesite="lax")
    return response
