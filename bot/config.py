"""One configuration object, built once (CLI flags > environment > defaults) and passed
into constructors. No component reads the environment itself."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from retrieval.config import EmbedderConfig, ImportConfig, IndexConfig

DEFAULT_WORKSPACE = ".csbot"


@dataclass(frozen=True)
class DialogueConfig:
    max_message_chars: int = 4000
    # turns of history handed to composers (and, later, the GPT-2 prompt)
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


@dataclass(frozen=True)
class ClassifierSettings:
    """Overrides for bot.intents.IntentClassifierConfig (kept here so that reading the
    config imports no scikit-learn)."""

    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CsbotConfig:
    workspace: Path = Path(DEFAULT_WORKSPACE)
    embedder: EmbedderConfig = EmbedderConfig()
    index: IndexConfig = IndexConfig()
    dialogue: DialogueConfig = DialogueConfig()
    classifier: ClassifierSettings = ClassifierSettings()
    imports: ImportConfig = ImportConfig()

    @classmethod
    def from_env(cls, workspace: str | Path | None = None, env: dict[str, str] | None = None) -> CsbotConfig:
        """Defaults, overridden by CSBOT_* variables, overridden by an explicit workspace.

        CSBOT_WORKSPACE, CSBOT_EMBEDDER_PATH, CSBOT_TORCH_THREADS, CSBOT_FAISS_THREADS,
        CSBOT_INDEX_KIND (auto|flat|hnsw|ivf), CSBOT_MAX_MESSAGE_CHARS,
        CSBOT_IMPORT_MAX_BYTES, CSBOT_IMPORT_MAX_JSON_DEPTH.
        """
        env = dict(os.environ if env is None else env)
        ws = Path(workspace or env.get("CSBOT_WORKSPACE") or DEFAULT_WORKSPACE)
        embedder = EmbedderConfig(
            model_path=env.get("CSBOT_EMBEDDER_PATH") or None,
            torch_threads=_int(env, "CSBOT_TORCH_THREADS", EmbedderConfig.torch_threads),
        )
        kind = env.get("CSBOT_INDEX_KIND", IndexConfig.kind)
        if kind not in ("auto", "flat", "hnsw", "ivf"):
            raise ValueError(f"CSBOT_INDEX_KIND={kind!r}; use one of auto, flat, hnsw, ivf")
        index = IndexConfig(kind=kind, faiss_threads=_int(env, "CSBOT_FAISS_THREADS", IndexConfig.faiss_threads))
        dialogue = DialogueConfig(
            max_message_chars=_int(env, "CSBOT_MAX_MESSAGE_CHARS", DialogueConfig.max_message_chars)
        )
        imports = ImportConfig(
            max_file_bytes=_int(env, "CSBOT_IMPORT_MAX_BYTES", ImportConfig.max_file_bytes),
            max_json_depth=_int(env, "CSBOT_IMPORT_MAX_JSON_DEPTH", ImportConfig.max_json_depth),
        )
        return cls(workspace=ws, embedder=embedder, index=index, dialogue=dialogue, imports=imports)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["workspace"] = str(self.workspace)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], workspace: Path) -> CsbotConfig:
        def build(kind: type, values: dict[str, Any]) -> Any:
            names = {f.name for f in fields(kind)}
            return kind(**{k: v for k, v in values.items() if k in names})

        return cls(
            workspace=workspace,
            embedder=build(EmbedderConfig, d.get("embedder", {})),
            index=build(IndexConfig, d.get("index", {})),
            dialogue=build(DialogueConfig, d.get("dialogue", {})),
            classifier=ClassifierSettings(d.get("classifier", {}).get("overrides", {})),
            imports=build(ImportConfig, d.get("imports", {})),
        )


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be at least 1")
    return value
