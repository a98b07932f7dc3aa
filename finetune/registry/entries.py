"""A registered model (`ModelEntry`) and what a model directory must hold to be registered."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune.checkpoint import MODEL_META, WEIGHT_FILES

REGISTRY_FORMAT = 1
ENTRY_META = "registry.json"
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # vocab.json comes with merges.txt


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: `path` is what a composer loads (`from_pretrained(path)`)."""

    id: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    promoted: bool = False

    @property
    def base(self) -> str | None:
        return self.metadata.get("base")

    @property
    def data_sha256(self) -> str | None:
        return self.metadata.get("data_sha256")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.metadata.get("metrics") or {}

    @property
    def valid_loss(self) -> float | None:
        return self.metrics.get("valid_loss")

    @property
    def registered_at(self) -> str:
        return self.metadata.get("registered_at", "")

    @property
    def approval(self) -> dict[str, Any] | None:
        """{"status": "awaiting"|"approved", "requested_at", "round", "reason", "approved_at",
        "approved_by"} for a candidate registered as awaiting approval; None otherwise."""
        approval = self.metadata.get("approval")
        return approval if isinstance(approval, dict) else None

    @property
    def state(self) -> str:
        """ "promoted", "awaiting approval" or "registered"."""
        if self.promoted:
            return "promoted"
        if (self.approval or {}).get("status") == "awaiting":
            return "awaiting approval"
        return "registered"

    def to_json(self) -> dict[str, Any]:
        return {**self.metadata, "id": self.id, "path": str(self.path), "promoted": self.promoted, "state": self.state}


def utc_now() -> datetime:
    return datetime.now(UTC)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_model_dir(model_dir: Path) -> list[str]:
    """Names of what `model_dir` lacks to be a registrable model (empty when complete)."""
    missing = []
    if not (model_dir / "config.json").is_file():
        missing.append("config.json")
    if not any((model_dir / n).is_file() for n in (*WEIGHT_FILES, *WEIGHT_INDEXES)):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not (
        (model_dir / "tokenizer.json").is_file()
        or ((model_dir / "vocab.json").is_file() and (model_dir / "merges.txt").is_file())
    ):
        missing.append("a tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    if not (model_dir / MODEL_META).is_file():
        missing.append(f"{MODEL_META} (written by `csbot finetune train`)")
    return missing


def missing_files(entry: ModelEntry) -> list[str]:
    """What a registered model's folder lacks: the files a model needs, and every file that
    was registered (removed by hand, or by a disk that lost them)."""
    problems = [f"it lacks {m}" for m in check_model_dir(entry.path)]
    gone = [name for name in sorted(entry.metadata.get("files") or {}) if not (entry.path / name).is_file()]
    if gone:
        problems.append(f"registered file(s) missing: {', '.join(gone[:5])}" + (" ..." if len(gone) > 5 else ""))
    return problems


def weight_files(model_dir: Path) -> list[str]:
    """Relative names of the weight files: the single file, or every shard of an index."""
    for name in WEIGHT_FILES:
        if (model_dir / name).is_file():
            return [name]
    for name in WEIGHT_INDEXES:
        if (model_dir / name).is_file():
            index = json.loads((model_dir / name).read_text(encoding="utf-8"))
            return sorted(set(index.get("weight_map", {}).values())) or [name]
    return []
