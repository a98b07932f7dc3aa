"""A trained intent model and the signals it gives a batch of queries: class probabilities
(a softmax of the linear decisions over a fitted temperature) and the out-of-scope signals
(max probability, energy, margin, cosine to the nearest training example and to the
predicted intent's nearest examples), plus the combiner that merges them into one score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.intents.config import IntentClassifierConfig
from bot.intents.features import FeatureBuilder
from bot.intents.linear import LinearModel, fit_linear_svc

# signal name -> one value per query ("probs": one row per query)
Signals = dict[str, np.ndarray]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def nearest_similarities(
    queries: np.ndarray,
    train_vectors: np.ndarray,
    train_y: np.ndarray,
    predicted: np.ndarray,
    k: int,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine to the nearest training row, and mean cosine to the k nearest rows of the
    predicted intent (vectors are L2-normalised, so inner product = cosine)."""
    n = len(queries)
    nearest = np.empty(n, dtype=np.float64)
    class_nearest = np.empty(n, dtype=np.float64)
    order = np.argsort(train_y, kind="stable")
    sorted_y = train_y[order]
    for start in range(0, n, chunk):
        q = np.asarray(queries[start : start + chunk], dtype=np.float32)
        s = q @ train_vectors.T
        nearest[start : start + len(q)] = s.max(axis=1)
        s = s[:, order]
        for i, c in enumerate(predicted[start : start + len(q)]):
            lo, hi = np.searchsorted(sorted_y, c, "left"), np.searchsorted(sorted_y, c, "right")
            row = s[i, lo:hi]
            kk = min(k, len(row))
            class_nearest[start + i] = np.partition(row, len(row) - kk)[-kk:].mean()
    return nearest, class_nearest


@dataclass
class IntentScorer:
    """A trained feature builder + linear model + the data the OOS signals need."""

    features: FeatureBuilder
    model: LinearModel
    temperature: float
    train_vectors: np.ndarray  # (n, dim) float32, L2-normalised
    train_y: np.ndarray  # (n,) int class index into model.classes_

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        texts: Sequence[str],
        y: np.ndarray,
        config: IntentClassifierConfig,
        temperature: float = 1.0,
    ) -> IntentScorer:
        features = FeatureBuilder(config)
        model = fit_linear_svc(features.fit_transform(vectors, texts), y, config)
        return cls(features, model, temperature, np.ascontiguousarray(vectors, dtype=np.float32), y)

    def decisions(self, vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        return self.model.decision_columns(self.features.transform(vectors, texts))

    def signals(
        self, vectors: np.ndarray, texts: Sequence[str], k: int, decisions: np.ndarray | None = None
    ) -> Signals:
        """Probabilities, the predicted class index and every OOS signal (higher = more
        in-scope); `decisions` saves recomputing them when the caller has them."""
        d = self.decisions(vectors, texts) if decisions is None else decisions
        z = d / self.temperature
        probs = softmax(z)
        predicted = probs.argmax(axis=1)
        nearest, class_nearest = nearest_similarities(
            vectors, self.train_vectors, self.train_y, self.model.classes_[predicted], k
        )
        top2 = np.sort(z, axis=1)[:, -2:] if z.shape[1] > 1 else np.concatenate([z, z], axis=1)
        return {
            "probs": probs,
            "predicted": predicted,
            "max_prob": probs.max(axis=1),
            "energy": logsumexp(z),
            "margin": top2[:, 1] - top2[:, 0],
            "nearest": nearest,
            "class_nearest": class_nearest,
        }


def combiner_features(signals: Signals) -> np.ndarray:
    """The OOS signals the combiner reads, one row per query (max probability as a logit)."""
    p = np.clip(signals["max_prob"], 1e-6, 1 - 1e-6)
    return np.stack(
        [np.log(p / (1 - p)), signals["energy"], signals["margin"], signals["nearest"], signals["class_nearest"]],
        axis=1,
    )


# columns of `combiner_features`
N_COMBINER_FEATURES = 5


@dataclass(frozen=True)
class OosCombiner:
    """A logistic regression over the standardised `combiner_features`: the `combined` score."""

    mean: np.ndarray  # (N_COMBINER_FEATURES,)
    scale: np.ndarray  # (N_COMBINER_FEATURES,)
    model: LinearModel  # one decision column: in-scope (1) against pseudo-OOS (0)

    def score(self, signals: Signals) -> np.ndarray:
        return self.model.decision_function((combiner_features(signals) - self.mean) / self.scale)
