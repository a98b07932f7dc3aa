"""Who is using the agent panel: the FastAPI dependencies every panel route declares.

An agent signs in once (POST /api/v1/agent/session) and gets the `csbot_agent` cookie:
a random token whose SHA-256 is the session's key in the store (bot/agents/sessions.py).
The cookie is HttpOnly, so page scripts never see it; state-changing calls also carry the
session's CSRF token in the `X-CSRF-Token` header, which another site's form or script
cannot read or set, so a cookie the browser attaches on its own proves nothing alone.

    SignedIn       any signed-in agent (401 otherwise)
    SignedInWrite  the same, and the X-CSRF-Token header matches (403 otherwise)
    AdminIn        an admin (403 for role agent)
    AdminWrite     an admin, with the CSRF header

The bot/agents objects hold the store connection they were made with, so they are made
inside each store call, on the runtime's store worker: `await run_agents(request, fn)`
runs `fn(agent_services(request, store))` there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import Cookie, Depends, Header, Request

from bot.agents.accounts import AgentAccounts
from bot.agents.errors import ForbiddenError, NotSignedInError
from bot.agents.handling import ConversationHandling
from bot.agents.notes import AgentNotes
from bot.agents.sessions import AgentSessions, SessionInfo
from bot.agents.suggestions import SuggestionLog
from bot.server.runtime import Runtime, ready_runtime
from bot.store import ConversationStore

T = TypeVar("T")

COOKIE_NAME = "csbot_agent"
CSRF_HEADER = "X-CSRF-Token"
# a cookie value longer than any token we issue is junk: refused without a store lookup
_MAX_TOKEN_CHARS = 256

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def agent_clock(request: Request) -> Clock:
    """The app's clock for sessions and handling (`app.state.agent_clock`; tests replace
    it to move time forward), else the wall clock."""
    clock: Clock | None = getattr(request.app.state, "agent_clock", None)
    return clock if clock is not None else _utc_now


@dataclass(frozen=True)
class AgentServices:
    """The bot/agents objects over one store connection. Made and used only on the
    thread that owns that connection (inside `rt.store.call`)."""

    store: ConversationStore
    accounts: AgentAccounts
    sessions: AgentSessions
    handling: ConversationHandling
    notes: AgentNotes
    suggestions: SuggestionLog


def agent_services(request: Request, store: ConversationStore) -> AgentServices:
    """The panel's services bound to `store`, with the app's clock and the server
    settings' session limits. Call it inside a store-worker call."""
    clock = agent_clock(request)
    server = request.app.state.runtime.settings.server
    accounts = AgentAccounts(store, clock=clock)
    sessions = AgentSessions(
        store,
        accounts,
        hours=server.agent_session_hours,
        idle_minutes=server.agent_idle_minutes,
        max_failures=server.agent_max_failed_sign_ins,
        failure_window_minutes=server.agent_sign_in_window_minutes,
        clock=clock,
    )
    return AgentServices(
        store=store,
        accounts=accounts,
        sessions=sessions,
        handling=ConversationHandling(store, clock=clock),
        notes=AgentNotes(store, clock=clock),
        suggestions=SuggestionLog(store, clock=clock),
    )


async def run_agents(request: Request, fn: Callable[[AgentServices], T]) -> T:
    """`fn(services)` on the runtime's store worker (the app must be ready)."""
    rt: Runtime = request.app.state.runtime
    return await rt.store.call(lambda store: fn(agent_services(request, store)))


def came_over_https(request: Request) -> bool:
    """Whether the browser reached us over https: the request's own scheme, or the
    X-Forwarded-Proto of a trusted proxy (CSBOT_TRUSTED_PROXIES) that ended the TLS. The
    session cookie is then marked Secure, so the browser never sends it over plain http."""
    if request.url.scheme == "https":
        return True
    trusted = request.app.state.runtime.clients.trusted
    client = request.scope.get("client")
    if not trusted or not client:
        return False
    try:
        peer = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    if not any(peer.version == net.version and peer in net for net in trusted):
        return False
    # the first proxy (the one that ended the TLS) wrote the leftmost entry
    forwarded = request.headers.get("x-forwarded-proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


Ready = Annotated[Runtime, Depends(ready_runtime)]
SessionCookie = Annotated[
    str | None, Cookie(alias=COOKIE_NAME, description="set by POST /api/v1/agent/session", include_in_schema=False)
]
CsrfHeader = Annotated[
    str | None,
    Header(alias=CSRF_HEADER, description="the csrf_token of GET or POST /api/v1/agent/session"),
]


def _cookie_token(cookie: str | None) -> str:
    if not cookie:
        raise NotSignedInError("missing")
    if len(cookie) > _MAX_TOKEN_CHARS:
        raise NotSignedInError("unknown")
    return cookie


async def signed_in(request: Request, rt: Ready, cookie: SessionCookie = None) -> SessionInfo:
    """Dependency: the session of the request's cookie (401 `not_signed_in` with its
    reason when there is none, or it expired, or its agent was disabled)."""
    token = _cookie_token(cookie)
    return await run_agents(request, lambda s: s.sessions.authenticate(token))


async def signed_in_write(
    request: Request, rt: Ready, cookie: SessionCookie = None, csrf: CsrfHeader = None
) -> SessionInfo:
    """Dependency: `signed_in`, and the X-CSRF-Token header matches the session's token
    (403 `csrf_failed` otherwise). One store call for both."""
    token = _cookie_token(cookie)

    def check(s: AgentServices) -> SessionInfo:
        info = s.sessions.authenticate(token)
        s.sessions.check_csrf(info, csrf or "")
        return info

    return await run_agents(request, check)


def _admin(info: SessionInfo) -> SessionInfo:
    if info.agent.role != "admin":
        raise ForbiddenError("only an admin may do this; ask an admin to do it or to make you one")
    return info


async def admin_in(info: Annotated[SessionInfo, Depends(signed_in)]) -> SessionInfo:
    """Dependency: a signed-in admin (403 `forbidden` for role agent)."""
    return _admin(info)


async def admin_write(info: Annotated[SessionInfo, Depends(signed_in_write)]) -> SessionInfo:
    """Dependency: a signed-in admin whose X-CSRF-Token header matches."""
    return _admin(info)


SignedIn = Annotated[SessionInfo, Depends(signed_in)]
SignedInWrite = Annotated[SessionInfo, Depends(signed_in_write)]
AdminIn = Annotated[SessionInfo, Depends(admin_in)]
AdminWrite = Annotated[SessionInfo, Depends(admin_write)]
