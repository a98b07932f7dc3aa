"""The channel tests' fixtures: a real SQLite store, a clock moved by hand, the fake
platform server on 127.0.0.1, and a channel worker wired to all three with a real
dialogue manager (the fakes of tests/fakes.py for its models)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr

from bot.channels.base import Channel
from bot.channels.config import ChannelsConfig
from bot.channels.registry import enabled_channels
from bot.channels.worker import ChannelWorker
from bot.contracts import TurnResult
from bot.dialogue import DialogueManager
from bot.domain import Domain
from bot.settings import DialogueConfig
from bot.store import ConversationStore
from tests.bot.channels.fake_platform import FakePlatform
from tests.bot.channels.slack_payloads import BOT_TOKEN, SIGNING_SECRET
from tests.fakes import FakeComposer, FixedRetriever, HashingEmbedder, ScriptedClassifier, hit, prediction

T = TypeVar("T")
START = 1_700_000_000.0

PREDICTIONS = {
    "hello!": prediction("greeting", 0.97),
    "hi again": prediction("greeting", 0.97),
    "can I pay with paypal?": prediction("payment_methods", 0.92),
    "I want to speak to a human": prediction("human_agent", 0.95),
}
HITS = (hit("c3#t0", 0.82, intent="payment_methods", reply="Yes, we accept PayPal."),)


class Clock:
    """Unix seconds that move only when told."""

    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class DirectStore:
    """The worker's `StoreRunner` for tests: runs store calls right here (one thread)."""

    def __init__(self, store: ConversationStore):
        self.store = store

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.store, *args)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConversationStore]:
    """An open store on each back end: the channel queues' SQL runs on both."""
    target = tmp_path / "store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with ConversationStore(target).open() as s:
        yield s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> Iterator[FakePlatform]:
    with FakePlatform() as platform:
        yield platform


def slack_config(fake: FakePlatform, **fields: Any) -> ChannelsConfig:
    values: dict[str, Any] = {
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_bot_token": SecretStr(BOT_TOKEN),
        "slack_api_base": fake.url,
        "send_backoff_s": 2.0,
        "send_max_attempts": 3,
        "send_timeout_s": 5.0,
    }
    values.update(fields)
    return ChannelsConfig(**values)


def manager(store: ConversationStore) -> DialogueManager:
    return DialogueManager(
        embedder=HashingEmbedder(),
        classifier=ScriptedClassifier(PREDICTIONS),
        retriever=FixedRetriever(HITS),
        composer=FakeComposer(),
        store=store,
        domain=Domain(),
        config=DialogueConfig(),
    )


class Harness:
    """A worker over the store, the fake platform and a real dialogue manager, stepped by
    hand: `run(worker.step())` runs one round on a fresh event loop."""

    def __init__(self, store: ConversationStore, fake: FakePlatform, clock: Clock, config: ChannelsConfig):
        self.store, self.fake, self.clock, self.config = store, fake, clock, config
        self.manager = manager(store)
        self.turns: list[str] = []
        self.fail_turns = 0  # the next this many turns raise (a worker that crashed)
        self.channels: dict[str, Channel] = enabled_channels(config)

    async def turn(self, platform: str, conversation_id: str, text: str, event_id: str) -> TurnResult:
        self.turns.append(text)
        if self.fail_turns:
            self.fail_turns -= 1
            raise RuntimeError("the inference worker is gone")
        return self.manager.handle(text, conversation_id, platform, event_id)

    def step(self, times: int = 1) -> None:
        """`times` rounds of a worker made for them (as after a restart, each time)."""

        async def rounds() -> None:
            async with httpx.AsyncClient() as client:
                worker = ChannelWorker(
                    self.channels, self.config, DirectStore(self.store), self.turn, client, self.clock
                )
                for _ in range(times):
                    await worker.step()

        asyncio.run(rounds())


@pytest.fixture
def harness(store: ConversationStore, fake: FakePlatform, clock: Clock) -> Harness:
    return Harness(store, fake, clock, slack_config(fake))
