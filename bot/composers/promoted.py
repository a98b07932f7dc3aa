"""The composer an assistant actually uses: the workspace's promoted GPT-2 when there is
one, the retrieval composer otherwise.

It asks the model registry for its promotion token before every turn (a hash of a small
pointer file), so `csbot models promote` or `rollback` takes effect on the next turn of a
running assistant, in every replica, without a restart.

A broken promotion must never cost a customer their reply: a pointer that is malformed or
names a missing model, or a promoted model that fails to load (missing or corrupt files),
makes the assistant answer with the retrieval composer, the safe baseline, rather than keep
a model the operator moved away from. The error is logged once per pointer change, not on
every turn; the next promote, rollback or retire is tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Protocol

from bot.contracts import ComposedReply, Composer, ComposeRequest, compose_streaming

log = logging.getLogger(__name__)
_UNSET = object()


class PromotedModel(Protocol):
    """The registry entry of a promoted model: its id and its directory."""

    @property
    def id(self) -> str: ...

    @property
    def path(self) -> Path: ...


class Promotions(Protocol):
    """Where the promoted model is read from (`finetune.registry.ModelRegistry`)."""

    def promotion_token(self) -> str | None: ...

    def promoted(self) -> PromotedModel | None: ...


class LoadableComposer(Composer, Protocol):
    """A composer whose model loads on `load()` (which raises when it cannot)."""

    def load(self) -> Composer: ...


class PromotedModelComposer:
    """A `Composer` that follows the registry's promoted model."""

    def __init__(self, registry: Promotions, make_generator: Callable[[Path], LoadableComposer], fallback: Composer):
        self.registry = registry
        self.make_generator = make_generator
        self.fallback = fallback
        self.current: Composer = fallback
        self.model_id: str | None = None
        self.error: str | None = None  # why the promoted model is not in use, while it is not
        self._token: object = _UNSET  # the promotion token last acted on
        self.refresh()

    @property
    def name(self) -> str:
        return self.current.name

    @property
    def hits_wanted(self) -> int:
        return self.current.hits_wanted

    def refresh(self) -> None:
        """Switch to the promoted model if the promotion changed since the last look; on a
        broken promotion, to the retrieval composer (logged once for this pointer)."""
        try:
            token = self.registry.promotion_token()
        except Exception as e:  # noqa: BLE001 - a registry we cannot even read: keep answering
            token = f"error:{type(e).__name__}"
        if token == self._token:
            return
        self._token = token
        try:
            entry = self.registry.promoted()
            if entry is None:
                self.current, self.model_id = self.fallback, None
            elif entry.id != self.model_id:
                # whatever a load raises (a corrupt file raises its library's own types) ends here
                self.current, self.model_id = self.make_generator(entry.path).load(), entry.id
                log.info("composer: using promoted model %s", entry.id)
            self.error = None
        except Exception as e:  # noqa: BLE001 - see above: a turn must not fail on a broken model
            self.current, self.model_id = self.fallback, None
            self.error = f"{type(e).__name__}: {e}"
            log.error(
                "composer: the promoted model cannot be used, answering with the retrieval composer "
                "until the promotion changes (%s). Fix: `csbot models promote ID` or `csbot models retire`",
                self.error,
            )

    def compose(self, request: ComposeRequest) -> ComposedReply:
        self.refresh()
        return self.current.compose(request)

    def compose_stream(self, request: ComposeRequest) -> Generator[str, None, ComposedReply]:
        """The current composer's `compose_stream` where it has one; else its whole reply."""
        self.refresh()
        return (yield from compose_streaming(self.current, request))
