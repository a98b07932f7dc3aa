"""Synthetic intent data for the classifier's tests: Gaussian clusters on the unit sphere,
one per intent, with short texts that fit each intent."""

from __future__ import annotations

import numpy as np

DIM = 32
INTENTS = ("refund", "track_order", "cancel_order", "change_address", "payment_methods", "speak_to_human")
WORDS = {
    "refund": ["refund", "money back", "reimburse"],
    "track_order": ["track", "where is my parcel", "delivery status"],
    "cancel_order": ["cancel", "stop my order", "call off"],
    "change_address": ["change address", "new address", "move delivery"],
    "payment_methods": ["pay with card", "paypal", "payment options"],
    "speak_to_human": ["human", "real person", "agent please"],
}
EMBEDDER_ID = "synthetic@test"


def centres(seed: int = 0) -> np.ndarray:
    """One unit vector per intent, in INTENTS order."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(len(INTENTS), DIM))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def sample(n_per_intent: int, seed: int, spread: float = 0.12) -> tuple[np.ndarray, list[str], list[str]]:
    """(vectors, texts, labels): `n_per_intent` rows around each intent's centre."""
    rng = np.random.default_rng(seed)
    intent_centres = centres()
    vectors, texts, labels = [], [], []
    for k, intent in enumerate(INTENTS):
        v = intent_centres[k] + spread * rng.normal(size=(n_per_intent, DIM))
        vectors.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        for i in range(n_per_intent):
            texts.append(f"{WORDS[intent][i % 3]} please {rng.integers(100)}")
            labels.append(intent)
    return np.concatenate(vectors).astype(np.float32), texts, labels
