"""Who may read and write a conversation through the public API.

A conversation made with POST /api/v1/conversations gets a secret access token, returned
once and stored only as its SHA-256 (the token is 32 random bytes, so a plain hash is as
good as a slow one: nothing to brute-force). Every other call on that conversation sends
the token in the `X-Conversation-Token` header - never in a URL, where it would end up in
access logs and browser history - and a missing or wrong token gets the very 404 an
unknown id gets, so nobody learns which ids exist. A conversation idle longer than
CSBOT_CONVERSATION_READ_HOURS stops answering to its token.

Channels that name conversations themselves (the Rasa REST sender, messaging platforms)
never get a token: their conversation ids are an HMAC of the channel's own id under the
server's secret, so nobody can compute one from public input, and the public API never
reads them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi import Path as PathParam

from bot.errors import UnknownConversationError
from bot.server.runtime import Runtime, ready_runtime
from bot.server.schemas import CONVERSATION_ID_PATTERN
from bot.store import ConversationStore

log = logging.getLogger("csbot.server")

TOKEN_HEADER = "X-Conversation-Token"
SECRET_FILE = "secret.key"


def new_access_token() -> str:
    """A fresh conversation token: 32 random bytes, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def channel_conversation_id(secret: bytes, channel: str, external_id: str) -> str:
    """The conversation a platform user or thread talks in: the same input, the same id;
    without the secret, no id can be computed from the (public) external id."""
    mac = hmac.new(secret, f"{channel}\x00{external_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def load_or_create_secret(workspace: Path, configured: str | None) -> bytes:
    """The server secret: CSBOT_SECRET_KEY when set, else `<workspace>/secret.key`,
    created on first use (random, mode 0600). Replicas that share a workspace share it;
    replicas with their own workspaces must be given the same CSBOT_SECRET_KEY."""
    if configured:
        return configured.encode("utf-8")
    path = workspace / SECRET_FILE
    # Written whole to a private temporary file, then hard-linked into place: link() fails
    # when the name exists, so of two processes starting at once one creates the secret
    # and the other reads it, and neither ever reads a half-written file.
    value = secrets.token_hex(32).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{SECRET_FILE}.", dir=workspace)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(value + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            existing = path.read_bytes().strip()
            if len(existing) < 32:
                raise ValueError(f"{path} holds a secret shorter than 32 bytes; delete it to make a new one") from None
            return existing
    finally:
        os.unlink(tmp)
    log.info("created a server secret in %s (set CSBOT_SECRET_KEY to share one between replicas)", path)
    return value


ConversationId = Annotated[
    str, PathParam(pattern=CONVERSATION_ID_PATTERN, description="from POST /api/v1/conversations")
]
Ready = Annotated[Runtime, Depends(ready_runtime)]


async def authorized_conversation(
    conversation_id: ConversationId,
    rt: Ready,
    x_conversation_token: Annotated[
        str | None,
        Header(description="the access_token that POST /api/v1/conversations returned"),
    ] = None,
) -> str:
    """Dependency: the path's conversation id once its token checks out; else the 404
    of an unknown conversation (UnknownConversationError)."""
    # a malformed token is just a wrong one: the same 404, not a 422 that tells them apart
    if not x_conversation_token or len(x_conversation_token) > 128:
        raise UnknownConversationError(conversation_id)
    ok = await rt.store.call(
        ConversationStore.access_ok,
        conversation_id,
        token_hash(x_conversation_token),
        rt.settings.server.conversation_read_hours,
    )
    if not ok:
        raise UnknownConversationError(conversation_id)
    return conversation_id


AuthorizedConversation = Annotated[str, Depends(authorized_conversation)]


async def room_for_a_turn(rt: Ready) -> None:
    """Dependency, declared before the conversation's: while the turn queue is full, a
    message is refused at once (503 `busy` with Retry-After), before its token is checked
    on the store thread: under a burst, a request refused anyway should not first wait
    there behind hundreds of token checks (with 300 at once on 2 cores it took about 0.5 s
    off a refusal's median; `bench/bench_serve_load.py --burst`, docs/benchmarks.md).
    "Busy" tells a caller without a token nothing about any conversation."""
    rt.pool.queue.refuse_if_full()


RoomForATurn = Annotated[None, Depends(room_for_a_turn)]


def server_secret(request: Request) -> bytes:
    """Dependency: the server secret (loaded or created once per app, then kept)."""
    secret = getattr(request.app.state, "server_secret", None)
    if secret is None:
        settings = request.app.state.runtime.settings
        secret_key = settings.server.secret_key
        configured = secret_key.get_secret_value() if secret_key is not None else None
        secret = load_or_create_secret(Path(settings.workspace), configured)
        request.app.state.server_secret = secret
    return secret


ServerSecret = Annotated[bytes, Depends(server_secret)]
