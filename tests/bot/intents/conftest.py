"""The classifier most intent tests share: trained once on synthetic clusters."""

from __future__ import annotations

import pytest

from bot.intents import EmbeddingIntentClassifier, IntentClassifierConfig
from tests.bot.intents.synthetic import EMBEDDER_ID, sample


@pytest.fixture(scope="session")
def trained() -> EmbeddingIntentClassifier:
    vectors, texts, labels = sample(20, seed=1)
    return EmbeddingIntentClassifier.train(vectors, texts, labels, IntentClassifierConfig(), embedder_id=EMBEDDER_ID)
