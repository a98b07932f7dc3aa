"""The HTTP service's section of the settings (`CsbotSettings.server`): where it listens,
how many inference workers, what it lets clients do and keep open. Validated here, with
messages that say how to write a value; read from the environment by `bot.settings`."""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode

# with batching on and no --workers: a worker holds one turn at a time, so this many
# conversations can put a turn in the same batch (batch_max_turns' default)
BATCHING_WORKERS = 16
REDIS_SCHEMES = ("redis", "rediss", "unix")
_BOOLEAN = TypeAdapter(bool)


class ServerConfig(BaseModel):
    """How `csbot serve` runs: `CsbotSettings.server`. Every field is also an environment
    variable: `CSBOT_` + its name in capitals (CSBOT_PORT, CSBOT_CORS_ORIGINS, ...), or
    CSBOT_SERVER__ + its name."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)

    host: str = Field("127.0.0.1", min_length=1, description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on (0: any free port)")
    workers: int = Field(
        1,
        ge=1,
        le=32,
        description="inference workers: threads that each own an assistant (its own loaded models, or "
        "with batching on the shared ones); a conversation's turns always go to the same one, so they "
        f"run in order [default: 1, or {BATCHING_WORKERS} with batching on]",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="torch threads per inference worker [default: max(1, cores // workers)]; with batching "
        "on, for the encoding thread [default: max(1, cores // 2)] and a GPT-2's decoding thread [default: cores]",
    )
    batching: bool = Field(
        False,
        description="micro-batching across conversations: the models load once and are shared by the "
        "workers; the encodes and GPT-2 decodes of turns waiting at the same moment run as one",
    )
    batch_window_ms: float = Field(
        5.0, ge=0, le=1000, description="with batching: how long a batch waits for more turns after its first"
    )
    batch_max_turns: int = Field(16, ge=1, le=256, description="with batching: turns in one batch at most")
    decode_rows: int = Field(
        20,
        ge=1,
        le=256,
        description="with batching: GPT-2 rows decoding at once, all turns together (a turn decodes one row "
        "per candidate); a turn whose rows do not fit waits for rows to come free. Each row in use holds "
        "its keys and values: layers x 2 x positions x width x 4 bytes (3 MB for the demo's GPT-2)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins of sites that embed the widget (comma-separated or a JSON list); empty: same origin only",
    )
    rate_limit_per_ip: int = Field(60, ge=0, description="API requests per minute per client IP (0: off)")
    rate_limit_per_session: int = Field(20, ge=0, description="messages per minute per conversation (0: off)")
    max_body_bytes: int = Field(16384, ge=512, description="largest accepted request body")
    stream_piece_delay_ms: float = Field(
        0.0, ge=0, le=1000, description="pause between streamed text pieces (a typing effect; 0: none)"
    )
    events_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="how often a live events stream looks for agent messages in the store"
    )
    events_ping_seconds: float = Field(15.0, gt=0, le=300, description="keep-alive comment interval on event streams")
    shutdown_grace_seconds: float = Field(
        5.0, ge=0, description="on shutdown, how long open streams may finish before they are closed"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    # -- the agent panel's sign-in ---------------------------------------------------
    agent_session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="an agent's sign-in lasts this long at most, however active"
    )
    agent_idle_minutes: float = Field(
        60.0, gt=0, description="an agent's sign-in ends after this long without a request from the panel"
    )
    agent_max_failed_sign_ins: int = Field(
        5,
        ge=1,
        description="failed sign-ins per agent name, and per client address, within the window before "
        "further tries are refused (429) until the window has passed",
    )
    agent_sign_in_window_minutes: float = Field(
        15.0, gt=0, description="the window (minutes) over which failed sign-ins are counted"
    )

    # -- who may read what ---------------------------------------------------------
    secret_key: SecretStr | None = Field(
        None,
        min_length=32,
        description="server secret that keys platform-channel conversation ids (HMAC); unset: "
        "generated once into <workspace>/secret.key (mode 0600). Every replica needs the same one",
    )
    conversation_read_hours: float = Field(
        720.0,
        gt=0,
        description="hours after its last message that a conversation stays readable through the "
        "public API with its access token (history, events); after that: 404",
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        description="conversations idle this long are erased (purged at start and hourly); unset: kept",
    )
    history_page_size: int = Field(50, ge=1, le=500, description="messages per history page at most")

    # -- bounds on what one client may hold open or queue ---------------------------
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed "
        "(comma-separated); empty: the peer address is the client",
    )
    max_event_streams: int = Field(1000, ge=1, description="open live event streams at most, overall")
    max_event_streams_per_client: int = Field(
        4, ge=1, description="open live event streams at most per client address (IPv6: per /64)"
    )
    max_queued_turns: int = Field(
        64, ge=1, description="turns waiting for an inference worker at most; past it: 503 + Retry-After"
    )
    turn_deadline_seconds: float = Field(
        30.0, gt=0, description="a turn not started by then is dropped (503); its client has given up"
    )

    # -- several replicas ------------------------------------------------------------
    # not saved in workspace.json (exclude): it is where this deployment runs, and its
    # password is a secret
    redis_url: SecretStr | None = Field(
        None,
        exclude=True,
        description="Redis shared by the replicas (redis://[:password@]host:port/db, rediss://, unix://): "
        "rate limits count across them and a conversation's turns are locked across them; unset: "
        "each process limits and orders on its own (one replica)",
    )
    conversation_lock: Literal["auto", "process", "file", "redis", "postgres"] = Field(
        "auto",
        description="what keeps a conversation's turns in order across processes: redis (needs "
        "CSBOT_REDIS_URL), postgres (advisory locks on the store's PostgreSQL, needs CSBOT_DATABASE_URL), "
        "file (lock files in the shared workspace: replicas on one host), process (none beyond this "
        "process's own ordering); auto: redis when CSBOT_REDIS_URL is set, else postgres when "
        "CSBOT_DATABASE_URL is, else process",
    )
    lock_lease_seconds: float = Field(
        10.0,
        ge=1,
        le=3600,
        description="how long a conversation's Redis lock lives without renewal: a running turn renews "
        "it every third of this; a replica killed mid-turn frees its conversations within it",
    )

    replica_live_seconds: float = Field(
        30.0,
        ge=3,
        le=3600,
        description="a replica whose heartbeat in the store is older than this is taken for dead: its "
        "settings no longer bind a replica starting on the same workspace (it beats every third of it)",
    )

    @model_validator(mode="before")
    @classmethod
    def _workers_for_batching(cls, values: object) -> object:
        """With batching on and no worker count given, enough workers to fill a batch: a
        worker has one turn in flight at a time, so the batch can only be as large as the
        number of workers with a turn."""
        if not isinstance(values, dict) or values.get("workers") is not None:
            return values
        try:  # pydantic's own reading of a boolean ("true", "1", "on", ...)
            batching = _BOOLEAN.validate_python(values.get("batching", cls.model_fields["batching"].default))
        except ValidationError:
            return values  # the field's own validation says what is wrong with it
        return {**values, "workers": BATCHING_WORKERS} if batching else values

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        # the URL itself is never echoed: it may hold the password
        if url is None:
            return None
        if urlsplit(url.get_secret_value()).scheme not in REDIS_SCHEMES:
            raise ValueError(
                "the Redis URL must start with redis://, rediss:// or unix://, e.g. redis://10.0.0.7:6379/0"
            )
        from redis.connection import parse_url  # the client's own reading, so it cannot fail later

        try:
            parse_url(url.get_secret_value())
        except ValueError as e:
            raise ValueError(f"the Redis URL cannot be read ({e}); write e.g. redis://10.0.0.7:6379/0") from None
        return url

    @model_validator(mode="after")
    def _redis_lock_needs_redis(self) -> ServerConfig:
        if self.conversation_lock == "redis" and self.redis_url is None:
            raise ValueError("conversation_lock is redis but redis_url is unset: set CSBOT_REDIS_URL too")
        return self

    def lock_kind(self, database_url_set: bool) -> Literal["process", "file", "redis", "postgres"]:
        """The conversation lock in use, "auto" resolved (`database_url_set`: whether the
        store is on PostgreSQL; see `CsbotSettings.conversation_lock_kind`)."""
        if self.conversation_lock == "auto":
            if self.redis_url is not None:
                return "redis"
            return "postgres" if database_url_set else "process"
        return self.conversation_lock

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as e:
                    raise ValueError(f"CSBOT_CORS_ORIGINS is not a JSON list: {e.msg}") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, networks: list[str]) -> list[str]:
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted proxy {network!r} is not an address or network; write e.g. 10.0.0.5 or 10.0.0.0/8"
                ) from None
        return networks

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*":
                continue  # explicit opt-in: any site may call the API
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
                raise ValueError(
                    f"CORS origin {origin!r} is not an origin; write scheme://host[:port] with no path, "
                    "e.g. https://shop.example.com"
                )
        return [o.rstrip("/") for o in origins]

    def threads_per_worker(self, cores: int | None = None) -> int:
        """torch threads for each inference worker: the configured number, else the cores
        shared out, so N workers encoding at once do not oversubscribe the machine. With
        batching on the workers run no torch (the batchers do): 1."""
        if self.batching:
            return 1
        if self.torch_threads is not None:
            return self.torch_threads
        return max(1, _cores(cores) // self.workers)

    def threads_per_batcher(self, cores: int | None = None) -> int:
        """With batching on, torch threads for the encoding thread: the configured number,
        else half the cores (the decoding thread may run beside it)."""
        if self.torch_threads is not None:
            return self.torch_threads
        return max(1, _cores(cores) // 2)

    def threads_per_decoder(self, cores: int | None = None) -> int:
        """With batching on, torch threads for a GPT-2's decoding thread: the configured
        number, else every core. With a GPT-2 promoted the decoding thread is the busy one;
        on 2 cores, 2 threads there answered more turns a second than 1 (docs/benchmarks.md,
        "Continuous batching")."""
        if self.torch_threads is not None:
            return self.torch_threads
        return _cores(cores)


def _cores(cores: int | None) -> int:
    if cores is not None:
        return cores
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
