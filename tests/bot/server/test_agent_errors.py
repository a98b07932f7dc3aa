"""How the agent panel's errors read on the wire, and when its cookie is Secure (fast:
no server, no models)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from bot.agents.errors import (
    ConversationHeldError,
    ConversationResolvedError,
    CsrfError,
    ForbiddenError,
    InvalidTransitionError,
    NotSignedInError,
    SignInFailedError,
    SignInThrottledError,
    UnknownAgentError,
)
from bot.server.agent_auth import came_over_https
from bot.server.errors import UnknownPanelConversationError, error_response
from bot.server.limits import ClientAddresses
from finetune.registry import NothingToRollBackError, UnknownModelError


def _body(exc: Exception) -> tuple[int, dict, dict[str, str]]:
    response = error_response(exc)
    return response.status_code, json.loads(bytes(response.body)), dict(response.headers)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (NotSignedInError("missing"), 401, "not_signed_in"),
        (SignInFailedError(), 401, "sign_in_failed"),
        (CsrfError(), 403, "csrf_failed"),
        (ForbiddenError("only an admin may do this"), 403, "forbidden"),
        (ConversationResolvedError("c1"), 409, "conversation_resolved"),
        (InvalidTransitionError("it is handled by the bot"), 409, "invalid_transition"),
        (NothingToRollBackError(None), 409, "invalid_transition"),
        (UnknownAgentError("zed"), 404, "not_found"),
        (UnknownModelError("gen-1", []), 404, "not_found"),
        (UnknownPanelConversationError("c1"), 404, "not_found"),
    ],
)
def test_each_panel_error_has_its_status_and_code(exc, status, code):
    got_status, body, _ = _body(exc)
    assert (got_status, body["code"]) == (status, code)
    assert body["detail"] == str(exc)


def test_a_held_conversation_names_the_holder_in_the_body():
    status, body, _ = _body(ConversationHeldError("ann", "c1"))
    assert status == 409 and body["code"] == "conversation_held"
    assert body["holder"] == "ann" and "ann" in body["detail"]


def test_not_signed_in_says_why():
    assert _body(NotSignedInError("expired"))[1]["reason"] == "expired"


def test_a_throttled_sign_in_says_when_to_retry():
    status, body, headers = _body(SignInThrottledError(42))
    assert status == 429 and body["code"] == "sign_in_throttled"
    assert headers["retry-after"] == "42"


def _request(peer: str, trusted: list[str], scheme: str = "http", proto: str | None = None) -> Request:
    app = FastAPI()
    app.state.runtime = SimpleNamespace(clients=ClientAddresses(trusted))
    headers = [(b"host", b"panel.example")]
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "path": "/api/v1/agent/session",
        "query_string": b"",
        "headers": headers,
        "client": (peer, 50000),
        "server": ("panel.example", 80),
        "app": app,
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("peer", "trusted", "scheme", "proto", "secure"),
    [
        ("203.0.113.5", [], "https", None, True),  # TLS straight to us
        ("203.0.113.5", [], "http", None, False),
        ("10.0.0.7", ["10.0.0.0/8"], "http", "https", True),  # a trusted proxy ended the TLS
        ("10.0.0.7", ["10.0.0.0/8"], "http", "https, http", True),
        ("10.0.0.7", ["10.0.0.0/8"], "http", "http", False),
        ("203.0.113.5", ["10.0.0.0/8"], "http", "https", False),  # anyone else's header proves nothing
        ("::ffff:10.0.0.7", ["10.0.0.0/8"], "http", "https", True),
    ],
)
def test_the_cookie_is_secure_only_for_https_seen_by_us_or_a_trusted_proxy(peer, trusted, scheme, proto, secure):
    assert came_over_https(_request(peer, trusted, scheme, proto)) is secure
