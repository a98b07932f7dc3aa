"""The composer an assistant actually uses: the workspace's promoted GPT-2 when there is
one, the retrieval composer otherwise.

It asks the model registry for its promotion token before every turn (a hash of a small
pointer file), so `csbot models promote` or `rollback` takes effect on the next turn of a
running assistant, in every replica, without a restart. A model that fails to load leaves
the previous composer in place, and the reason is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from bot.contracts import ComposedReply, Composer, ComposeRequest
from bot.errors import CsbotError

log = logging.getLogger(__name__)


class PromotedModelComposer:
    """A `Composer` that follows the registry's promoted model."""

    def __init__(self, registry, make_generator: Callable[[Path], Composer], fallback: Composer):
        self.registry = registry
        self.make_generator = make_generator
        self.fallback = fallback
        self.current: Composer = fallback
        self.model_id: str | None = None
        self._token: str | None = None
        self.refresh()

    @property
    def name(self) -> str:
        return self.current.name

    def refresh(self) -> None:
        """Switch to the promoted model if the promotion changed since the last look."""
        try:
            token = self.registry.promotion_token()
            if token == self._token:
                return
            entry = self.registry.promoted()
            if entry is None:
                self.current, self.model_id = self.fallback, None
            else:
                self.current, self.model_id = self.make_generator(entry.path).load(), entry.id
                log.info("composer: using promoted model %s", entry.id)
            self._token = token
        except CsbotError as e:
            log.warning("composer: keeping %s (%s)", self.model_id or "retrieval", e)

    def compose(self, request: ComposeRequest) -> ComposedReply:
        self.refresh()
        return self.current.compose(request)
