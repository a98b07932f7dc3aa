"""The intent classifier's predictions (bot.intents.classifier) and the package's import cost."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bot.contracts import IntentClassifier, IntentPrediction
from tests.bot.intents.synthetic import DIM, INTENTS, sample
from tests.helpers import REPO


def test_classifier_implements_the_contract(trained):
    assert isinstance(trained, IntentClassifier)
    assert trained.labels == tuple(sorted(INTENTS))


def test_predicts_the_cluster_each_query_comes_from(trained):
    vectors, texts, labels = sample(10, seed=2)
    preds = trained.predict(vectors, texts)
    assert all(isinstance(p, IntentPrediction) for p in preds)
    accuracy = np.mean([p.intent == y for p, y in zip(preds, labels, strict=True)])
    assert accuracy >= 0.95
    # in-scope queries are mostly not flagged (the calibration budget is 2 points)
    assert np.mean([p.out_of_scope for p in preds]) <= 0.1


def test_ranking_is_the_top_three_sorted_and_probabilities_sum_to_at_most_one(trained):
    vectors, texts, _ = sample(3, seed=3)
    for p in trained.predict(vectors, texts):
        assert len(p.ranking) == 3
        probs = [prob for _, prob in p.ranking]
        assert probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1.0 + 1e-9
        assert all(0.0 <= prob <= 1.0 for prob in probs)
        assert p.ranking[0] == (p.intent, p.confidence)
        assert -1.0 <= p.nearest_similarity <= 1.0 + 1e-6


def test_a_single_vector_and_an_empty_batch_are_accepted(trained):
    vectors, texts, labels = sample(1, seed=4)
    (pred,) = trained.predict(vectors[0], [texts[0]])
    assert pred.intent == labels[0]
    assert trained.predict(np.zeros((0, DIM), dtype=np.float32), []) == []


def test_predict_rejects_vectors_of_the_wrong_dimension(trained):
    with pytest.raises(ValueError, match="shape"):
        trained.predict(np.ones((1, DIM + 1), dtype=np.float32), ["x"])


def test_importing_bot_intents_does_not_import_torch():
    code = "import sys, bot.intents; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
