"""`csbot serve`: check the settings and the build, register this replica (refused when the
workspace's running replicas have other settings), then hand over to the HTTP service."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from bot.cli.console import WorkspaceOpt, err, error_edge
from bot.errors import CsbotError
from bot.settings import CsbotSettings
from bot.store.admin import refuse_newer_schema
from bot.store.connection import StoreConnection
from bot.store.replicas import new_replica_id, register_replica, replica_settings, unregister_replica
from bot.workspace import read_manifest


def serve(
    workspace: WorkspaceOpt = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on [env CSBOT_HOST; default 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port [env CSBOT_PORT; default 8000]")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="Inference workers (threads, one loaded assistant each) [env CSBOT_WORKERS; default 1]"
        ),
    ] = None,
) -> None:
    """Serve the assistant over HTTP: REST API, streamed replies (SSE), Rasa REST channel, the widget and /demo."""
    flags = {"host": host, "port": port, "workers": workers}
    with error_edge():  # a bad flag or CSBOT_* value: InvalidSettingsError, naming it
        settings = CsbotSettings.from_env(workspace, server={k: v for k, v in flags.items() if v is not None})
        read_manifest(settings.workspace)  # a missing build is refused here, before the port opens
        # a store migrated by a newer csbot: refused here too, in one line (a replica of an
        # older release must not serve it), before the port opens
        store_path = settings.store_target
        refuse_newer_schema(store_path)
        # replicas of one workspace must agree on what a turn computes and how turns are
        # ordered: one started with other settings is refused here, naming the difference
        replica_id, settings_map = new_replica_id(), replica_settings(settings)
        live_seconds = settings.server.replica_live_seconds
        with StoreConnection(store_path) as store:  # creates and migrates it, as the server's open would
            register_replica(store.db, replica_id, settings_map, live_seconds=live_seconds)
    # fastapi and uvicorn load only when a server is started, not for every csbot command
    from bot.server.serve import serve as run_server

    err.print(
        f"[cyan]•[/] serving {settings.workspace} on http://{settings.server.host}:{settings.server.port} "
        f"({settings.server.workers} inference worker(s); the models load in the background, GET /readyz)",
        highlight=False,
    )
    try:
        run_server(settings, replica_id=replica_id)  # the app keeps the row fresh, and removes it at shutdown
    finally:  # the app's shutdown removed it already; this covers a server that never started
        with contextlib.suppress(CsbotError), StoreConnection(store_path) as store:
            unregister_replica(store.db, replica_id)
