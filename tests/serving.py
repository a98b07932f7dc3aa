"""Real `csbot serve` processes and an HAProxy in front of them, for the tests and benches
that need the service as it is deployed: each its own process on a free 127.0.0.1 port, its
output in a log file, stopped at the end (or killed with SIGKILL, for the fault tests).

Several replicas share one workspace, so they share its SQLite store (WAL, across
processes) and its secret: that is the several-replicas topology on one host. HAProxy
(the Debian package, /usr/sbin/haproxy) balances them, checks `/readyz`, retries a request
whose replica died on another one, and names the replica that answered in the
`X-Csbot-Replica` response header.

Nothing here imports pytest: the benches use it too. Failures raise `ServingError` with
the end of the process's log.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.errors import CsbotError

REPO = Path(__file__).resolve().parents[1]
CSBOT = Path(sys.executable).with_name("csbot")
HAPROXY = Path("/usr/sbin/haproxy")


def require_haproxy() -> Path:
    """HAProxy's binary; its absence skips the caller's test, or fails it under CI=true
    (where .ci/run must have installed it)."""
    if not HAPROXY.exists():
        import pytest

        reason = f"{HAPROXY} is absent (apt-get install haproxy): the replicas topology cannot run"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it (.ci/run)")
        pytest.skip(reason)
    return HAPROXY


REPLICA_HEADER = "X-Csbot-Replica"
READY_TIMEOUT_S = 180.0
# one secret for every replica of a topology (they share the workspace, and a secret made
# on first use by two processes starting at once could be read half written)
SHARED_SECRET = "replicas-share-this-test-secret-0123456789abcdef"


class ServingError(CsbotError):
    """A `csbot serve` or HAProxy process did not start, or died, or did not get ready."""


# ports `free_port` has handed out in this process: replicas started together each bind
# theirs seconds later, so until then the OS may offer the same free port twice
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that this process has
    not handed out before (two replicas given one port: one fails to bind, and the other
    answers the first one's readiness checks)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def log_tail(path: Path, chars: int = 4000) -> str:
    """The end of a process's log, for an error message."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


def stop_process(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """End a process this test started: SIGTERM, then SIGKILL if it is still there after
    `grace_s` seconds; returns once it is gone (no zombie left behind). A process started
    with `start_new_session=True` is ended with its whole process group, so the workers it
    spawned (a Sanic server's) do not outlive the test."""
    own_group = proc.poll() is None and _leads_its_group(proc.pid)
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM, own_group)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL, own_group)
            proc.wait(timeout=30)
    if own_group:  # workers still there after their parent ended
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _leads_its_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _signal(proc: subprocess.Popen, sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def quiet_serve_env(**settings: str) -> dict[str, str]:
    """The environment of a `csbot serve` under test: offline, rate limits off (every client
    comes from 127.0.0.1), warnings only in the log; `settings` (CSBOT_* names) override."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CSBOT_RATE_LIMIT_PER_IP": "0",
        "CSBOT_RATE_LIMIT_PER_SESSION": "0",
        "CSBOT_LOG_LEVEL": "warning",
        **settings,
    }


@dataclass
class ServeProcess:
    """One `csbot serve` process on 127.0.0.1:`port`."""

    name: str
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def readiness(self) -> int | None:
        """The HTTP status of GET /readyz, or None when nothing answers yet."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except (urllib.error.URLError, OSError):
            return None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Wait until /readyz answers 200; returns the seconds waited. Raises `ServingError`
        with the log when the process exits or stays unready for `timeout` seconds."""
        started = time.monotonic()
        while self.readiness() != 200:
            if not self.running:
                raise ServingError(
                    f"csbot serve {self.name} exited with {self.proc.returncode}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() - started > timeout:
                raise ServingError(f"csbot serve {self.name} not ready after {timeout:g} s:\n{log_tail(self.log_path)}")
            time.sleep(0.2)
        if not self.running:  # what answered was another process on the same port
            raise ServingError(
                f"csbot serve {self.name} exited with {self.proc.returncode}:\n{log_tail(self.log_path)}"
            )
        return time.monotonic() - started

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once the process has ended, or None if it still runs after `timeout` s."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM (a clean shutdown, as a deploy does), then SIGKILL after `grace_s`."""
        stop_process(self.proc, grace_s)

    def kill_hard(self) -> None:
        """SIGKILL: the process dies wherever it is, mid-turn included (the crash a fault
        test simulates); nothing of it runs afterwards."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def start_serve(
    workspace: Path,
    log_path: Path,
    *,
    name: str = "csbot",
    port: int | None = None,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> ServeProcess:
    """Start `csbot serve` on `workspace` (not waiting for it to be ready); its output goes to
    `log_path` (a pipe nobody reads would fill up and block the server's logging)."""
    port = port or free_port()
    cmd = [
        str(CSBOT),
        "serve",
        "--workspace",
        str(workspace),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=dict(env) if env is not None else quiet_serve_env(), stdout=log, stderr=subprocess.STDOUT
        )
    return ServeProcess(name, port, proc, log_path)


@contextmanager
def csbot_serve(
    workspace: Path, log_path: Path, *, workers: int = 1, env: Mapping[str, str] | None = None
) -> Iterator[ServeProcess]:
    """`csbot serve` on `workspace` until the block ends, ready (/readyz 200) when it starts."""
    server = start_serve(workspace, log_path, workers=workers, env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# -- HAProxy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnBound:
    """Customers' messages bounded at the balancer, as deploy/haproxy/haproxy.cfg bounds them:
    each replica works on at most `per_replica` at once, `queued` more wait in HAProxy's
    queue, and past that a message is refused by HAProxy itself, at once, with 503 `busy`
    and Retry-After (no replica reads it)."""

    per_replica: int
    queued: int


# deploy/haproxy/haproxy.cfg's answer to a message past the bound, word for word
BALANCER_BUSY = '{"code":"busy","detail":"the assistant is busy; retry after 2 s"}'
_BUSY_RULE = (
    "status 503 content-type application/json hdr Retry-After 2 string " + '"' + BALANCER_BUSY.replace('"', '\\"') + '"'
)


def haproxy_config(
    port: int,
    stats_port: int,
    servers: Mapping[str, int],
    maxconn_per_server: int = 16,
    turn_bound: TurnBound | None = None,
) -> str:
    """An HAProxy configuration that balances `servers` (name -> port on 127.0.0.1).

    - health: GET /readyz every 500 ms; a replica is taken out after 2 failed checks, or
      at its first failed connection, and back in after 2 good checks (so none gets
      traffic while its models load);
    - retries: a request whose connection failed, whose replica closed the connection
      without answering (a crash mid-turn) or did not answer in time is sent again, to
      another replica (`option redispatch 1`: every retry picks another). That is safe
      only because a message carries a `client_message_id`: the replica that gets the
      retry finds the stored turn, if the dead one wrote it, instead of taking a second.
      A streamed answer cut after it began cannot be retried here: its client sends the
      message again;
    - each replica gets at most `maxconn_per_server` requests at once; the rest wait in
      HAProxy's queue, where any replica that frees up can take them;
    - with `turn_bound`, customers' messages (POST .../messages and .../messages/stream) go
      to a second back end, `turns`, over the same replicas, bounded as `TurnBound` says;
    - `X-Csbot-Replica` on every answer names the replica that gave it;
    - the statistics, as CSV, on 127.0.0.1:`stats_port`/stats;csv;
    - one log line per request on HAProxy's standard output (the replica, the retries,
      how the request ended).
    """
    lines = [
        "global",
        "    maxconn 4096",
        "    log stdout format raw local0",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    timeout connect 2s",
        "    timeout client 120s",
        "    timeout server 60s",
        "    timeout queue 60s",
        "    timeout http-keep-alive 10s",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout",
        # the whole request is read before it goes to a replica: without it HAProxy can
        # start forwarding a POST before its body is in, and then never retries it
        "    option http-buffer-request",
        "frontend csbot",
        f"    bind 127.0.0.1:{port}",
        *(
            [
                "    acl turn_request method POST",
                "    acl turn_request_path path_reg ^/api/v1/conversations/[^/]+/messages(/stream)?$",
                "    use_backend turns if turn_request turn_request_path",
            ]
            if turn_bound is not None
            else []
        ),
        "    default_backend replicas",
        *_backend("replicas", servers, maxconn_per_server),
        *(
            _backend(
                "turns",
                servers,
                turn_bound.per_replica,
                [
                    f"    http-request return {_BUSY_RULE} if {{ queue(turns) ge {turn_bound.queued} }}",
                    "    timeout queue 10s",
                    f"    http-error {_BUSY_RULE}",
                ],
            )
            if turn_bound is not None
            else []
        ),
        "listen stats",
        f"    bind 127.0.0.1:{stats_port}",
        "    stats enable",
        "    stats uri /stats",
    ]
    return "\n".join(lines) + "\n"


def _backend(name: str, servers: Mapping[str, int], maxconn: int, rules: list[str] | None = None) -> list[str]:
    return [
        f"backend {name}",
        *(rules or []),
        "    balance roundrobin",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        # a refused or failed connection takes the replica out at once (observe layer4),
        # without waiting for two failed checks: requests queued for a dead replica then go
        # to the others instead of failing their retries on it
        f"    default-server check inter 500ms fall 2 rise 2 maxconn {maxconn}"
        " observe layer4 error-limit 1 on-error mark-down",
        f"    http-response set-header {REPLICA_HEADER} %[srv_name]",
        *(f"    server {server} 127.0.0.1:{server_port}" for server, server_port in servers.items()),
    ]


@dataclass
class Balancer:
    """A running HAProxy: `url` is its front end."""

    port: int
    stats_port: int
    proc: subprocess.Popen
    config_path: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server_stats(self, backend: str = "replicas") -> dict[str, dict[str, str]]:
        """HAProxy's statistics row of each replica of the back end, by replica name:
        `status` (UP, DOWN, ...), `scur` (requests at it now), `stot` (sessions so far),
        `wretr` and `wredis` (retries and redispatches), `eresp` (failed answers), ..."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5) as r:
            text = r.read().decode()
        rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == backend and row["svname"] != "BACKEND"}

    def wait_status(
        self, wanted: Mapping[str, str], timeout: float = READY_TIMEOUT_S, backend: str = "replicas"
    ) -> None:
        """Wait until each named replica has the wanted status (e.g. {"r1": "UP"}) in HAProxy."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServingError(f"haproxy exited with {self.proc.returncode}:\n{log_tail(self.log_path)}")
            try:
                status = {name: row["status"] for name, row in self.server_stats(backend).items()}
            except (urllib.error.URLError, OSError):  # not listening yet
                status = {}
            if all(status.get(name, "").startswith(want) for name, want in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise ServingError(f"haproxy: replicas are {status}, not {dict(wanted)} after {timeout:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc, grace_s=10.0)


def start_haproxy(
    run_dir: Path, servers: Mapping[str, int], maxconn_per_server: int = 16, turn_bound: TurnBound | None = None
) -> Balancer:
    """Write the configuration into `run_dir`, check it, and start HAProxy in the foreground."""
    if not HAPROXY.exists():
        raise ServingError(f"{HAPROXY} is absent: apt-get install haproxy")
    port, stats_port = free_port(), free_port()
    config_path = run_dir / "haproxy.cfg"
    config_path.write_text(haproxy_config(port, stats_port, servers, maxconn_per_server, turn_bound))
    check = subprocess.run([str(HAPROXY), "-c", "-q", "-f", str(config_path)], capture_output=True, text=True)
    if check.returncode != 0:
        raise ServingError(f"haproxy refused {config_path}:\n{check.stdout}{check.stderr}")
    log_path = run_dir / "haproxy.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(HAPROXY), "-db", "-f", str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=run_dir
        )
    return Balancer(port, stats_port, proc, config_path, log_path)


@dataclass
class Topology:
    """N `csbot serve` replicas on one shared workspace behind one HAProxy."""

    workspace: Path
    balancer: Balancer
    replicas: dict[str, ServeProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.balancer.url

    @property
    def store_path(self) -> Path:
        return self.workspace / "store.db"


@contextmanager
def replicas_behind_haproxy(
    workspace: Path,
    run_dir: Path,
    count: int,
    *,
    env: Mapping[str, str] | None = None,
    maxconn_per_server: int = 16,
    turn_bound: TurnBound | None = None,
) -> Iterator[Topology]:
    """Start `count` replicas (r1, r2, ...) on `workspace` at once, one inference worker
    each, and HAProxy in front; yields once HAProxy sees every replica UP. Everything is
    stopped when the block ends (a replica already killed stays dead)."""
    settings = {"CSBOT_SECRET_KEY": SHARED_SECRET, **(env or {})}
    with ExitStack() as stack:
        replicas: dict[str, ServeProcess] = {}
        for i in range(1, count + 1):
            name = f"r{i}"
            replica = start_serve(workspace, run_dir / f"{name}.log", name=name, env=quiet_serve_env(**settings))
            stack.callback(replica.stop)
            replicas[name] = replica
        for replica in replicas.values():
            replica.wait_ready()
        balancer = start_haproxy(
            run_dir, {name: r.port for name, r in replicas.items()}, maxconn_per_server, turn_bound
        )
        stack.callback(balancer.stop)
        balancer.wait_status(dict.fromkeys(replicas, "UP"))
        if turn_bound is not None:
            balancer.wait_status(dict.fromkeys(replicas, "UP"), backend="turns")
        yield Topology(workspace, balancer, replicas)


@contextmanager
def replicas_on_a_copy(
    built: Path,
    run_dir: Path,
    count: int,
    *,
    env: Mapping[str, str] | None = None,
    turn_bound: TurnBound | None = None,
) -> Iterator[Topology]:
    """`replicas_behind_haproxy` on a private copy of the `built` workspace (its store left
    out); once the block ends, no replica's log may hold a traceback."""
    workspace = copy_workspace(built, run_dir / "ws")
    with replicas_behind_haproxy(workspace, run_dir, count, env=env, turn_bound=turn_bound) as topology:
        yield topology
    for replica in topology.replicas.values():
        assert "Traceback" not in replica.log_path.read_text(errors="replace"), log_tail(replica.log_path)


def copy_workspace(source: Path, target: Path) -> Path:
    """A private copy of a built workspace without its store, so a run starts empty."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("store.db*"))
    return target
