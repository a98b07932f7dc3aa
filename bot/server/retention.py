"""Retention: with CSBOT_RETENTION_DAYS set, conversations idle longer than that are
erased (store and training pairs, through `bot.privacy`), once when the server is ready
and then every hour, on the store worker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.privacy import purge_idle
from bot.server.runtime import Runtime

log = logging.getLogger("csbot.server")

PURGE_EVERY_SECONDS = 3600.0


async def purge_forever(rt: Runtime, loading: asyncio.Task[None], every_seconds: float = PURGE_EVERY_SECONDS) -> None:
    """Once `loading` is done, purge now and every `every_seconds` until cancelled (the
    app's shutdown)."""
    days = rt.settings.server.retention_days
    if days is None:
        return
    await asyncio.shield(loading)  # shielded: cancelling the purge must not cancel the load
    workspace = Path(rt.settings.workspace)
    while True:
        if rt.ready:  # ready: the store worker is there
            try:
                report = await rt.store.call(lambda store: purge_idle(store, workspace, days))
                if report.conversations:
                    log.info("retention: erased %d conversation(s) idle over %g days", len(report.conversations), days)
            except Exception:
                log.exception("retention: the purge failed; it runs again in %g s", every_seconds)
        await asyncio.sleep(every_seconds)
