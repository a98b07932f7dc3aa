"""`csbot serve`: check the settings and the build, then hand over to the HTTP service."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.console import WorkspaceOpt, err, error_edge
from bot.settings import CsbotSettings
from bot.store.admin import refuse_newer_schema
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
        refuse_newer_schema(settings.workspace / "store.db")
    # fastapi and uvicorn load only when a server is started, not for every csbot command
    from bot.server.serve import serve as run_server

    err.print(
        f"[cyan]•[/] serving {settings.workspace} on http://{settings.server.host}:{settings.server.port} "
        f"({settings.server.workers} inference worker(s); the models load in the background, GET /readyz)",
        highlight=False,
    )
    run_server(settings)
