"""csbot's settings: one nested object, built once at an entry point (a CLI command,
`create_app`) and passed into constructors; no component reads the environment itself.

    settings = CsbotSettings.from_env(workspace, server={"port": 9001})
    settings.embedder.torch_threads, settings.generator.candidates, settings.server.port

Where a value comes from, first match wins: an explicit value (a CLI flag), then the
environment, then the default. Every field is an environment variable: `CSBOT_` + its path
in capitals, sections joined by `__` (CSBOT_GENERATOR__CANDIDATES=1, CSBOT_SERVER__PORT).
The older flat names keep working (`LEGACY_VARIABLES`: CSBOT_EMBEDDER_PATH, CSBOT_PORT, ...);
where both are set, the nested name wins, being the more specific.

The sections of the lower floors stay their own plain dataclasses (retrieval.config,
finetune.decoder); pydantic validates them here. `to_json`/`from_json` are the copy that
`csbot build` keeps in workspace.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceParseError

from bot.channels.config import SECRET_FIELDS as CHANNEL_SECRETS
from bot.channels.config import ChannelsConfig
from bot.server.config import ServerConfig
from finetune.decoder import GeneratorConfig
from retrieval.config import EmbedderConfig, ImportConfig, IndexConfig
from retrieval.errors import CsbotError

DEFAULT_WORKSPACE = ".csbot"
ENV_PREFIX = "CSBOT_"
NESTED_DELIMITER = "__"


@dataclass(frozen=True)
class DialogueConfig:
    max_message_chars: int = 4000
    # turns of history handed to composers (and the GPT-2 prompt)
    history_turns: int = 6
    retrieval_k: int = 5
    # below this calibrated confidence, ask "did you mean A or B?" instead of acting
    clarify_below: float = 0.5
    # a retrieved reply is only used when its cosine similarity to the turn reaches this
    answer_min_score: float = 0.5
    # a knowledge-base article of the classified intent may answer from this similarity on,
    # when no transcript reply fits (they all ask for something already given, say)
    article_min_score: float = 0.3
    # after this many consecutive turns the bot could not help with, hand over to a human
    max_failures_before_handoff: int = 2
    # True: a streamed turn whose composer can stream (GPT-2) releases the reply sentence by
    # sentence while it decodes, the candidate chosen on first sentences. Off by default:
    # that choice cost 0.010 ROUGE-L [0.001, 0.019] on the development split
    # (docs/benchmarks.md); off, the reply is composed whole, then streamed in pieces
    stream_while_composing: bool = False


@dataclass(frozen=True)
class ClassifierSettings:
    """Overrides for bot.intents.IntentClassifierConfig (kept here so that reading the
    settings imports no scikit-learn)."""

    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionsConfig:
    """Where business actions (rasa-sdk, `bot/actions/`) run: in this process when
    `server_url` is None, else on the Rasa action server at that URL (its `/webhook`)."""

    server_url: str | None = None
    # an action (or the server) that takes longer gets the honest fallback reply
    timeout_s: float = 5.0


def _flat_server_names() -> dict[str, tuple[tuple[str, str], ...]]:
    return {f"{ENV_PREFIX}{name.upper()}": (("server", name),) for name in ServerConfig.model_fields}


def _flat_channel_names() -> dict[str, tuple[tuple[str, str], ...]]:
    # the messaging platforms' secrets and tokens were always documented flat
    # (CSBOT_SLACK_SIGNING_SECRET), the way each platform's docs name them
    return {f"{ENV_PREFIX}{name.upper()}": (("channels", name),) for name in ChannelsConfig.model_fields}


# The flat names each section field had before the settings were nested. CSBOT_TORCH_THREADS
# sized torch for the CLI's process (embedder, and the generator that shares torch's pool)
# and, under `csbot serve`, for each inference worker: it keeps all three meanings.
LEGACY_VARIABLES: dict[str, tuple[tuple[str, str], ...]] = {
    **_flat_server_names(),
    **_flat_channel_names(),
    "CSBOT_EMBEDDER_PATH": (("embedder", "model_path"),),
    "CSBOT_TORCH_THREADS": (("embedder", "torch_threads"), ("generator", "torch_threads"), ("server", "torch_threads")),
    "CSBOT_FAISS_THREADS": (("index", "faiss_threads"),),
    "CSBOT_INDEX_KIND": (("index", "kind"),),
    "CSBOT_MAX_MESSAGE_CHARS": (("dialogue", "max_message_chars"),),
    "CSBOT_IMPORT_MAX_BYTES": (("imports", "max_file_bytes"),),
    "CSBOT_IMPORT_MAX_JSON_DEPTH": (("imports", "max_json_depth"),),
}

# section fields that must be at least 1 (the dataclasses of the lower floors do not check them)
_POSITIVE_FIELDS = (
    ("embedder", "batch_size"),
    ("embedder", "torch_threads"),
    ("index", "faiss_threads"),
    ("dialogue", "max_message_chars"),
    ("dialogue", "retrieval_k"),
)

# what workspace.json never holds: secrets stay in the environment (or secret.key)
_NOT_SAVED: dict[str, Any] = {"server": {"secret_key"}, "channels": set(CHANNEL_SECRETS), "database_url": True}
# the conversation store's file in the workspace, unless CSBOT_DATABASE_URL names a server
STORE_FILE = "store.db"
# settings that are one value, not a section of fields (CSBOT_WORKSPACE, CSBOT_DATABASE_URL)
_TOP_LEVEL_FIELDS = ("workspace", "database_url")

# the environment `from_env` was given for this construction (None: os.environ)
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("csbot_settings_environ", default=None)


class InvalidSettingsError(CsbotError, ValueError):
    """A setting has a bad value; the message names each one with its environment variables."""


class CsbotSettings(BaseSettings):
    """Everything csbot can be told: where the workspace is, how to embed, index, import,
    talk, classify, generate, serve and reach the messaging platforms."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_ignore_empty=True,  # CSBOT_X= (empty) means unset, as it always did for the CLI
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    workspace: Path = Field(Path(DEFAULT_WORKSPACE), description="the built assistant (`csbot build`)")
    database_url: SecretStr | None = Field(
        None,
        description="the conversation store on PostgreSQL (postgresql://user:password@host:5432/db), shared by "
        f"every replica; unset: SQLite, the workspace's {STORE_FILE}",
    )
    embedder: EmbedderConfig = EmbedderConfig()
    index: IndexConfig = IndexConfig()
    imports: ImportConfig = ImportConfig()
    dialogue: DialogueConfig = DialogueConfig()
    classifier: ClassifierSettings = ClassifierSettings()
    generator: GeneratorConfig = GeneratorConfig()
    server: ServerConfig = ServerConfig()
    channels: ChannelsConfig = ChannelsConfig()
    actions: ActionsConfig = ActionsConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is None:
            environ = os.environ
        return (init_settings, EnvironmentSource(settings_cls, environ), LegacyEnvironmentSource(settings_cls, environ))

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: SecretStr | None) -> SecretStr | None:
        # the URL itself is never echoed: it may hold the password
        if url is not None and url.get_secret_value().split("://", 1)[0] not in ("postgresql", "postgres"):
            raise ValueError(
                "the database URL must start with postgresql://, e.g. postgresql://csbot@10.0.0.5:5432/csbot"
            )
        return url

    @property
    def conversation_lock_kind(self) -> str:
        """The conversation lock the server uses ("process", "file", "redis", "postgres")."""
        return self.server.lock_kind(self.database_url is not None)

    @model_validator(mode="after")
    def _check_postgres_lock(self) -> CsbotSettings:
        if self.server.conversation_lock == "postgres" and self.database_url is None:
            raise ValueError("conversation_lock is postgres but database_url is unset: set CSBOT_DATABASE_URL too")
        return self

    @property
    def store_target(self) -> Path | str:
        """Where the conversation store lives: the PostgreSQL URL, or the workspace's SQLite file."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return self.workspace / STORE_FILE

    @field_validator("classifier", mode="before")
    @classmethod
    def _decode_overrides(cls, value: object) -> object:
        # CSBOT_CLASSIFIER__OVERRIDES arrives as text: pydantic-settings decodes JSON only for
        # fields whose type it can see, and a dataclass field's annotation is postponed
        if isinstance(value, Mapping) and isinstance(value.get("overrides"), str):
            try:
                return {**value, "overrides": json.loads(value["overrides"])}
            except json.JSONDecodeError as e:
                raise ValueError(f"overrides is not a JSON object: {e.msg}") from None
        return value

    @model_validator(mode="after")
    def _check_positive(self) -> CsbotSettings:
        for section, name in _POSITIVE_FIELDS:
            value = getattr(getattr(self, section), name)
            if value < 1:
                raise ValueError(f"{section}.{name} must be at least 1 ({_variables((section, name))}); got {value!r}")
        return self

    @classmethod
    def from_env(
        cls, workspace: str | Path | None = None, env: Mapping[str, str] | None = None, **explicit: object
    ) -> CsbotSettings:
        """Defaults, overridden by CSBOT_* variables (of `env`, else the process's), overridden
        by an explicit workspace and `explicit` values: a section as a dict is merged over the
        environment's (`server={"port": 9001}`), a section as an object replaces it.

        Raises InvalidSettingsError naming each bad value and the variables that set it."""
        values: dict[str, Any] = dict(explicit)  # pydantic checks each section's type
        if workspace:
            values["workspace"] = Path(workspace)
        token = _ENVIRON.set(env)
        try:
            return cls(**values)
        except ValidationError as e:
            raise InvalidSettingsError(describe_errors(e)) from None
        except SourceParseError as e:  # a section set whole (CSBOT_SERVER=...) that is not JSON
            raise InvalidSettingsError(f"{e}: a section set as one variable is a JSON object") from None
        finally:
            _ENVIRON.reset(token)

    def for_inference_worker(self) -> CsbotSettings:
        """These settings for one of the server's inference workers: torch sized to the
        worker's share of the cores (`ServerConfig.threads_per_worker`)."""
        threads = self.server.threads_per_worker()
        return self.model_copy(
            update={
                "embedder": replace(self.embedder, torch_threads=threads),
                "generator": replace(self.generator, torch_threads=threads),
            }
        )

    def to_json(self) -> dict[str, Any]:
        """What workspace.json records: every section, the secrets and tokens left out."""
        return self.model_dump(mode="json", exclude=_NOT_SAVED)

    @classmethod
    def from_json(cls, saved: Mapping[str, Any], workspace: Path) -> CsbotSettings:
        """The settings a workspace was built with (workspace.json's "config"), for `workspace`
        wherever it is now. Sections or fields it lacks (an older build) take their defaults;
        ones this csbot does not know are ignored. The environment is not read."""
        try:
            return cls.model_validate({**saved, "workspace": workspace})
        except ValidationError as e:
            raise InvalidSettingsError(f"{workspace}/workspace.json: {describe_errors(e)}") from None


class EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the given mapping."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        super().__init__(settings_cls)
        self.env_vars = {
            (name if self.case_sensitive else name.lower()): value
            for name, value in environ.items()
            if not (self.env_ignore_empty and value == "")
        }


class LegacyEnvironmentSource(PydanticBaseSettingsSource):
    """The flat variable names (`LEGACY_VARIABLES`) as nested values."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        super().__init__(settings_cls)
        self.environ = {name.upper(): value for name, value in environ.items()}

    def get_field_value(self, field: object, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole result

    def __call__(self) -> dict[str, Any]:
        result: dict[str, dict[str, str]] = {}
        for variable, targets in LEGACY_VARIABLES.items():
            value = self.environ.get(variable)
            if value is None or value == "":
                continue
            for section, name in targets:
                result.setdefault(section, {})[name] = value
        return result


def _variables(location: tuple[str | int, ...], message: str = "") -> str:
    """The environment variables that set the value at `location` ("CSBOT_PORT or
    CSBOT_SERVER__PORT"). For a whole section (a check across its fields), the flat names
    of the fields the message mentions, and the section's nested form."""
    path = tuple(str(part) for part in location[:2])
    if not path:
        return "settings"
    nested = ENV_PREFIX + NESTED_DELIMITER.join(path).upper()
    if len(path) == 1 and path[0] not in _TOP_LEVEL_FIELDS:
        named = [
            v for v, targets in LEGACY_VARIABLES.items() if any(t[0] == path[0] and t[1] in message for t in targets)
        ]
        return " or ".join([*named, f"{nested}{NESTED_DELIMITER}<FIELD>"])
    legacy = [v for v, targets in LEGACY_VARIABLES.items() if path in targets]
    return " or ".join(dict.fromkeys([*legacy, nested]))


def describe_errors(error: ValidationError) -> str:
    """One line per bad value: where, what it was, why, and which variables set it."""
    lines = []
    for e in error.errors():
        message = str(e["msg"]).removeprefix("Value error, ")
        location = e["loc"]
        if not location:  # a check across fields names its own variables
            lines.append(message)
            continue
        where = ".".join(str(part) for part in location)
        given = e.get("input")
        secret = any("secret" in str(part) or str(part) in ("redis_url", "database_url") for part in location)
        shown = f"={given!r}" if isinstance(given, str | int | float) and not secret else ""
        lines.append(f"{where}{shown}: {message} (set by {_variables(location, message)})")
    return "; ".join(lines)
