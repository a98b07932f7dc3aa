"""The classifier's training rows: checking them (typed errors that name what is wrong),
normalising the vectors, and the fingerprint the metadata records."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

import numpy as np

from bot.intents.config import IntentClassifierConfig
from bot.intents.errors import IntentTrainingError


def validate_training_data(
    vectors: np.ndarray, texts: Iterable[str], labels: Iterable[object], config: IntentClassifierConfig
) -> tuple[np.ndarray, list[str], list[str]]:
    """(L2-normalised float32 vectors, texts, labels as strings), or IntentTrainingError when
    shapes disagree, a vector is not finite, or there are too few intents or examples."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise IntentTrainingError(f"vectors must be a 2-D array (n, dim), got shape {vectors.shape}")
    text_list, label_list = list(texts), [str(lab) for lab in labels]
    if not (len(vectors) == len(text_list) == len(label_list)):
        raise IntentTrainingError(
            f"length mismatch: {len(vectors)} vectors, {len(text_list)} texts, {len(label_list)} labels"
        )
    if not np.all(np.isfinite(vectors)):
        raise IntentTrainingError("vectors contain NaN or infinite values")
    counts = Counter(label_list)
    if len(counts) < 2:
        raise IntentTrainingError(
            f"need at least 2 intents to train a classifier, got {len(counts)}: "
            + ", ".join(f"{k!r} ({v} examples)" for k, v in counts.items())
        )
    few = {k: v for k, v in sorted(counts.items()) if v < config.min_examples_per_label}
    if few:
        raise IntentTrainingError(
            f"every intent needs at least {config.min_examples_per_label} examples; too few for "
            + ", ".join(f"{k!r} ({v})" for k, v in few.items())
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)  # the signals assume cosine = inner product
    return np.ascontiguousarray(vectors, dtype=np.float32), text_list, label_list


def training_data_sha256(vectors: np.ndarray, texts: list[str], labels: list[str]) -> str:
    """SHA-256 over the (label, text) rows and the vectors: which data a model was trained on."""
    h = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        h.update(label.encode())
        h.update(b"\x1f")
        h.update(text.encode())
        h.update(b"\x1e")
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()
