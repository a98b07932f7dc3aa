"""Batching across conversations (bot.server.batching): each caller gets its own result,
batched results equal unbatched ones (real MiniLM, a real tiny GPT-2), a failing item fails
alone, items of different keys never share a batch, a closed batcher refuses work; GPT-2
calls decoding together on one thread (whole or step by step) get what they get alone,
wait for free rows, fail alone, and free their rows when a reader stops early; and through
the real server, workers share one set of models, a conversation's turns stay in order, and
a GPT-2 promoted while serving answers the next turn.

Batches are made deterministic without timing: a long window and `max_batch` equal to the
number of callers, so a batch is taken exactly when all of them wait. The GPT-2 is float32:
with int8 weights a pass quantizes the activations of all its rows together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.server.batching import (
    BatchedEmbedder,
    BatcherClosedError,
    BatchingModels,
    ContinuousDecoding,
    MicroBatcher,
)
from bot.workspace import Assistant
from finetune.decoder import GeneratorConfig, GPT2Generator
from finetune.registry import ModelRegistry
from tests.bot.composers.test_generative import make_tiny_model
from tests.bot.server.conftest import copy_workspace, live_server, quiet_settings

LONG_WINDOW_MS = 60_000  # a batch is taken when full (or on close), never by the clock


def submit_all(batcher: MicroBatcher, items: list, submit: Callable | None = None) -> list:
    """Each item submitted from its own thread at once; the results (or exceptions) in item order."""
    submit = submit or batcher.submit

    def one(item):
        try:
            return submit(item)
        except Exception as e:  # noqa: BLE001 - the test looks at what each caller got
            return e

    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(one, items))


class Recorder:
    """A batch function that notes its batches and squares numbers; 13 is a bad item."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if 13 in items:
            raise ValueError("13 is not welcome")
        return [i * i for i in items]


# -- MicroBatcher -----------------------------------------------------------------------------


def test_each_caller_gets_its_own_result_from_one_batch():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=8, window_ms=LONG_WINDOW_MS, name="test")
    try:
        results = submit_all(batcher, list(range(8)))
    finally:
        batcher.close()
    assert results == [i * i for i in range(8)]
    assert len(recorder.batches) == 1 and sorted(recorder.batches[0]) == list(range(8))
    assert (batcher.batches, batcher.items, batcher.largest_batch) == (1, 8, 8)


def test_a_failing_item_fails_only_its_own_caller():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=4, window_ms=LONG_WINDOW_MS, name="test")
    try:
        results = submit_all(batcher, [2, 13, 3, 4])
    finally:
        batcher.close()
    assert results[0] == 4 and results[2] == 9 and results[3] == 16
    assert isinstance(results[1], ValueError) and "13" in str(results[1])
    # the batch of four failed, then each item ran alone
    assert len(recorder.batches) == 5 and sorted(recorder.batches[0]) == [2, 3, 4, 13]
    assert sorted(map(tuple, recorder.batches[1:])) == [(2,), (3,), (4,), (13,)]


def test_items_of_different_keys_never_share_a_batch():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=2, window_ms=LONG_WINDOW_MS, name="test", key=lambda i: i % 2)
    try:
        results = submit_all(batcher, [1, 2, 3, 4])
    finally:
        batcher.close()
    assert results == [1, 4, 9, 16]
    assert sorted(sorted(b) for b in recorder.batches) == [[1, 3], [2, 4]]


def test_a_zero_window_runs_a_lone_item_at_once():
    batcher = MicroBatcher(Recorder(), max_batch=64, window_ms=0, name="test")
    try:
        assert batcher.submit(5) == 25
    finally:
        batcher.close()


def test_closing_refuses_what_waits_and_every_later_submit():
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_batch=2, window_ms=LONG_WINDOW_MS, name="test")
    got: list[object] = []

    def waiting_caller() -> None:
        try:
            got.append(batcher.submit(7))
        except BatcherClosedError as e:
            got.append(e)

    caller = threading.Thread(target=waiting_caller)
    caller.start()
    until(lambda: batcher.pending == 1)  # the lone item waits for a second one
    batcher.close()
    caller.join(30)
    assert len(got) == 1 and isinstance(got[0], BatcherClosedError) and "send the message again" in str(got[0])
    assert recorder.batches == []  # it never ran
    with pytest.raises(BatcherClosedError):
        batcher.submit(1)
    assert batcher.closed


def test_a_batch_running_when_closing_still_delivers():
    entered, release = threading.Event(), threading.Event()

    def slow(items: list[int]) -> list[int]:
        entered.set()
        assert release.wait(30)
        return [i + 1 for i in items]

    batcher = MicroBatcher(slow, max_batch=1, window_ms=0, name="test")
    with ThreadPoolExecutor(2) as pool:
        result = pool.submit(batcher.submit, 41)
        assert entered.wait(30)
        closing = pool.submit(batcher.close)
        release.set()
        closing.result(30)
        assert result.result(30) == 42


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(Recorder(), max_batch=0, window_ms=5, name="test")
    with pytest.raises(ValueError, match="window_ms"):
        MicroBatcher(Recorder(), max_batch=1, window_ms=-1, name="test")


def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("the condition never held")


# -- the batched embedder (real MiniLM) -------------------------------------------------------

TEXTS = [
    "where is my order?",
    "I want to return the shoes I bought last week, they are too small",
    "what payment methods do you accept?",
    "hi",
    "can I change the delivery address of order {{Order Number}} please?",
    "my parcel arrived damaged and the box was open",
]


@pytest.mark.slow
def test_batched_vectors_equal_unbatched_ones():
    from retrieval.embedder import SentenceEmbedder

    embedder = SentenceEmbedder().load()
    batched = BatchedEmbedder(embedder, max_batch=len(TEXTS), window_ms=LONG_WINDOW_MS)
    try:
        # one call per caller, one with two texts: every caller gets its own rows back
        calls = [[t] for t in TEXTS[:-2]] + [TEXTS[-2:]]
        batched.batcher.max_batch = len(calls)
        results = submit_all(batched.batcher, calls, submit=batched.encode)
        assert batched.batcher.batches == 1 and batched.batcher.largest_batch == len(calls)
        for texts, vectors in zip(calls, results, strict=True):
            np.testing.assert_allclose(vectors, embedder.encode(texts), atol=1e-5)
        assert (batched.dim, batched.model_id, batched.loaded) == (embedder.dim, embedder.model_id, True)
        assert batched.encode([]).shape == (0, embedder.dim)
        with pytest.raises(TypeError):
            batched.encode("a single string")  # type: ignore[arg-type]
    finally:
        batched.close()


# -- batched GPT-2 generation (a real tiny GPT-2) --------------------------------------------

PROMPTS = [
    "<|customer|> where is my order? <|agent|>",
    "<|customer|> I want to return the shoes I bought last week, they are too small <|agent|>",
    "<|customer|> hi <|agent|>",
    "<|customer|> what payment methods do you accept for orders over 100 dollars? <|agent|>",
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("batching") / "final")


@pytest.fixture(scope="module")
def tiny_generator(tiny_model_dir) -> GPT2Generator:
    # float32: int8 decoding quantizes each step's activations over the whole batch, so its
    # greedy rows may move with the batch's company (as they do with a turn's own candidates)
    return GPT2Generator(tiny_model_dir, GeneratorConfig(max_new_tokens=16, int8=False, candidates=3)).load()


def decoded_concurrently(
    generator: GPT2Generator, calls: list[tuple[list[str], bool]], rows: int
) -> tuple[list, ContinuousDecoding]:
    """Each (prompts, alternatives) call from its own thread through one decoding thread;
    the results (or exceptions) in call order, and the (closed) decoding thread."""
    decoding = ContinuousDecoding(generator, rows=rows, name="test-decoder")
    try:
        results = submit_all(
            decoding,
            calls,
            submit=lambda call: decoding.generate(call[0], alternatives=call[1]),  # type: ignore[arg-type]
        )
    finally:
        decoding.close()
    return results, decoding


def as_alone(generator: GPT2Generator, prompts: list[str], alternatives: bool) -> list[tuple[str, int, bool]]:
    return [(g.text, g.new_tokens, g.ended) for g in generator.generate(prompts, alternatives=alternatives)]


@pytest.mark.slow
def test_turns_decoding_together_get_the_replies_they_get_alone(tiny_generator):
    # greedy calls and candidate calls (the greedy reply and seeded samples) side by side
    calls = [([p], False) for p in PROMPTS] + [([p] * 3, True) for p in PROMPTS]
    results, decoding = decoded_concurrently(tiny_generator, calls, rows=64)
    for (prompts, alternatives), got in zip(calls, results, strict=True):
        assert [(g.text, g.new_tokens, g.ended) for g in got] == as_alone(tiny_generator, prompts, alternatives)
        assert all(g.first_token_ms is not None and g.total_ms >= g.first_token_ms for g in got)
    assert decoding.calls_started == len(calls)
    assert decoding.most_calls_in_a_step >= 2  # some of them shared steps


@pytest.mark.slow
def test_turns_wait_for_free_rows_and_all_get_their_replies(tiny_generator):
    calls = [([p] * 3, True) for p in PROMPTS * 2]  # 24 rows for slots of 7
    results, decoding = decoded_concurrently(tiny_generator, calls, rows=7)
    for (prompts, alternatives), got in zip(calls, results, strict=True):
        assert [(g.text, g.new_tokens) for g in got] == [t[:2] for t in as_alone(tiny_generator, prompts, alternatives)]
    assert decoding.most_calls_in_a_step <= 2  # 3 rows each: never 3 calls in 7 rows


@pytest.mark.slow
def test_a_call_that_cannot_start_fails_alone(tiny_generator):
    # the tiny model has 256 positions: a 256-token prompt leaves no room to decode
    long_ids = tiny_generator.tokenizer.encode(
        "where is my order and when will it come " * 60, add_special_tokens=False
    )
    too_long = tiny_generator.tokenizer.decode(long_ids[:256])
    assert len(tiny_generator.tokenizer.encode(too_long, add_special_tokens=False)) >= 256
    calls = [([PROMPTS[0]], False), ([too_long], False), ([PROMPTS[2]] * 3, True)]
    results, _ = decoded_concurrently(tiny_generator, calls, rows=8)
    assert isinstance(results[1], ValueError) and "no room to generate" in str(results[1])
    assert [g.text for g in results[0]] == [t[0] for t in as_alone(tiny_generator, [PROMPTS[0]], False)]
    assert [g.text for g in results[2]] == [t[0] for t in as_alone(tiny_generator, [PROMPTS[2]] * 3, True)]


@pytest.mark.slow
def test_a_call_larger_than_the_slots_or_with_rules_they_lack_decodes_alone(tiny_model_dir):
    # a repetition penalty is not a rule of the slots: such a call decodes on generate()
    generator = GPT2Generator(
        tiny_model_dir, GeneratorConfig(max_new_tokens=12, int8=False, candidates=3, repetition_penalty=1.3)
    ).load()
    calls = [([PROMPTS[0]], False), ([PROMPTS[1]] * 3, True)]
    results, decoding = decoded_concurrently(generator, calls, rows=2)
    for (prompts, alternatives), got in zip(calls, results, strict=True):
        assert [(g.text, g.new_tokens) for g in got] == [t[:2] for t in as_alone(generator, prompts, alternatives)]
    assert decoding.steps_run == 0  # neither went through the slots


def steps_alone(generator: GPT2Generator, rows: list[list[int]], **kw) -> list[list[int | None]]:
    steps = generator.token_steps(rows, **kw)
    try:
        return list(steps)
    finally:
        steps.close()


@pytest.mark.slow
def test_streamed_calls_get_each_step_as_they_would_alone(tiny_generator):
    from bot.server.batching import DecodingGenerator

    decoding = ContinuousDecoding(tiny_generator, rows=32, name="test-steps")
    shared = DecodingGenerator(tiny_generator, decoding)
    ids = [tiny_generator.encode(p) for p in PROMPTS]
    calls = [([i] * 3, {"sampled": True, "greedy_rows": 1}) for i in ids] + [([i], {"sampled": False}) for i in ids]
    try:
        assert shared.streams
        got = submit_all(decoding, calls, submit=lambda c: list(shared.token_steps(c[0], **c[1])))  # type: ignore[arg-type]
        # a reader that stops early frees its rows; the calls after it still run to the end
        early = shared.token_steps([ids[1]] * 3, sampled=False)
        first = next(early)
        early.close()
        after = list(shared.token_steps([ids[2]], sampled=False, max_new_tokens=5))
    finally:
        decoding.close()
    for (rows, kw), steps in zip(calls, got, strict=True):
        assert steps == steps_alone(tiny_generator, rows, **kw)
    assert first == steps_alone(tiny_generator, [ids[1]] * 3, sampled=False)[0]
    assert after == steps_alone(tiny_generator, [ids[2]], sampled=False, max_new_tokens=5)
    assert decoding.most_calls_in_a_step >= 2


def test_a_closed_decoding_thread_refuses_calls(tiny_generator):
    decoding = ContinuousDecoding(tiny_generator, rows=4, name="test-closed")
    decoding.close()
    with pytest.raises(BatcherClosedError, match="shutting down"):
        decoding.generate([PROMPTS[0]])
    assert decoding.generate([]) == []


@pytest.mark.slow
def test_generators_are_loaded_once_per_model_and_settings(tiny_generator, tmp_path):
    models = BatchingModels(window_ms=1, max_batch=4, torch_threads=1)
    try:
        config = tiny_generator.config
        first = models.generator_for(tiny_generator.model_dir, config)
        assert models.generator_for(tiny_generator.model_dir, config) is first
        other = make_tiny_model(tmp_path / "other")
        assert models.generator_for(other, config) is not first
        [reply] = first.generate([PROMPTS[0]])
        assert reply.text == tiny_generator.generate([PROMPTS[0]])[0].text
    finally:
        models.close()


# -- assistants on shared models, and the server with batching on ------------------------------


@pytest.mark.slow
def test_assistants_built_on_shared_models_answer_like_one_that_loads_its_own(demo_workspace, tmp_path):
    ws = copy_workspace(demo_workspace, tmp_path / "ws")
    settings = quiet_settings(ws)
    shared = Assistant.load_shared(settings)
    question = "what payment methods do you accept?"
    with Assistant(settings).load() as own, Assistant(settings, shared=shared).load() as sharing:
        assert sharing.embedder is shared.embedder and sharing.index is shared.index
        assert own.embedder is not shared.embedder
        conversation = own.manager.start_conversation()
        mine, theirs = own.manager.handle(question, conversation), sharing.manager.handle(question)
    assert (theirs.reply, theirs.intent, theirs.composer) == (mine.reply, mine.intent, mine.composer)


@pytest.mark.slow
def test_the_server_with_batching_keeps_each_conversations_order_and_follows_promotions(demo_workspace, tmp_path):
    ws = copy_workspace(demo_workspace, tmp_path / "ws")
    settings = quiet_settings(ws, batching=True, workers=3, batch_window_ms=2)
    model = make_tiny_model(tmp_path / "tiny" / "final")
    registry = ModelRegistry.for_workspace(ws)
    messages = [
        "where is my order?",
        "what payment methods do you accept?",
        "how do I return an item?",
        "do you ship abroad?",
    ]
    with live_server(settings) as live:
        runtime = live.app.state.runtime
        assert runtime.models is not None and len(runtime.pool) == 3
        assistants = [w._resource for w in runtime.pool.workers]
        assert len({id(a.embedder) for a in assistants}) == 1  # one MiniLM, shared
        assert len({id(a.store) for a in assistants}) == 3  # a store connection each

        conversations = [live.new_conversation() for _ in range(4)]

        def talk(conversation: str) -> list[str]:
            replies = []
            for text in messages:
                r = live.say(conversation, text)
                assert r.status_code == 200, r.text
                replies.append(r.json()["message_id"])
            return replies

        with ThreadPoolExecutor(len(conversations)) as pool:
            answered = list(pool.map(talk, conversations))

        with live.store() as store:
            for conversation, message_ids in zip(conversations, answered, strict=True):
                stored = store.messages(conversation)
                assert [m["role"] for m in stored] == ["customer", "bot"] * len(messages)
                assert [m["text"] for m in stored if m["role"] == "customer"] == messages
                assert [m["id"] for m in stored if m["role"] == "bot"] == message_ids
        embeds = runtime.models.embedder_batcher
        assert embeds.items >= len(conversations) * len(messages)  # every turn's encode went through it

        # a GPT-2 promoted while serving writes (or, rejected by the guard, is named in) the next reply
        entry = registry.register(model)
        registry.promote(entry.id)
        conversation = live.new_conversation()
        reply = live.say(conversation, "what payment methods do you accept?").json()
        with live.store() as store:
            [message] = [m for m in store.messages(conversation) if m["id"] == reply["message_id"]]
        assert "gpt2" in message["composer"], message
        assert sum(d.calls_started for d in runtime.models.decoders) >= 1
    assert runtime.models.embedder_batcher.closed  # the server's shutdown closed its batchers


def test_batching_settings_and_the_workers_they_imply(tmp_path):
    from bot.settings import CsbotSettings

    on = CsbotSettings.from_env(tmp_path, env={"CSBOT_SERVER__BATCHING": "true"})
    assert on.server.batching and on.server.workers == 16
    assert on.server.threads_per_worker(cores=2) == 1 and on.server.threads_per_batcher(cores=8) == 4
    assert on.server.threads_per_decoder(cores=8) == 8
    pinned = CsbotSettings.from_env(tmp_path, env={"CSBOT_BATCHING": "1", "CSBOT_TORCH_THREADS": "3"})
    assert pinned.server.threads_per_batcher(cores=8) == pinned.server.threads_per_decoder(cores=8) == 3
    explicit = CsbotSettings.from_env(tmp_path, env={"CSBOT_BATCHING": "1", "CSBOT_WORKERS": "3"})
    assert explicit.server.workers == 3
    off = CsbotSettings.from_env(tmp_path, env={"CSBOT_SERVER__BATCHING": "false"})
    assert not off.server.batching and off.server.workers == 1 and off.server.threads_per_worker(cores=2) == 2
