"""Run the app under uvicorn (what `csbot serve` does), ending live event streams as soon
as a shutdown starts.

uvicorn's graceful shutdown waits for open connections to close, and a live events
stream never closes by itself: without this hook every Ctrl-C or rolling deploy would
wait out the grace period and then cancel the streams with an error. The streams end
cleanly instead, and clients reconnect (to another replica, or this one once it is back)
with Last-Event-ID, losing nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import FrameType

import uvicorn

from bot.server.app import create_app
from bot.settings import CsbotSettings


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]):
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def serve(settings: CsbotSettings, *, replica_id: str | None = None) -> None:
    """Serve csbot on settings.server.host:settings.server.port until SIGINT/SIGTERM.
    `replica_id`: this process's row in the store's replicas table (`csbot serve` registered
    it), kept fresh while serving and removed at shutdown."""
    app = create_app(settings, replica_id=replica_id)
    # proxy headers off: uvicorn would believe X-Forwarded-For from loopback; the app
    # works out the client itself, from CSBOT_TRUSTED_PROXIES only (bot.server.limits)
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        # uvicorn annotates int but hands it to asyncio.wait_for, which takes float seconds
        timeout_graceful_shutdown=settings.server.shutdown_grace_seconds,  # type: ignore[arg-type]
        proxy_headers=False,
    )
    # uvicorn re-raises the Ctrl-C it handled, after a clean shutdown
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, app.state.runtime.begin_shutdown).run()
