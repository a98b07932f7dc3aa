"""`EmbeddingIntentClassifier`: trains on the shared query embedding and the raw text,
predicts an intent with its confidence and an out-of-scope flag, and saves and loads itself."""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.contracts import IntentPrediction
from bot.intents.calibration import calibrate
from bot.intents.config import IntentClassifierConfig
from bot.intents.persistence import FORMAT_VERSION, read_model, write_model
from bot.intents.scoring import IntentScorer, OosCombiner, Signals
from bot.intents.training_data import training_data_sha256, validate_training_data
from retrieval.progress import Progress, no_progress


class EmbeddingIntentClassifier:
    """Implements `bot.contracts.IntentClassifier` over the shared query embedding."""

    def __init__(
        self,
        scorer: IntentScorer,
        labels: tuple[str, ...],
        config: IntentClassifierConfig,
        thresholds: dict[str, float],
        nearest_floor: float,
        combiner: OosCombiner | None,
        metadata: dict[str, Any],
    ):
        self._scorer = scorer
        self.labels = labels
        self.config = config
        self.thresholds = dict(thresholds)
        self.nearest_floor = float(nearest_floor)
        self._combiner = combiner
        self.metadata = metadata

    @classmethod
    def train(
        cls,
        vectors: np.ndarray,
        texts: list[str],
        labels: list[str],
        config: IntentClassifierConfig | None = None,
        *,
        embedder_id: str,
        progress: Progress = no_progress,
    ) -> EmbeddingIntentClassifier:
        """Calibrate OOS detection on held-out intents, then train the final model on every row."""
        config = config or IntentClassifierConfig()
        vectors, texts, labels = validate_training_data(vectors, texts, labels, config)
        t0 = time.perf_counter()
        label_names = tuple(sorted(set(labels)))
        index = {name: i for i, name in enumerate(label_names)}
        y = np.array([index[lab] for lab in labels], dtype=np.int64)

        cal = calibrate(vectors, texts, y, config, progress)
        progress("training the final model on all rows")
        scorer = IntentScorer.fit(vectors, texts, y, config, temperature=cal.temperature)
        train_seconds = time.perf_counter() - t0

        metadata = {
            "format_version": FORMAT_VERSION,
            "kind": "EmbeddingIntentClassifier",
            "config": asdict(config),
            "embedder_id": embedder_id,
            "dim": int(vectors.shape[1]),
            "labels": list(label_names),
            "n_train": len(labels),
            "label_counts": {lab: int(n) for lab, n in sorted(Counter(labels).items())},
            "training_data_sha256": training_data_sha256(vectors, texts, labels),
            "temperature": cal.temperature,
            "thresholds": cal.thresholds,
            "nearest_floor": cal.nearest_floor,
            "calibration": cal.report,
            "train_seconds": round(train_seconds, 3),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": _library_versions(),
        }
        progress(f"trained on {len(labels)} rows, {len(label_names)} intents in {train_seconds:.1f}s")
        return cls(scorer, label_names, config, cal.thresholds, cal.nearest_floor, cal.combiner, metadata)

    def oos_scores(self, vectors: np.ndarray, texts: Sequence[str] | str) -> Signals:
        """All OOS signals (higher = more in-scope) plus probabilities, for analysis."""
        vectors, text_list = self._check_inputs(vectors, texts)
        sig = self._scorer.signals(vectors, text_list, self.config.class_neighbors)
        sig["combined"] = self._combined(sig)
        return sig

    def predict(self, vectors: np.ndarray, texts: list[str]) -> list[IntentPrediction]:
        if len(texts) == 0 and (vectors is None or len(vectors) == 0):
            return []
        sig = self.oos_scores(vectors, texts)
        score = sig[self.config.oos_score]
        flagged = (score < self.thresholds[self.config.oos_score]) | (sig["nearest"] < self.nearest_floor)
        probs = sig["probs"]
        k = min(self.config.ranking_size, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        out = []
        for i in range(len(probs)):
            ranking = tuple((self.labels[j], float(probs[i, j])) for j in top[i])
            out.append(
                IntentPrediction(
                    intent=ranking[0][0],
                    confidence=ranking[0][1],
                    out_of_scope=bool(flagged[i]),
                    ranking=ranking,
                    nearest_similarity=float(sig["nearest"][i]),
                )
            )
        return out

    def _combined(self, sig: Signals) -> np.ndarray:
        # without pseudo-OOS rows at calibration there is no combiner: the score is the cosine
        if self._combiner is None:
            return sig["nearest"].copy()
        return self._combiner.score(sig)

    def _check_inputs(self, vectors: np.ndarray, texts: Sequence[str] | str) -> tuple[np.ndarray, list[str]]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        text_list = [texts] if isinstance(texts, str) else list(texts)
        if vectors.ndim != 2 or vectors.shape[1] != self.metadata["dim"]:
            raise ValueError(f"expected vectors of shape (n, {self.metadata['dim']}), got {vectors.shape}")
        if len(vectors) != len(text_list):
            raise ValueError(f"{len(vectors)} vectors but {len(text_list)} texts")
        return vectors, text_list

    def save(self, directory: str | Path) -> None:
        """Write the model as plain data (`bot.intents.persistence`, no pickle anywhere)."""
        self.metadata = write_model(Path(directory), self._scorer, self._combiner, self.metadata)

    @classmethod
    def load(cls, directory: str | Path, *, embedder_id: str, dim: int) -> EmbeddingIntentClassifier:
        """Rebuild a saved classifier from plain data. Refuses (typed errors that say to run
        `csbot build`) a missing, corrupted, tampered, inconsistent or pickled model, and
        one trained on another embedder."""
        saved = read_model(Path(directory), embedder_id=embedder_id, dim=dim)
        return cls(
            saved.scorer,
            saved.labels,
            saved.config,
            saved.thresholds,
            saved.nearest_floor,
            saved.combiner,
            saved.metadata,
        )


def _library_versions() -> dict[str, str]:
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }
