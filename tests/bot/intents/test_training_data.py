"""What training data the classifier accepts (bot.intents.training_data)."""

from __future__ import annotations

import pytest

from bot.errors import CsbotError
from bot.intents import EmbeddingIntentClassifier, IntentClassifierConfig, IntentTrainingError
from tests.bot.intents.synthetic import EMBEDDER_ID, sample


def test_too_few_examples_error_names_the_label_and_count():
    vectors, texts, labels = sample(6, seed=6)
    keep = [i for i, y in enumerate(labels) if y != "refund"] + [labels.index("refund")] * 1
    keep += [labels.index("refund") + 1]
    with pytest.raises(IntentTrainingError) as err:
        EmbeddingIntentClassifier.train(
            vectors[keep],
            [texts[i] for i in keep],
            [labels[i] for i in keep],
            IntentClassifierConfig(),
            embedder_id=EMBEDDER_ID,
        )
    assert "'refund' (2)" in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, CsbotError)


def test_a_single_intent_is_refused():
    vectors, texts, _ = sample(5, seed=6)
    with pytest.raises(IntentTrainingError, match="at least 2 intents"):
        EmbeddingIntentClassifier.train(vectors, texts, ["refund"] * len(texts), embedder_id=EMBEDDER_ID)


def test_mismatched_lengths_are_refused():
    vectors, texts, labels = sample(5, seed=6)
    with pytest.raises(IntentTrainingError, match="length mismatch"):
        EmbeddingIntentClassifier.train(vectors, texts[:-1], labels, embedder_id=EMBEDDER_ID)


def test_two_intents_with_three_examples_each_still_train():
    vectors, texts, labels = sample(3, seed=8)
    keep = [i for i, y in enumerate(labels) if y in ("refund", "cancel_order")]
    clf = EmbeddingIntentClassifier.train(
        vectors[keep], [texts[i] for i in keep], [labels[i] for i in keep], embedder_id=EMBEDDER_ID
    )
    assert clf.labels == ("cancel_order", "refund")
    assert len(clf.predict(vectors[keep], [texts[i] for i in keep])[0].ranking) == 2
