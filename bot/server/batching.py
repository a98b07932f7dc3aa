"""Batching across conversations: the turns in flight at the same moment share MiniLM
encodes and GPT-2 decoding steps, on models loaded once per process.

Without batching every inference worker owns its own models and runs its turns one at a
time, so with ten messages in flight ten small encodes and ten decodes queue on the cores.
A decoding step of csbot's small GPT-2 on a CPU costs little more for twenty rows than for
five (the step's fixed cost is most of it), so decoding the candidates of several turns in
one step answers more turns a second. How they share it matters: merging whole calls makes
a turn wait for a pass that started before it and every row wait for the longest one;
continuous batching lets a turn join at the next step and leave when its own rows end.

    batcher = MicroBatcher(encode_all, max_batch=16, window_ms=5, name="csbot-embed")
    vector = batcher.submit(text)        # on any thread: blocks, returns this item's result

- `MicroBatcher`: worker threads `submit` items; one batcher thread takes the items
  waiting (up to `max_batch`, or what arrived within `window_ms` of the first), calls the
  batch function once, and hands each caller its own result. A batch whose call raises is
  retried item by item, so one bad item fails only its own caller.
- `BatchedEmbedder`: the `SentenceEmbedder` surface the dialogue manager uses; the texts
  of every waiting `encode` go through one `encode`, and each caller gets its rows back.
- `ContinuousDecoding`: one thread per loaded GPT-2 that runs `DecodingSlots` steps for
  every turn's candidates at once; `DecodingGenerator` is the `GPT2Generator` surface the
  composer uses (`generate` whole, `token_steps` for the streaming composer).
- `BatchingModels`: what `csbot serve` shares between its workers with batching on (see
  `bot.workspace.SharedModels`): loaded on first use, closed with the server.

`ServerConfig.batching` is off by default (docs/http-api.md, "Batching", says when to turn it on).

Order within a conversation is the server's business, not this module's: a conversation's
turns all run on one worker, which submits one item at a time and waits for it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from bot.errors import CsbotError
from finetune.decoder import DecodePlan, Generated, GeneratorConfig, GPT2Generator
from finetune.decoding import DecodingSlots, SlotCall

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


class _Refusable(Protocol):
    def fail(self, error: BaseException) -> None: ...


Queued = TypeVar("Queued", bound=_Refusable)


class _QueueThread(ABC, Generic[Queued]):
    """A daemon thread that serves a queue of calls from other threads until closed: started
    by the first call queued (a batcher nobody uses holds no thread), sized by `on_start` on
    its own thread (where torch's threads are set). Whatever is still queued when it closes,
    or when its thread ends for any reason, is refused with `BatcherClosedError`."""

    def __init__(self, name: str, on_start: Callable[[], None] | None):
        self.name, self._on_start = name, on_start
        self._waiting: deque[Queued] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Let the thread finish what it runs, refuse what still waits and every later
        call, stop the thread."""
        self._refuse_waiting()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def _enqueue(self, waiting: Queued) -> None:
        with self._changed:
            if self._closed:
                raise BatcherClosedError(self.name)
            if self._thread.ident is None:
                self._thread.start()
            self._waiting.append(waiting)
            self._changed.notify_all()

    def _refuse_waiting(self) -> None:
        with self._changed:
            self._closed = True
            left = list(self._waiting)
            self._waiting.clear()
            self._changed.notify_all()
        for waiting in left:
            waiting.fail(BatcherClosedError(self.name))

    def _main(self) -> None:
        if self._on_start is not None:
            try:
                self._on_start()
            except Exception:  # thread sizing is a tuning, never a reason to stop
                log.exception("%s: could not size its threads; running with the defaults", self.name)
        try:
            self._run()
        finally:
            self._refuse_waiting()  # however the thread ends, no caller waits for ever

    @abstractmethod
    def _run(self) -> None:
        """Serve the queue until closed (under `self._changed` to read it)."""


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    key: Hashable
    arrived: float
    result: Future[Result]

    def fail(self, error: BaseException) -> None:
        if not self.result.done():
            self.result.set_exception(error)


class MicroBatcher(_QueueThread[_Waiting[Item, Result]], Generic[Item, Result]):
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
        super().__init__(name, on_start)
        self.max_batch, self.window_s = max_batch, window_ms / 1000
        self._batch, self._key, self._clock = batch, key, clock
        # what the batcher has done: batches run and items in them (tests and logs read it)
        self.batches = 0
        self.items = 0
        self.largest_batch = 0

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
        self._enqueue(waiting)
        return waiting.result.result()

    # -- the batcher's thread -----------------------------------------------------------
    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            try:
                self._run_batch(taken)
            except BaseException as e:  # not an Exception (those end in _run_batch): no caller waits for ever
                for waiting in taken:
                    waiting.fail(e)
                raise

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


_END = object()  # the last item of a streamed call's queue


@dataclass(eq=False)
class _Decoding:
    """One turn's call, from its submission to its replies: whole (`generate`: `result`) or
    step by step (`steps`: each step's tokens go into `stream`, then `_END` or an error)."""

    plan: DecodePlan
    submitted: float
    result: Future[list[Generated]] | None = None
    stream: queue.SimpleQueue[Any] | None = None
    prompts: tuple[str, ...] = ()  # a whole call's prompts, for one that decodes alone
    alternatives: bool = False
    call: SlotCall | None = None
    first_ms: float | None = None

    def fail(self, error: BaseException) -> None:
        if self.result is not None:
            if not self.result.done():
                self.result.set_exception(error)
        elif self.stream is not None:
            self.stream.put(error)


class ContinuousDecoding(_QueueThread[_Decoding]):
    """One thread that decodes every turn's GPT-2 candidates for one loaded model, a token at
    a time for all of them together (`finetune.decoding.DecodingSlots`).

    A turn's call joins the running batch at the next step, and leaves, with its replies,
    as soon as its own rows have ended: it neither waits for a batch that started before it
    nor for rows longer than its own. `generate` hands a turn its replies whole; `steps`
    hands it each step's tokens as they are decoded (the streaming composer), and closing
    it early frees the call's rows at the next step. Calls wait in order of arrival while
    the slots are full (`rows` rows: a turn decodes one row per candidate). Calls the slots
    cannot take (decoding rules they lack, beam search, more rows than they hold) decode
    alone on this thread, between two steps. A call that fails to start fails alone; a
    failed step fails the calls in it (the composer then answers with its fallback)."""

    def __init__(
        self,
        generator: GPT2Generator,
        *,
        rows: int,
        name: str = "csbot-decoder",
        on_start: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        super().__init__(name, on_start)
        self.generator, self.rows, self._clock = generator.load(), rows, clock
        self._cancelled: list[_Decoding] = []
        # what the thread has done (tests and logs read it)
        self.steps_run = 0
        self.calls_started = 0
        self.most_calls_in_a_step = 0

    def generate(self, prompts: Sequence[str], *, alternatives: bool = False) -> list[Generated]:
        """`GPT2Generator.generate` for one turn, decoded beside the other turns' calls
        (blocks the calling thread). `BatcherClosedError` once closed."""
        if not prompts:
            return []
        plan = self.generator.plan(prompts, alternatives=alternatives)
        waiting = _Decoding(plan, self._clock(), result=Future(), prompts=tuple(prompts), alternatives=alternatives)
        self._enqueue(waiting)
        assert waiting.result is not None
        return waiting.result.result()

    def steps(self, plan: DecodePlan) -> Generator[list[int | None], None, None]:
        """Each step's tokens of `plan`, as `GPT2Generator.token_steps` yields them, decoded
        beside the other turns' calls. Closing it stops the call."""
        waiting = _Decoding(plan, self._clock(), stream=queue.SimpleQueue())
        self._enqueue(waiting)
        assert waiting.stream is not None
        ended = False
        try:
            while True:
                item = waiting.stream.get()
                if item is _END:
                    ended = True
                    return
                if isinstance(item, BaseException):
                    ended = True
                    raise item
                yield item
        finally:
            if not ended:
                with self._changed:
                    self._cancelled.append(waiting)
                    self._changed.notify_all()

    # -- the decoding thread ------------------------------------------------------------
    def _run(self) -> None:
        slots = None
        live: dict[int, _Decoding] = {}  # by id() of the SlotCall
        try:
            decoder = self.generator.fast_decoder
            if decoder is not None and self.generator.config.decoding != "beam":
                slots = DecodingSlots(decoder, rows=self.rows)
            while True:
                with self._changed:
                    while not (self._waiting or live or self._cancelled or self._closed):
                        self._changed.wait()
                    cancelled, self._cancelled = self._cancelled, []
                    for waiting in cancelled:
                        if waiting in self._waiting:
                            self._waiting.remove(waiting)
                    if self._closed and not live:
                        return
                    taken = self._take(slots)
                for waiting in cancelled:
                    if waiting.call is not None and live.pop(id(waiting.call), None) is not None:
                        assert slots is not None
                        slots.cancel(waiting.call)
                for waiting in taken:
                    self._start(slots, waiting, live)
                if live:
                    assert slots is not None  # only the slots make calls live
                    self._step(slots, live)
        finally:
            for waiting in live.values():  # the thread ends mid-decode: they get no more steps
                waiting.fail(BatcherClosedError(self.name))

    def _fits(self, slots: DecodingSlots | None, plan: DecodePlan) -> bool:
        return slots is not None and slots.supports(plan.sampling) and len(plan.ids) <= slots.rows

    def _take(self, slots: DecodingSlots | None) -> list[_Decoding]:
        """The waiting calls to start before the next step, oldest first (under the lock)."""
        taken: list[_Decoding] = []
        free = slots.free if slots is not None else 0
        while self._waiting:
            plan = self._waiting[0].plan
            fits = self._fits(slots, plan)
            if fits and len(plan.ids) > free:
                break  # full: it goes first when rows come free
            taken.append(self._waiting.popleft())
            if fits:
                free -= len(plan.ids)
        return taken

    def _start(self, slots: DecodingSlots | None, waiting: _Decoding, live: dict[int, _Decoding]) -> None:
        plan = waiting.plan
        self.calls_started += 1
        try:
            if not self._fits(slots, plan):  # decoded alone, the others wait a call
                self._decode_alone(waiting)
                return
            assert slots is not None
            call = slots.add(plan.ids, max_new_tokens=plan.max_new_tokens, eos_id=plan.eos_id, sampling=plan.sampling)
        except Exception as e:  # noqa: BLE001 - this call's caller gets it; the others go on
            waiting.fail(e)
            return
        waiting.call, waiting.first_ms = call, (self._clock() - waiting.submitted) * 1000
        if waiting.stream is not None:
            waiting.stream.put(call.latest)
        if call.finished:
            self._finish(waiting)
        else:
            live[id(call)] = waiting

    def _decode_alone(self, waiting: _Decoding) -> None:
        if waiting.result is not None:
            waiting.result.set_result(self.generator.generate(list(waiting.prompts), alternatives=waiting.alternatives))
            return
        assert waiting.stream is not None
        plan, decoder = waiting.plan, self.generator.fast_decoder
        if decoder is None:
            raise ValueError("step-by-step decoding needs the fast decoder")
        for step in decoder.generate(
            plan.ids, max_new_tokens=plan.max_new_tokens, eos_id=plan.eos_id, sampling=plan.sampling
        ):
            waiting.stream.put(step)
        waiting.stream.put(_END)

    def _step(self, slots: DecodingSlots, live: dict[int, _Decoding]) -> None:
        self.steps_run += 1
        self.most_calls_in_a_step = max(self.most_calls_in_a_step, len(live))
        try:
            ended = slots.step()
        except Exception as e:  # noqa: BLE001 - every call in the step failed with it
            log.warning("%s: a decoding step failed (%s); %d call(s) fail with it", self.name, e, len(live))
            slots.clear()
            for waiting in live.values():
                waiting.fail(e)
            live.clear()
            return
        for waiting in live.values():
            if waiting.stream is not None:
                assert waiting.call is not None
                waiting.stream.put(waiting.call.latest)
        for call in ended:
            self._finish(live.pop(id(call)))

    def _finish(self, waiting: _Decoding) -> None:
        if waiting.stream is not None:
            waiting.stream.put(_END)
            return
        assert waiting.call is not None and waiting.result is not None
        total_ms = (self._clock() - waiting.submitted) * 1000
        waiting.result.set_result(self.generator.replies(waiting.plan, waiting.call.tokens, waiting.first_ms, total_ms))


class DecodingGenerator(GPT2Generator):
    """A loaded `GPT2Generator` (shared, not copied) whose `generate` calls decode on a
    `ContinuousDecoding` thread beside the other turns' calls.

    Everything else (`model`, `tokenizer`, `config`, `fast_decoder`, `selects_candidates`)
    is the loaded generator's, so `GPT2Composer` builds prompts and guards replies as it
    does with the generator alone."""

    def __init__(self, loaded: GPT2Generator, decoding: ContinuousDecoding):
        loaded.load()
        super().__init__(loaded.model_dir, loaded.config)
        self.inner = loaded
        self.model, self.tokenizer, self.meta = loaded.model, loaded.tokenizer, loaded.meta
        self.decoding = decoding

    @property
    def fast_decoder(self) -> Any:
        return self.inner.fast_decoder

    def numeric_tokens(self) -> frozenset[int]:
        return self.inner.numeric_tokens()

    def placeholder_tokens(self) -> frozenset[int]:
        return self.inner.placeholder_tokens()

    def load(self) -> DecodingGenerator:
        return self

    @property
    def streams(self) -> bool:
        return self.inner.streams

    def generate(self, prompts: Sequence[str], *, alternatives: bool = False) -> list[Generated]:
        """`GPT2Generator.generate`, on the decoding thread with the other turns' calls."""
        return self.decoding.generate(prompts, alternatives=alternatives)

    def plan_steps(self, plan: DecodePlan) -> Generator[list[int | None], None, None]:
        """`GPT2Generator.plan_steps` (what `token_steps` decodes), on the decoding thread with
        the other turns' calls."""
        return self.decoding.steps(plan)


# -- what the server shares ----------------------------------------------------------------


class BatchingModels:
    """The models of one `csbot serve` process with batching on, shared by its workers.

    `get(settings)` loads them on first use (the first worker to ask loads, the others
    wait) and wraps the embedder and every GPT-2 that gets promoted in batchers; `close()`
    stops the batchers. GPT-2s are kept by model directory and settings, the last
    `keep_generators` of them: a promotion loads the new model once for every worker, and
    a worker still on the old one until its next turn keeps it alive that long."""

    def __init__(
        self,
        *,
        window_ms: float,
        max_batch: int,
        torch_threads: int,
        decoder_threads: int | None = None,
        decode_rows: int = 20,
        keep_generators: int = 2,
    ):
        """`torch_threads`: the encoding thread's; `decoder_threads`: each GPT-2's decoding
        thread's (default: `torch_threads`)."""
        self.window_ms, self.max_batch, self.torch_threads = window_ms, max_batch, torch_threads
        self.decoder_threads = decoder_threads if decoder_threads is not None else torch_threads
        self.decode_rows, self.keep_generators = decode_rows, keep_generators
        self._lock = threading.Lock()
        self._shared: SharedModels | None = None
        self._embedder: BatchedEmbedder | None = None
        # one decoding thread per loaded GPT-2: a promotion starts the new model's; the
        # oldest one's stops once more than `keep_generators` are loaded
        self._generators: OrderedDict[tuple[Path, GeneratorConfig], DecodingGenerator] = OrderedDict()
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
                    "batching on: encodes within %.1f ms, at most %d a batch, %d torch thread(s); GPT-2 decoding "
                    "%d rows at once, %d torch thread(s)",
                    self.window_ms,
                    self.max_batch,
                    self.torch_threads,
                    self.decode_rows,
                    self.decoder_threads,
                )
            return self._shared

    def generator_for(self, model_dir: Path, config: GeneratorConfig) -> DecodingGenerator:
        """The loaded GPT-2 of `model_dir` (loaded here once), decoded on its own thread."""
        key = (Path(model_dir).resolve(), config)
        evicted: list[DecodingGenerator] = []
        with self._generator_lock:
            found = self._generators.get(key)
            if found is None:
                # whatever a load raises reaches PromotedModelComposer, which falls back
                loaded = GPT2Generator(model_dir, config).load()
                decoding = ContinuousDecoding(
                    loaded, rows=self.decode_rows, on_start=torch_threads_setter(self.decoder_threads)
                )
                found = DecodingGenerator(loaded, decoding)
                self._generators[key] = found
                while len(self._generators) > self.keep_generators:
                    evicted.append(self._generators.popitem(last=False)[1])
            self._generators.move_to_end(key)
        # outside the lock (closing waits for the calls decoding): a worker that calls an
        # evicted model later falls back for that turn, and takes the promoted one on its next
        for old in evicted:
            old.decoding.close()
        return found

    @property
    def embedder_batcher(self) -> MicroBatcher[list[str], np.ndarray] | None:
        return self._embedder.batcher if self._embedder is not None else None

    @property
    def decoders(self) -> list[ContinuousDecoding]:
        """The decoding threads of the GPT-2s loaded now."""
        with self._generator_lock:
            return [g.decoding for g in self._generators.values()]

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
        for decoding in self.decoders:
            decoding.close()


__all__ = [
    "BatchedEmbedder",
    "BatcherClosedError",
    "BatchingModels",
    "ContinuousDecoding",
    "DecodingGenerator",
    "MicroBatcher",
]
