"""Micro-batching across conversations: the turns that wait at the same moment share one
MiniLM encode and one GPT-2 decode, on models loaded once per process.

Without batching every inference worker owns its own models and runs its turns one at a
time, so with ten messages in flight ten small encodes and ten small decodes queue on the
cores. The bet: a step of a small model costs little more for twenty rows than for one.
Measured on 2 CPU cores with 5 GPT-2 candidates a turn it loses (fewer turns a second, a
higher p95; docs/benchmarks.md, "Micro-batching"): one turn's candidates already fill a
core. So `ServerConfig.batching` is off by default; measure on your hardware.

    batcher = MicroBatcher(encode_all, max_batch=16, window_ms=5, name="csbot-embed")
    vector = batcher.submit(text)        # on any thread: blocks, returns this item's result

- `MicroBatcher`: worker threads `submit` items; one batcher thread takes the items
  waiting (up to `max_batch`, or what arrived within `window_ms` of the first), calls the
  batch function once, and hands each caller its own result. A batch whose call raises is
  retried item by item, so one bad item fails only its own caller.
- `BatchedEmbedder`: the `SentenceEmbedder` surface the dialogue manager uses; the texts
  of every waiting `encode` go through one `encode`, and each caller gets its rows back.
- `BatchedGenerator`: a loaded `GPT2Generator` whose `generate` calls (one per turn)
  merge into one pass of the fast decoder. Calls with different `alternatives` flags, or
  for different models, never share a batch.
- `BatchingModels`: what `csbot serve` shares between its workers with batching on (see
  `bot.workspace.SharedModels`): loaded on first use, closed with the server.

Order within a conversation is the server's business, not this module's: a conversation's
turns all run on one worker, which submits one item at a time and waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from bot.errors import CsbotError
from finetune.decoder import Generated, GeneratorConfig, GPT2Generator

if TYPE_CHECKING:
    import numpy as np

    from bot.settings import CsbotSettings
    from bot.workspace import SharedModels
    from retrieval.embedder import SentenceEmbedder

log = logging.getLogger("csbot.server.batching")

Item = TypeVar("Item")
Result = TypeVar("Result")


class BatcherClosedError(CsbotError, RuntimeError):
    """An item was submitted to a micro-batcher that is closed (the server is shutting down).

    A RuntimeError too, so that the GPT-2 composer treats it like any failed decode and
    answers with its retrieval fallback rather than losing the turn."""

    def __init__(self, name: str):
        super().__init__(f"the {name} micro-batcher is closed (the server is shutting down); send the message again")


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    key: Hashable
    arrived: float
    result: Future[Result]


class MicroBatcher(Generic[Item, Result]):
    """Collects items from many threads and runs them through `batch` together.

    `batch(items)` returns one result per item, in order. It runs on the batcher's own
    thread (after `on_start`, called there once: where torch's threads are sized), so a
    model that only that thread touches needs no lock. Items whose `key` differs never
    share a batch; the oldest waiting item's key goes first.

    A batch is taken when `max_batch` items of the first item's key wait, or `window_ms`
    after the first of them arrived (at once if it has waited that long already, e.g.
    behind the previous batch), or when the batcher closes.
    """

    def __init__(
        self,
        batch: Callable[[list[Item]], Sequence[Result]],
        *,
        max_batch: int,
        window_ms: float,
        name: str,
        key: Callable[[Item], Hashable] | None = None,
        on_start: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if window_ms < 0:
            raise ValueError(f"window_ms must be at least 0, got {window_ms}")
        self.name, self.max_batch, self.window_s = name, max_batch, window_ms / 1000
        self._batch, self._key, self._on_start, self._clock = batch, key, on_start, clock
        self._waiting: deque[_Waiting[Item, Result]] = deque()
        self._changed = threading.Condition()
        self._closed = False
        # what the batcher has done: batches run and items in them (tests and logs read it)
        self.batches = 0
        self.items = 0
        self.largest_batch = 0
        # started by the first submit: a batcher nobody uses holds no thread
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Items waiting for a batch (not those of the batch running)."""
        with self._changed:
            return len(self._waiting)

    def submit(self, item: Item) -> Result:
        """This item's result, once its batch has run (blocks the calling thread). The
        batch function's exception for this item is raised here; `BatcherClosedError`
        when the batcher is closed, or closes before the item's batch is taken."""
        key = self._key(item) if self._key is not None else None
        waiting: _Waiting[Item, Result] = _Waiting(item, key, self._clock(), Future())
        with self._changed:
            if self._closed:
                raise BatcherClosedError(self.name)
            if not self._thread.is_alive() and self._thread.ident is None:
                self._thread.start()
            self._waiting.append(waiting)
            self._changed.notify_all()
        return waiting.result.result()

    def close(self) -> None:
        """Finish the batch running, refuse what still waits and every later submit, stop
        the thread."""
        with self._changed:
            self._closed = True
            left = list(self._waiting)
            self._waiting.clear()
            self._changed.notify_all()
        for waiting in left:
            waiting.result.set_exception(BatcherClosedError(self.name))
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    # -- the batcher's thread -----------------------------------------------------------
    def _run(self) -> None:
        if self._on_start is not None:
            try:
                self._on_start()
            except Exception:  # thread sizing is a tuning, never a reason to stop
                log.exception("%s: could not size its threads; running with the defaults", self.name)
        try:
            while True:
                taken = self._take()
                if taken is None:
                    return
                try:
                    self._run_batch(taken)
                except BaseException as e:  # not an Exception (those end in _run_batch): no caller waits for ever
                    for waiting in taken:
                        if not waiting.result.done():
                            waiting.result.set_exception(e)
                    raise
        finally:
            # however the thread ends, what still waits (and later submits) is refused
            with self._changed:
                self._closed = True
                left = list(self._waiting)
                self._waiting.clear()
            for waiting in left:
                waiting.result.set_exception(BatcherClosedError(self.name))

    def _take(self) -> list[_Waiting[Item, Result]] | None:
        """The next batch (None once closed): the oldest item and those of its key after it."""
        with self._changed:
            while True:
                if self._closed:
                    return None
                if not self._waiting:
                    self._changed.wait()
                    continue
                first = self._waiting[0]
                same = [w for w in self._waiting if w.key == first.key]
                left = first.arrived + self.window_s - self._clock()
                if len(same) >= self.max_batch or left <= 0:
                    taken = same[: self.max_batch]
                    chosen = {id(w) for w in taken}
                    self._waiting = deque(w for w in self._waiting if id(w) not in chosen)
                    return taken
                self._changed.wait(left)

    def _run_batch(self, taken: list[_Waiting[Item, Result]]) -> None:
        self.batches += 1
        self.items += len(taken)
        self.largest_batch = max(self.largest_batch, len(taken))
        items = [w.item for w in taken]
        try:
            results = list(self._batch(items))
            if len(results) != len(items):
                raise RuntimeError(f"{self.name}: {len(results)} results for a batch of {len(items)} items")
        except Exception as e:  # noqa: BLE001 - each item is retried alone, or its caller gets this
            if len(taken) == 1:
                taken[0].result.set_exception(e)
                return
            # one bad item must not fail the others: each alone, each caller its own outcome
            log.warning("%s: a batch of %d failed (%s); running its items one by one", self.name, len(taken), e)
            for waiting in taken:
                self._run_batch_of_one(waiting)
            return
        for waiting, result in zip(taken, results, strict=True):
            waiting.result.set_result(result)

    def _run_batch_of_one(self, waiting: _Waiting[Item, Result]) -> None:
        try:
            [result] = self._batch([waiting.item])
        except Exception as e:  # noqa: BLE001 - raised in the item's caller's thread
            waiting.result.set_exception(e)
        else:
            waiting.result.set_result(result)


def torch_threads_setter(threads: int) -> Callable[[], None]:
    """A batcher's `on_start`: torch's intra-op threads for the calling thread."""

    def set_threads() -> None:
        import torch

        torch.set_num_threads(threads)

    return set_threads


# -- the embedder -------------------------------------------------------------------------


class BatchedEmbedder:
    """A loaded `SentenceEmbedder` whose `encode` calls from many threads share one encode.

    The surface is the embedder's (`encode(texts)`, `model_id`, `dim`, `loaded`, `config`,
    `path`); the vectors are the same (MiniLM pads a batch, and its attention mask keeps
    each row what it would be alone, within float rounding)."""

    def __init__(
        self,
        embedder: SentenceEmbedder,
        *,
        max_batch: int,
        window_ms: float,
        on_start: Callable[[], None] | None = None,
        name: str = "csbot-embed-batcher",
    ):
        self.embedder = embedder.load()
        self.batcher: MicroBatcher[list[str], np.ndarray] = MicroBatcher(
            self._encode_all, max_batch=max_batch, window_ms=window_ms, name=name, on_start=on_start
        )

    @property
    def loaded(self) -> bool:
        return self.embedder.loaded

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @property
    def config(self) -> Any:
        return self.embedder.config

    @property
    def path(self) -> Path | None:
        return self.embedder.path

    def load(self) -> BatchedEmbedder:
        return self

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """`SentenceEmbedder.encode`, sharing the encode with the calls waiting meanwhile.
        `progress` (a bar for long ingests) runs unbatched, as it is meant for one big call."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, got a single str: wrap it in a list")
        if progress or not texts:
            return self.embedder.encode(list(texts), progress=progress)
        return self.batcher.submit(list(texts))

    def _encode_all(self, calls: list[list[str]]) -> list[np.ndarray]:
        vectors = self.embedder.encode([t for texts in calls for t in texts])
        out, start = [], 0
        for texts in calls:
            out.append(vectors[start : start + len(texts)])
            start += len(texts)
        return out

    def close(self) -> None:
        self.batcher.close()


# -- GPT-2 generation ---------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationCall:
    """One `generate` call of one turn: its prompts, for which loaded generator."""

    generator: GPT2Generator
    prompts: tuple[str, ...]
    alternatives: bool

    @property
    def key(self) -> tuple[int, bool]:
        # the generator object stands for its model directory and settings
        return id(self.generator), self.alternatives


class BatchedGenerator(GPT2Generator):
    """A loaded `GPT2Generator` (shared, not copied) whose `generate` calls merge with the
    other turns' calls waiting at the same moment into one pass of the fast decoder.

    Everything else (`model`, `tokenizer`, `config`, `fast_decoder`, `selects_candidates`)
    is the loaded generator's, so `GPT2Composer` builds prompts and guards replies as it
    does with the generator alone."""

    def __init__(self, loaded: GPT2Generator, batcher: MicroBatcher[GenerationCall, list[Generated]]):
        loaded.load()
        super().__init__(loaded.model_dir, loaded.config)
        self.inner = loaded
        self.model, self.tokenizer, self.meta = loaded.model, loaded.tokenizer, loaded.meta
        self._batcher = batcher

    @property
    def fast_decoder(self) -> Any:
        return self.inner.fast_decoder

    def numeric_tokens(self) -> frozenset[int]:
        return self.inner.numeric_tokens()

    def placeholder_tokens(self) -> frozenset[int]:
        return self.inner.placeholder_tokens()

    def load(self) -> BatchedGenerator:
        return self

    @property
    def streams(self) -> bool:
        # a turn's rows decode inside other turns' merged batches: no step-by-step view
        return False

    def generate(self, prompts: Sequence[str], *, alternatives: bool = False) -> list[Generated]:
        """`GPT2Generator.generate`, in one decoding pass with the calls waiting meanwhile."""
        if not prompts:
            return []
        return self._batcher.submit(GenerationCall(self.inner, tuple(prompts), alternatives))


def generate_batch(calls: list[GenerationCall]) -> list[list[Generated]]:
    """The batch function of the generation batcher: each call's replies, from one decoding
    pass where the calls can share one (all of one generator and one `alternatives` flag).

    One call alone decodes exactly as unbatched. Merged calls: greedy rows are the same
    replies as alone (up to float rounding: prompts are left-padded, and int8 decoding
    quantizes each step's activations over the whole batch, as it already does over one
    turn's candidates); the sampled alternatives are drawn from one seeded generator for
    the whole batch, so they differ from the ones a turn alone would get."""
    generator = calls[0].generator
    if len(calls) == 1:
        only = calls[0]
        return [generator.generate(list(only.prompts), alternatives=only.alternatives)]
    if generator.config.decoding == "beam" or generator.fast_decoder is None:
        # model.generate decodes one prompt at a time anyway
        return [generator.generate(list(c.prompts), alternatives=c.alternatives) for c in calls]
    # A shared pass decodes as many steps as its longest prompt leaves room for: a call whose
    # prompt leaves less than max_new_tokens would cut the others' replies short, so it
    # decodes alone, and the others together.
    assert generator.tokenizer is not None and generator.model is not None  # loaded by BatchedGenerator
    room = generator.model.config.n_positions - (generator.config.max_new_tokens or 0)
    tokenizer = generator.tokenizer
    fits = [max(len(tokenizer.encode(p, add_special_tokens=False)) for p in c.prompts) <= room for c in calls]
    if not all(fits):
        together = [c for c, fit in zip(calls, fits, strict=True) if fit]
        shared_pass = iter(generate_batch(together) if together else [])
        return [
            next(shared_pass) if fit else generator.generate(list(c.prompts), alternatives=c.alternatives)
            for c, fit in zip(calls, fits, strict=True)
        ]
    if not calls[0].alternatives:
        merged = generator.generate([p for c in calls for p in c.prompts])
        out, start = [], 0
        for c in calls:
            out.append(merged[start : start + len(c.prompts)])
            start += len(c.prompts)
        return out
    # each call's first row is its greedy reply: those rows go first, so that one
    # `greedy_rows` count keeps all of them greedy; the sampled rows follow, call by call
    rows = [c.prompts[0] for c in calls] + [p for c in calls for p in c.prompts[1:]]
    decoded = generator.generate_rows(rows, sampled=True, greedy_rows=len(calls))
    greedy, sampled = decoded[: len(calls)], iter(decoded[len(calls) :])
    return [[greedy[i], *(next(sampled) for _ in c.prompts[1:])] for i, c in enumerate(calls)]


# -- what the server shares ----------------------------------------------------------------


class BatchingModels:
    """The models of one `csbot serve` process with batching on, shared by its workers.

    `get(settings)` loads them on first use (the first worker to ask loads, the others
    wait) and wraps the embedder and every GPT-2 that gets promoted in batchers; `close()`
    stops the batchers. GPT-2s are kept by model directory and settings, the last
    `keep_generators` of them: a promotion loads the new model once for every worker, and
    a worker still on the old one until its next turn keeps it alive that long."""

    def __init__(self, *, window_ms: float, max_batch: int, torch_threads: int, keep_generators: int = 2):
        self.window_ms, self.max_batch, self.torch_threads = window_ms, max_batch, torch_threads
        self.keep_generators = keep_generators
        self._lock = threading.Lock()
        self._shared: SharedModels | None = None
        self._embedder: BatchedEmbedder | None = None
        # GPT-2 calls of every model go through this one thread; a batch holds one model's
        self._generation: MicroBatcher[GenerationCall, list[Generated]] = MicroBatcher(
            generate_batch,
            max_batch=max_batch,
            window_ms=window_ms,
            name="csbot-generate-batcher",
            key=lambda call: call.key,
            on_start=torch_threads_setter(torch_threads),
        )
        self._generators: OrderedDict[tuple[Path, GeneratorConfig], BatchedGenerator] = OrderedDict()
        self._generator_lock = threading.Lock()

    def get(self, settings: CsbotSettings) -> SharedModels:
        """The shared models (loaded from `settings`' workspace by the first caller)."""
        with self._lock:
            if self._shared is None:
                from bot.workspace import Assistant
                from retrieval.embedder import SentenceEmbedder

                plain = Assistant.load_shared(settings)
                assert isinstance(plain.embedder, SentenceEmbedder)  # load_shared loads one
                self._embedder = BatchedEmbedder(
                    plain.embedder,
                    max_batch=self.max_batch,
                    window_ms=self.window_ms,
                    on_start=torch_threads_setter(self.torch_threads),
                )
                self._shared = plain.with_parts(embedder=self._embedder, generator_for=self.generator_for)
                log.info(
                    "micro-batching on: window %.1f ms, at most %d turns a batch, %d torch thread(s) a batcher",
                    self.window_ms,
                    self.max_batch,
                    self.torch_threads,
                )
            return self._shared

    def generator_for(self, model_dir: Path, config: GeneratorConfig) -> BatchedGenerator:
        """The loaded GPT-2 of `model_dir` (loaded here once), its calls batched."""
        key = (Path(model_dir).resolve(), config)
        with self._generator_lock:
            found = self._generators.get(key)
            if found is None:
                # whatever a load raises reaches PromotedModelComposer, which falls back
                found = BatchedGenerator(GPT2Generator(model_dir, config).load(), self._generation)
                self._generators[key] = found
                while len(self._generators) > self.keep_generators:
                    self._generators.popitem(last=False)
            self._generators.move_to_end(key)
            return found

    @property
    def embedder_batcher(self) -> MicroBatcher[list[str], np.ndarray] | None:
        return self._embedder.batcher if self._embedder is not None else None

    @property
    def generation_batcher(self) -> MicroBatcher[GenerationCall, list[Generated]]:
        return self._generation

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
        self._generation.close()


__all__ = [
    "BatchedEmbedder",
    "BatchedGenerator",
    "BatcherClosedError",
    "BatchingModels",
    "GenerationCall",
    "MicroBatcher",
    "generate_batch",
]
