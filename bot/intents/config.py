"""The intent classifier's settings (`IntentClassifierConfig`) and the names of its OOS scores."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

OosScore = Literal["combined", "max_prob", "energy", "nearest", "class_nearest"]
OOS_SCORES: tuple[str, ...] = ("combined", "max_prob", "energy", "nearest", "class_nearest")


@dataclass(frozen=True)
class IntentClassifierConfig:
    # LinearSVC regularisation (1.0 was best or tied on a BANKING77 held-out split)
    C: float = 1.0
    # add word (1-2) and char (3-6) n-gram TF-IDF of the raw text to the embedding
    use_text_features: bool = True
    # block weights in the concatenated feature vector (each block is L2-normalised)
    embedding_weight: float = 1.5
    word_weight: float = 0.7
    char_weight: float = 0.7
    word_ngram_range: tuple[int, int] = (1, 2)
    char_ngram_range: tuple[int, int] = (3, 6)
    char_min_df: int = 2
    # OOS calibration: folds of intents held out as pseudo-unknown
    oos_holdout_folds: int = 3
    # in-scope accuracy we accept to lose to OOS flagging (0.02 = 2 points)
    oos_max_inscope_loss: float = 0.02
    # part of that budget spent on the nearest-example cosine floor (the off-topic net)
    oos_floor_loss: float = 0.002
    # which score decides OOS (thresholds for all are calibrated and saved)
    oos_score: OosScore = "combined"
    # share of each known intent's rows kept out of calibration models (in-scope validation)
    calibration_val_fraction: float = 0.2
    # neighbours of the predicted intent averaged in the `class_nearest` score
    class_neighbors: int = 3
    min_examples_per_label: int = 3
    ranking_size: int = 3
    max_iter: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.oos_score not in OOS_SCORES:
            raise ValueError(f"oos_score must be one of {OOS_SCORES}, got {self.oos_score!r}")
        if not 0.0 <= self.oos_max_inscope_loss < 1.0:
            raise ValueError("oos_max_inscope_loss must be in [0, 1)")
        if not 0.0 <= self.oos_floor_loss <= self.oos_max_inscope_loss:
            raise ValueError("oos_floor_loss must be in [0, oos_max_inscope_loss]")
        if self.oos_holdout_folds < 2:
            raise ValueError("oos_holdout_folds must be at least 2")
        if self.min_examples_per_label < 2:
            raise ValueError("min_examples_per_label must be at least 2")
        if not 0.0 < self.calibration_val_fraction < 1.0:
            raise ValueError("calibration_val_fraction must be in (0, 1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntentClassifierConfig:
        """A config from JSON (saved metadata, config overrides): unknown keys are ignored and
        lists become the tuples the n-gram ranges are."""
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**kwargs)
