"""The app factory: `create_app(settings)` builds a FastAPI app that is cheap to make;
its lifespan loads the assistants on their worker threads (GET /readyz says when).

Typed errors from below become HTTP statuses here (the exception handlers), through the
one table in `bot.server.errors`; routes and the dialogue layer never build error
responses themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.errors import CsbotError
from bot.server.batching import BatchingModels
from bot.server.disconnect import CancelOnDisconnectMiddleware
from bot.server.errors import error_response
from bot.server.limits import BodySizeLimitMiddleware, IpRateLimitMiddleware
from bot.server.retention import purge_forever
from bot.server.routes import (
    agent_admin,
    agent_assist,
    agent_conversations,
    agent_events,
    agent_metrics,
    agent_page,
    agent_session,
    conversations,
    events,
    feedback,
    health,
    rasa,
    webhooks,
    widget,
)
from bot.server.runtime import Runtime
from bot.settings import CsbotSettings
from bot.store.replicas import ReplicaHeartbeat, replica_settings
from bot.workspace import Assistant


def create_app(
    settings: CsbotSettings,
    assistant_factory: Callable[[], Assistant] | None = None,
    *,
    replica_id: str | None = None,
) -> FastAPI:
    """The csbot HTTP app. `assistant_factory` makes one loaded `Assistant` per
    inference worker, on that worker's thread (default: the settings' workspace, with
    max(1, cores // workers) torch threads each, see `CsbotSettings.for_inference_worker`).
    `replica_id`: the row `csbot serve` registered for this process in the store's replicas
    table (`bot.store.replicas`), kept fresh while serving and removed at shutdown; None (an
    app made in tests or embedded): no registration."""
    models: BatchingModels | None = None
    if assistant_factory is None:
        worker_settings = settings.for_inference_worker()
        server = settings.server
        if server.batching:  # one set of models for all workers, loaded by the first to start
            models = BatchingModels(
                window_ms=server.batch_window_ms,
                max_batch=server.batch_max_turns,
                torch_threads=server.threads_per_batcher(),
                decoder_threads=server.threads_per_decoder(),
                decode_rows=server.decode_rows,
            )

        def assistant_factory() -> Assistant:
            shared = models.get(worker_settings) if models is not None else None
            return Assistant(worker_settings, shared=shared).load()

    runtime = Runtime(settings, assistant_factory, models)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # load in the background: the server answers /healthz (and 503 on /readyz) meanwhile
        loading = asyncio.create_task(runtime.start())
        purging = asyncio.create_task(purge_forever(runtime, loading))
        # a replica started by `csbot serve` (registered there, before the port opened):
        # its row in the store stays fresh while it serves and goes when it shuts down
        heartbeat = _replica_heartbeat(settings, replica_id)
        try:
            yield
        finally:
            if heartbeat is not None:
                await asyncio.to_thread(heartbeat.stop)
            purging.cancel()
            await loading  # a load in progress finishes on its threads before they close
            await runtime.close()

    app = FastAPI(
        title="csbot",
        version=_version(),
        summary="A customer-service assistant: REST, streamed replies (SSE) and a Rasa-compatible REST channel.",
        lifespan=lifespan,
        # the schema stays at /openapi.json; the interactive pages are off because they load
        # their scripts from a public CDN, and csbot makes no third-party calls
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    routers = (health, conversations, events, feedback, rasa, webhooks, widget)
    panel = (agent_session, agent_conversations, agent_assist, agent_events, agent_admin, agent_metrics, agent_page)
    for module in (*routers, *panel):
        app.include_router(module.router)
    _add_error_handlers(app)

    # the last added runs first: CORS (so that 413/429 answers carry its headers), the
    # per-client limit, then the body-size limit, then the cancelling of a handler whose
    # client left, then the routes
    app.add_middleware(CancelOnDisconnectMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(
        IpRateLimitMiddleware,
        clients=runtime.clients,
        limiter=runtime.ip_limiter,
    )
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Content-Type", "Accept", "Last-Event-ID", "X-Conversation-Token", "X-CSRF-Token"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
    return app


def _replica_heartbeat(settings: CsbotSettings, replica_id: str | None) -> ReplicaHeartbeat | None:
    """The running heartbeat of the replica `csbot serve` registered, or None without one."""
    if replica_id is None:
        return None
    heartbeat = ReplicaHeartbeat(
        settings.store_target,
        replica_id,
        replica_settings(settings),
        settings.server.replica_live_seconds,
    )
    heartbeat.start()
    return heartbeat


def _add_error_handlers(app: FastAPI) -> None:
    async def csbot_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's list of {type, loc, msg} (loc names the field), without echoing the
        # input back: it may be the very 16 KB of markup that was refused
        assert isinstance(exc, RequestValidationError)
        detail = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"code": "invalid_request", "detail": detail}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        # the framework's own answers (no such path, method not allowed) in the same shape
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"code": code, "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    app.add_exception_handler(CsbotError, csbot_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, csbot_error)  # 500, logged, no internals in the body


def _version() -> str:
    try:
        return version("csbot")
    except PackageNotFoundError:
        return "0"
