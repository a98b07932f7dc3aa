"""The conversation lock that keeps a conversation's turns in order across replicas: the
file and Redis locks between real processes (a real redis-server, real flock), what a
holder that dies leaves behind, Redis going down and coming back, the inference pool
holding the lock around a turn (and only a turn), and, in the slow tier, two real apps on
one workspace and one Redis taking turns of one conversation."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bot.server.conversation_lock import (
    REDIS_LOCK_PREFIX,
    ConversationLock,
    FileConversationLock,
    PostgresConversationLock,
    ProcessConversationLock,
    RedisConversationLock,
    conversation_turn,
    make_conversation_lock,
    redis_client,
)
from bot.server.errors import ConversationBusyError, LockUnavailableError, to_http
from bot.server.inference import InferencePool
from tests.bot.server.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, used by name

REPO = Path(__file__).resolve().parents[3]


def file_lock(directory: Path) -> FileConversationLock:
    return FileConversationLock(directory / "locks")


def redis_lock(url: str, lease_seconds: float = 30.0) -> RedisConversationLock:
    return RedisConversationLock(redis_client(url), lease_seconds)


def lock_of(kind: str, where: str) -> ConversationLock:
    """A lock of `kind` over `where` (the lock folder's parent, the Redis URL or the
    PostgreSQL URL): each call is another replica's lock object."""
    if kind == "file":
        return file_lock(Path(where))
    if kind == "redis":
        return redis_lock(where)
    return PostgresConversationLock(where)


def where_of(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "file":
        return str(tmp_path)
    return request.getfixturevalue("redis_server").url if kind == "redis" else request.getfixturevalue("postgres_url")


KINDS = ["file", "redis", pytest.param("postgres", marks=pytest.mark.slow)]


# -- between processes -------------------------------------------------------------
def _count_under_lock(kind: str, where: str, folder: str, rounds: int) -> None:
    """In a child process: `rounds` times, under the lock of conversation "c1", read a
    counter file, pause, write it plus one, and note any moment when another process was
    inside too."""
    lock = lock_of(kind, where)
    counter, inside = Path(folder) / "counter", Path(folder) / "inside"
    for _ in range(rounds):
        with lock.hold("c1", timeout=30):
            try:
                inside.touch(exist_ok=False)
            except FileExistsError:
                (Path(folder) / f"overlap-{os.getpid()}").touch()
            value = int(counter.read_text())
            time.sleep(0.002)  # long enough for an unlocked rival to read the same value
            counter.write_text(str(value + 1))
            inside.unlink(missing_ok=True)


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_never_hold_one_conversation_at_once(kind, tmp_path, request):
    where = where_of(kind, tmp_path, request)
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "counter").write_text("0")
    # fork: the children inherit the imports (a fresh interpreter would spend seconds on them)
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_count_under_lock, args=(kind, where, str(folder), 25)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert int((folder / "counter").read_text()) == 50  # no update lost
    assert not list(folder.glob("overlap-*"))


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_holder_waits_its_timeout_then_is_told_the_conversation_is_busy(kind, tmp_path, request):
    where = where_of(kind, tmp_path, request)
    lock, other = lock_of(kind, where), lock_of(kind, where)
    with lock.hold("c1", timeout=1):
        with pytest.raises(ConversationBusyError) as caught, other.hold("c1", timeout=0.1):
            pass
        with other.hold("c2", timeout=0.1):  # another conversation is not held
            pass
    with other.hold("c1", timeout=0.1):  # free once released
        pass
    error = to_http(caught.value)
    assert (error.status, error.code, error.headers["Retry-After"]) == (503, "conversation_busy", "1")


def _hold_until_killed(kind: str, where: str) -> str:
    return (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from bot.server.conversation_lock import FileConversationLock, PostgresConversationLock, "
        "RedisConversationLock, redis_client\n"
        f"lock = FileConversationLock(Path({where!r}) / 'locks') if {kind!r} == 'file' "
        f"else PostgresConversationLock({where!r}) if {kind!r} == 'postgres' "
        f"else RedisConversationLock(redis_client({where!r}), lease_seconds=1.0)\n"
        "with lock.hold('c1', timeout=5):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n"
    )


@pytest.mark.slow  # a fresh interpreter that imports the server package: seconds
@pytest.mark.parametrize("kind", ["file", "redis", "postgres"])
def test_a_holder_killed_mid_turn_frees_the_conversation(kind, tmp_path, request):
    """kill -9 of a replica mid-turn: a file lock is freed by the kernel at once, a
    PostgreSQL one when the server sees the connection end, a Redis lock when its lease
    runs out."""
    where = where_of(kind, tmp_path, request)
    holder = subprocess.Popen(
        [sys.executable, "-c", _hold_until_killed(kind, where)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = lock_of(kind, where)
        if kind != "file":
            # the holder's renewals keep it past its 1 s lease while it lives
            with pytest.raises(ConversationBusyError), lock.hold("c1", timeout=1.5):
                pass
        holder.kill()
        holder.wait(10)
        # dead, it renews no more: free within one lease (1 s), plus a margin for a loaded host
        with lock.hold("c1", timeout=0.1 if kind == "file" else 2.0):
            pass
        lock.close()
    finally:
        holder.kill()
        holder.wait(10)


def test_while_redis_is_down_a_turn_is_refused_with_503_and_after_it_restarts_it_runs(redis_server: RedisServer):
    lock = redis_lock(redis_server.url)
    redis_server.kill()
    with pytest.raises(LockUnavailableError) as caught, lock.hold("c1", timeout=1):
        pytest.fail("a turn ran without its lock")
    error = to_http(caught.value)
    assert (error.status, error.code) == (503, "lock_unavailable")
    assert int(error.headers["Retry-After"]) >= 1
    redis_server.start()
    with lock.hold("c1", timeout=1):  # the same client, no restart of anything
        assert lock.client.exists("csbot:lock:conversation:c1")
    assert not lock.client.exists("csbot:lock:conversation:c1")


@pytest.mark.slow
def test_while_postgres_is_down_a_turn_is_refused_with_503_and_after_it_restarts_it_runs(postgres_server, postgres_url):
    lock, other = PostgresConversationLock(postgres_url), PostgresConversationLock(postgres_url)
    with lock.hold("c1", timeout=1):  # connected before the outage
        pass
    postgres_server.stop()
    try:
        with pytest.raises(LockUnavailableError) as caught, lock.hold("c1", timeout=1):
            pytest.fail("a turn ran without its lock")
    finally:
        postgres_server.start()
    error = to_http(caught.value)
    assert (error.status, error.code) == (503, "lock_unavailable")
    # the same object reconnects: no restart of anything
    with lock.hold("c1", timeout=1), pytest.raises(ConversationBusyError), other.hold("c1", timeout=0.1):
        pass
    lock.close()
    other.close()


def test_a_turn_held_for_three_leases_keeps_a_contender_out_the_whole_time(redis_server: RedisServer):
    """The renewer extends the lease while the turn runs: a contender polling the lock for
    three whole leases never gets in, and gets in at once after the release."""
    lock, contender = redis_lock(redis_server.url, lease_seconds=0.5), redis_lock(redis_server.url)
    try:
        with lock.hold("c1", timeout=1):
            with pytest.raises(ConversationBusyError), contender.hold("c1", timeout=1.5):
                pytest.fail("the contender took a conversation whose turn is still running")
            assert lock.client.pttl(REDIS_LOCK_PREFIX + "c1") > 0  # still leased, not left forever
        with contender.hold("c1", timeout=0.05):
            pass
    finally:
        lock.close(), contender.close()


def test_close_stops_the_renewer_thread(redis_server: RedisServer):
    lock = redis_lock(redis_server.url, lease_seconds=0.3)
    with lock.hold("c1", timeout=1), lock.hold("c2", timeout=1):  # one thread for every held lock
        thread = lock.renewer.thread
        assert thread is not None and thread.is_alive()
    assert lock.renewer.thread is thread
    lock.close()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"), lock.hold("c1", timeout=1):
        pass


def _lease_warnings(caplog: pytest.LogCaptureFixture, conversation_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING" and f"conversation {conversation_id} goes on without exclusivity" in r.getMessage()
    ]


def _until_logged(caplog: pytest.LogCaptureFixture, conversation_id: str) -> None:
    """Wait (up to 10 s, a bound, not a measure) for the renewer to report the turn."""
    deadline = time.monotonic() + 10
    while not _lease_warnings(caplog, conversation_id):
        assert time.monotonic() < deadline, "the renewer never reported the lost lock"
        time.sleep(0.02)


def test_a_turn_whose_lock_is_lost_goes_on_and_says_so_once(redis_server: RedisServer, caplog):
    """The key vanishes mid-turn (as when Redis restarts empty) and a rival takes it: the
    renewal finds another token, the turn is warned about once, goes on, and its release
    leaves the rival's lock alone."""
    lock, rival = redis_lock(redis_server.url, lease_seconds=0.3), redis_lock(redis_server.url)
    key = REDIS_LOCK_PREFIX + "c1"
    try:
        with lock.hold("c1", timeout=1):
            lock.client.delete(key)
            with rival.hold("c1", timeout=0.5):
                rival_token = rival.client.get(key)
                _until_logged(caplog, "c1")
            # the rival's turn ended; this one is still running, then ends
        assert rival_token is not None
        [warning] = _lease_warnings(caplog, "c1")  # once, not at every renewal nor at release
        assert "lost" in warning
    finally:
        lock.close(), rival.close()


def test_a_turn_goes_on_while_redis_is_unreachable_and_says_so_once(redis_server: RedisServer, caplog):
    lock = redis_lock(redis_server.url, lease_seconds=0.3)
    try:
        with lock.hold("c1", timeout=1):
            redis_server.kill()
            _until_logged(caplog, "c1")
            redis_server.start()  # empty: the turn's key is gone with the old process
        [warning] = _lease_warnings(caplog, "c1")
        assert "unreachable" in warning
        with lock.hold("c1", timeout=1):  # the next turn takes and renews its lock as usual
            assert lock.client.exists(REDIS_LOCK_PREFIX + "c1")
        assert len(_lease_warnings(caplog, "c1")) == 1
    finally:
        lock.close()


def test_a_release_after_the_rival_took_the_lock_leaves_the_rivals_lock(redis_server: RedisServer):
    lock, rival = redis_lock(redis_server.url, lease_seconds=0.3), redis_lock(redis_server.url)
    key = REDIS_LOCK_PREFIX + "c1"
    try:
        with lock.hold("c1", timeout=1):
            lock.client.delete(key)
            rival_lock = rival.client.lock(key, timeout=30)
            assert rival_lock.acquire(blocking=False)
        assert lock.client.get(key) == rival_lock.local.token  # the release did not free it
    finally:
        lock.close(), rival.close()


def test_the_settings_pick_the_lock(tmp_path, redis_server: RedisServer):
    client = redis_client(redis_server.url)
    assert isinstance(
        make_conversation_lock("process", workspace=tmp_path, client=None, lease_seconds=30), ProcessConversationLock
    )
    made = make_conversation_lock("file", workspace=tmp_path, client=None, lease_seconds=30)
    assert isinstance(made, FileConversationLock) and made.directory == tmp_path / "locks"
    made_redis = make_conversation_lock("redis", workspace=tmp_path, client=client, lease_seconds=12)
    assert isinstance(made_redis, RedisConversationLock) and made_redis.lease_seconds == 12


def test_the_redis_url_is_checked_picks_the_default_lock_and_is_never_saved(tmp_path):
    from bot.settings import CsbotSettings, InvalidSettingsError

    url = "redis://:hunter2@10.0.0.7:6379/3"
    settings = CsbotSettings.from_env(tmp_path, env={"CSBOT_REDIS_URL": url})
    assert settings.conversation_lock_kind == "redis"
    assert "hunter2" not in repr(settings.server) and "redis_url" not in settings.to_json()["server"]
    assert CsbotSettings.from_env(tmp_path, env={}).conversation_lock_kind == "process"
    chosen = CsbotSettings.from_env(tmp_path, env={"CSBOT_REDIS_URL": url, "CSBOT_CONVERSATION_LOCK": "file"})
    assert chosen.conversation_lock_kind == "file"
    with pytest.raises(InvalidSettingsError, match="CSBOT_REDIS_URL"):
        CsbotSettings.from_env(tmp_path, env={"CSBOT_CONVERSATION_LOCK": "redis"})
    with pytest.raises(InvalidSettingsError, match="must start with redis://"):
        CsbotSettings.from_env(tmp_path, env={"CSBOT_REDIS_URL": "http://10.0.0.7:6379"})
    with pytest.raises(InvalidSettingsError, match="cannot be read"):
        CsbotSettings.from_env(tmp_path, env={"CSBOT_REDIS_URL": "redis://10.0.0.7:port/0"})


def test_the_database_url_is_checked_picks_the_postgres_lock_and_is_never_saved(tmp_path):
    from bot.settings import CsbotSettings, InvalidSettingsError

    url = "postgresql://csbot:hunter2@10.0.0.5:5432/csbot"
    settings = CsbotSettings.from_env(tmp_path, env={"CSBOT_DATABASE_URL": url})
    assert settings.conversation_lock_kind == "postgres" and settings.store_target == url
    assert "hunter2" not in repr(settings) and "database_url" not in settings.to_json()
    with_redis = CsbotSettings.from_env(
        tmp_path, env={"CSBOT_DATABASE_URL": url, "CSBOT_REDIS_URL": "redis://r:6379/0"}
    )
    assert with_redis.conversation_lock_kind == "redis"
    assert CsbotSettings.from_env(tmp_path, env={}).store_target == tmp_path / "store.db"
    with pytest.raises(InvalidSettingsError, match="CSBOT_DATABASE_URL"):
        CsbotSettings.from_env(tmp_path, env={"CSBOT_CONVERSATION_LOCK": "postgres"})
    with pytest.raises(InvalidSettingsError, match="must start with postgresql://") as caught:
        CsbotSettings.from_env(tmp_path, env={"CSBOT_DATABASE_URL": "mysql://u:hunter2@h/db"})
    assert "hunter2" not in str(caught.value)


def test_the_file_lock_keeps_a_fixed_set_of_stripes(tmp_path):
    lock = file_lock(tmp_path)
    for i in range(500):
        with lock.hold(f"conversation-{i}", timeout=1):
            pass
    assert len(list((tmp_path / "locks").iterdir())) == 64
    assert lock.path_for("abc") == lock.path_for("abc")


# -- the inference pool holds the lock around a turn ---------------------------------
class Gate:
    """A turn that waits, inside its lock, until the test opens the gate."""

    def __init__(self) -> None:
        self.entered, self.opened = threading.Event(), threading.Event()
        self.order: list[str] = []


@conversation_turn
def gated_turn(gate: Gate, conversation_id: str, name: str) -> str:
    gate.order.append(f"{name} in")
    gate.entered.set()
    assert gate.opened.wait(30)
    gate.order.append(f"{name} out")
    return name


@conversation_turn
def quick_turn(gate: Gate, conversation_id: str, name: str) -> str:
    gate.order.append(f"{name} in")
    gate.order.append(f"{name} out")
    return name


@conversation_turn
def streamed_turn(gate: Gate, conversation_id: str, name: str) -> Iterator[str]:
    gate.order.append(f"{name} in")
    yield "piece"
    gate.entered.set()
    assert gate.opened.wait(30)
    gate.order.append(f"{name} out")
    yield name


def not_a_turn(gate: Gate, conversation_id: str, name: str) -> str:
    gate.order.append(name)
    return name


def two_replicas(locks: Callable[[], ConversationLock]) -> tuple[Gate, InferencePool, InferencePool]:
    """Two pools (one per replica) whose resource is one shared gate, each with its own lock
    object over the same lock store."""
    gate = Gate()
    return gate, InferencePool(lambda: gate, 1, lock=locks()), InferencePool(lambda: gate, 1, lock=locks())


async def _until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 30)


def test_a_turn_on_one_replica_waits_for_the_turn_of_the_same_conversation_on_another(tmp_path):
    async def main() -> list[str]:
        gate, a, b = two_replicas(lambda: file_lock(tmp_path))
        # a third replica: b's one worker waits for the lock with the second turn
        c = InferencePool(lambda: gate, 1, lock=file_lock(tmp_path))
        await a.start(), await b.start(), await c.start()
        try:
            first = asyncio.create_task(a.call("c1", gated_turn, "c1", "first"))
            await _until(gate.entered)
            second = asyncio.create_task(b.call("c1", quick_turn, "c1", "second"))
            # other conversations, and calls that are not turns, do not wait
            assert await c.call("c2", quick_turn, "c2", "other") == "other"
            assert await c.call("c1", not_a_turn, "c1", "read") == "read"
            assert not second.done()
            gate.opened.set()
            assert (await first, await second) == ("first", "second")
            return gate.order
        finally:
            await a.close(), await b.close(), await c.close()

    order = asyncio.run(main())
    assert order == ["first in", "other in", "other out", "read", "first out", "second in", "second out"]


def test_a_streamed_turn_holds_its_lock_until_its_stream_ends(tmp_path):
    async def main() -> list[str]:
        gate, a, b = two_replicas(lambda: file_lock(tmp_path))
        await a.start(), await b.start()
        try:
            stream = a.stream("c1", streamed_turn, "c1", "streamed")
            assert await anext(stream) == "piece"
            await _until(gate.entered)
            second = asyncio.create_task(b.call("c1", quick_turn, "c1", "second"))
            await asyncio.sleep(0.05)
            assert not second.done()
            gate.opened.set()
            assert [item async for item in stream] == ["streamed"]
            assert await second == "second"
            return gate.order
        finally:
            await a.close(), await b.close()

    assert asyncio.run(main()) == ["streamed in", "streamed out", "second in", "second out"]


def test_a_turn_that_cannot_have_its_lock_by_its_deadline_never_runs(tmp_path):
    from bot.server.inference import TurnQueue

    async def main() -> tuple[Gate, BaseException | str]:
        gate = Gate()
        a = InferencePool(lambda: gate, 1, lock=file_lock(tmp_path))
        b = InferencePool(lambda: gate, 1, lock=file_lock(tmp_path), queue=TurnQueue(deadline_seconds=0.6))
        await a.start(), await b.start()
        try:
            first = asyncio.create_task(a.call("c1", gated_turn, "c1", "first"))
            await _until(gate.entered)
            try:
                outcome: BaseException | str = await b.call("c1", quick_turn, "c1", "late")
            except ConversationBusyError as e:
                outcome = e
            gate.opened.set()
            await first
            return gate, outcome
        finally:
            await a.close(), await b.close()

    gate, outcome = asyncio.run(main())
    assert isinstance(outcome, ConversationBusyError)
    assert gate.order == ["first in", "first out"]


# -- two real apps on one workspace and one Redis (slow: real models) ----------------
@pytest.fixture
def two_apps(demo_workspace, tmp_path, redis_server: RedisServer):
    """Two apps serving one copy of the demo workspace (one SQLite store in WAL) with one
    Redis; the first app's turns wait at a gate the test opens."""
    from tests.bot.server.conftest import copy_workspace, quiet_settings
    from tests.bot.server.serving import GatedAssistant, serving

    workspace = copy_workspace(demo_workspace, tmp_path / "ws")
    settings = quiet_settings(workspace, redis_url=redis_server.url, turn_deadline_seconds=20)
    gated = GatedAssistant(settings)
    with serving(settings, gated.factory) as (a, _), serving(settings) as (b, _):
        b.tokens = a.tokens  # one set of conversations, whichever app is asked
        yield a, b, gated, redis_server


def _send(live, conversation_id: str, text: str, **extra) -> Callable[[], httpx.Response]:
    """Send a message on a thread now; the returned function waits for its answer."""
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(live.say(conversation_id, text, **extra)))
    thread.start()

    def answer() -> httpx.Response:
        thread.join(60)
        return answers[0]

    return answer


@pytest.mark.slow
def test_two_apps_take_one_conversations_turns_in_order_and_a_retry_gets_the_stored_reply(two_apps):
    a, b, gated, _ = two_apps
    cid = a.new_conversation()
    first = _send(a, cid, "where is my order?", client_message_id="m1")
    gated.wait_entered()  # app A is inside the turn, holding the conversation's lock
    retried = _send(b, cid, "where is my order?", client_message_id="m1")  # the client retried on B
    second = _send(b, cid, "I want a refund", client_message_id="m2")
    time.sleep(0.3)
    with a.store() as store:
        assert store.messages(cid) == []  # nothing written while A's turn is open
    gated.opened.set()
    r1, r_retry, r2 = first(), retried(), second()
    assert [r.status_code for r in (r1, r_retry, r2)] == [200, 200, 200]
    assert r_retry.json()["message_id"] == r1.json()["message_id"]  # the stored reply, no second turn
    with a.store() as store:
        messages = store.messages(cid)
    turns = [(m["turn"], m["role"], m.get("client_message_id")) for m in messages]
    assert turns == [(0, "customer", "m1"), (1, "bot", None), (2, "customer", "m2"), (3, "bot", None)]
    assert messages[3]["id"] == r2.json()["message_id"]


@pytest.mark.slow
def test_two_apps_answer_503_while_redis_is_down_and_take_turns_again_once_it_is_back(two_apps):
    a, b, gated, redis = two_apps
    gated.opened.set()  # app A's turns run freely here
    cid = a.new_conversation()
    redis.kill()
    for live in (a, b):
        refused = live.say(cid, "where is my order?", client_message_id="m1")
        assert refused.status_code == 503 and refused.json()["code"] == "lock_unavailable"
        assert int(refused.headers["Retry-After"]) >= 1
    with a.store() as store:
        assert store.messages(cid) == []
    redis.start()
    for live, cmid in ((b, "m1"), (a, "m2")):  # no restart of either app
        answered = live.say(cid, "where is my order?" if cmid == "m1" else "thanks", client_message_id=cmid)
        assert answered.status_code == 200, answered.text
    with a.store() as store:
        assert [m["turn"] for m in store.messages(cid)] == [0, 1, 2, 3]
