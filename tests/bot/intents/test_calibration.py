"""Out-of-scope calibration without OOS data (bot.intents.calibration)."""

from __future__ import annotations

import numpy as np

from bot.intents.calibration import threshold_for_loss
from tests.bot.intents.synthetic import DIM, EMBEDDER_ID, INTENTS, centres


def test_a_vector_far_from_every_cluster_is_out_of_scope(trained):
    intent_centres = centres()
    rng = np.random.default_rng(7)
    far = []
    while len(far) < 5:  # random directions with little overlap with any cluster
        v = rng.normal(size=DIM)
        v /= np.linalg.norm(v)
        if np.max(intent_centres @ v) < 0.3:
            far.append(v)
    preds = trained.predict(np.array(far, dtype=np.float32), ["what is the weather tomorrow"] * 5)
    assert all(p.out_of_scope for p in preds)
    assert all(p.nearest_similarity < 0.5 for p in preds)


def test_calibration_is_recorded_in_the_metadata(trained):
    meta = trained.metadata
    assert meta["embedder_id"] == EMBEDDER_ID and meta["dim"] == DIM
    assert meta["n_train"] == 20 * len(INTENTS)
    assert set(meta["thresholds"]) >= {"combined", "max_prob", "nearest"}
    assert meta["calibration"]["n_pseudo_oos"] > 0
    assert meta["temperature"] > 0
    assert len(meta["training_data_sha256"]) == 64
    assert "scikit-learn" in meta["versions"]


def test_the_threshold_flags_no_more_correct_rows_than_the_budget_allows():
    score = np.array([0.4, 0.1, 0.3, 0.2, 0.05])
    correct = np.array([True, True, True, True, False])
    # 5 rows, 20% budget: one correct row may be flagged (the 0.1), the incorrect one is free
    assert threshold_for_loss(score, correct, 0.2) == 0.2
    assert threshold_for_loss(score, correct, 0.0) == 0.1
    assert threshold_for_loss(score, correct, 0.9) == np.inf
    assert threshold_for_loss(score, np.zeros(5, dtype=bool), 0.2) == -np.inf
