"""Linear models reduced to their arrays: fitting the LinearSVC, and the decision function
that predicts both right after training and after a load (the same code, so the same numbers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from bot.intents.config import IntentClassifierConfig

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix


class FittedLinearModel(Protocol):
    """What a fitted scikit-learn linear classifier exposes (LinearSVC, LogisticRegression)."""

    coef_: np.ndarray
    intercept_: np.ndarray
    classes_: np.ndarray


@dataclass(frozen=True)
class LinearModel:
    """A fitted linear classifier reduced to its arrays, which is all its decision function
    needs: what is saved, and what predicts both right after training and after a load."""

    coef: np.ndarray  # (n_classes, n_features), or (1, n_features) for two classes
    intercept: np.ndarray  # (len(coef),)
    classes_: np.ndarray  # (n_classes,) class indices, sorted

    @classmethod
    def of(cls, fitted: FittedLinearModel) -> LinearModel:
        return cls(
            np.asarray(fitted.coef_, dtype=np.float64),
            np.asarray(fitted.intercept_, dtype=np.float64),
            np.asarray(fitted.classes_, dtype=np.int64),
        )

    def decision_function(self, x: np.ndarray | csr_matrix) -> np.ndarray:
        """scikit-learn's `LinearClassifierMixin.decision_function`: one column per class,
        or a single score (of classes_[1]) for two."""
        scores = np.asarray(x @ self.coef.T) + self.intercept
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def decision_columns(self, x: np.ndarray | csr_matrix) -> np.ndarray:
        """The decision values with one column per class, also for two classes."""
        d = np.asarray(self.decision_function(x), dtype=np.float64)
        if d.ndim == 1:  # two classes: one column for classes_[1]
            d = np.stack([-d, d], axis=1)
        return d


def fit_linear_svc(features: csr_matrix, y: np.ndarray, config: IntentClassifierConfig) -> LinearModel:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    model = LinearSVC(C=config.C, max_iter=config.max_iter, random_state=config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, y)
    return LinearModel.of(model)
