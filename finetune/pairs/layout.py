"""What a pairs directory holds: the file names, the manifest's counts and hashes, and the
bytes of a pairs file."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

PAIRS_FORMAT = 1
TRAIN_FILE, VALID_FILE, HELDOUT_FILE, MANIFEST_FILE = "train.jsonl", "valid.jsonl", "heldout.jsonl", "manifest.json"
PAIR_FILES = (TRAIN_FILE, VALID_FILE, HELDOUT_FILE)
TARGET_KINDS = ("agent", "suggested", "edited", "bot")


def pair_counts(
    train: list[dict[str, Any]], valid: list[dict[str, Any]], heldout: list[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest's counts, from the pairs themselves (so a rewrite recounts the same way)."""
    pairs = train + valid
    kinds = Counter(p["target_kind"] for p in pairs)
    by_source = Counter(p["source"] for p in pairs)

    def conversations(ps: list[dict[str, Any]]) -> int:
        return len({p["conversation_id"] for p in ps})

    return {
        "pairs": len(pairs),
        "train": len(train),
        "valid": len(valid),
        "heldout": len(heldout),
        "target_kind": {k: kinds.get(k, 0) for k in TARGET_KINDS},
        "source": dict(sorted(by_source.items())),
        "conversations": {
            "total": conversations(pairs),
            "train": conversations(train),
            "valid": conversations(valid),
            "heldout": conversations(heldout),
        },
    }


def jsonl_bytes(pairs: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs).encode("utf-8")


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def file_hashes(files: dict[str, bytes]) -> dict[str, Any]:
    """The manifest's hashes: `data_sha256` of what a model trains on (train.jsonl's bytes
    then valid.jsonl's), and one sha256 per pairs file."""
    return {
        "data_sha256": hashlib.sha256(files.get(TRAIN_FILE, b"") + files.get(VALID_FILE, b"")).hexdigest(),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name in PAIR_FILES},
    }
