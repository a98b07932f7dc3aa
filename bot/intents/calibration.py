"""Calibration without any out-of-scope data: the softmax temperature, the OOS combiner and
the thresholds of every OOS score.

The training intents are split into `oos_holdout_folds` folds; for each fold a model is
trained on the other intents' rows (minus an in-scope validation slice), and the held-out
fold's rows play the unknown queries. The OOS signals of those rows are combined by a small
logistic regression; each score's threshold is the one that flags the most pseudo-OOS rows
while losing at most `oos_max_inscope_loss` of the in-scope validation accuracy. A hard
floor on the nearest-example cosine, taken from the in-scope rows alone, makes sure text
that is far from everything the bot knows is flagged whatever the linear model says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.intents.config import OOS_SCORES, IntentClassifierConfig
from bot.intents.linear import LinearModel
from bot.intents.scoring import IntentScorer, OosCombiner, Signals, combiner_features, logsumexp
from retrieval.progress import Progress


@dataclass(frozen=True)
class Calibration:
    temperature: float
    thresholds: dict[str, float]  # OOS score name -> flag when the score is below it
    nearest_floor: float  # flag when the nearest-example cosine is below it, whatever the score
    combiner: OosCombiner | None  # None when no intent could be held out
    report: dict[str, Any]  # what the metadata records: sizes, accuracy, per-score loss and recall


def fit_temperature(decisions: np.ndarray, y_idx: np.ndarray) -> float:
    """Temperature minimising the log-loss of softmax(decisions / T) (golden-section on log T)."""

    def nll(log_t: float) -> float:
        z = decisions / np.exp(log_t)
        return float(np.mean(logsumexp(z) - z[np.arange(len(y_idx)), y_idx]))

    lo, hi = np.log(1e-3), np.log(1e2)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def threshold_for_loss(score: np.ndarray, correct: np.ndarray, max_loss: float) -> float:
    """Largest threshold t (flag when score < t) such that the correct in-scope rows with
    score < t are at most `max_loss` of all in-scope rows."""
    n = len(score)
    allowed = int(np.floor(max_loss * n + 1e-9))
    s = np.sort(score[correct])
    if len(s) == 0:
        return -np.inf
    if allowed >= len(s):
        return float(np.inf)
    # flag rows strictly below s[allowed]: exactly `allowed` correct rows (ties aside)
    return float(s[allowed])


def per_label_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices holding out `fraction` of each label's rows, at least
    one and leaving at least two to train on."""
    train: list[np.intp] = []
    val: list[np.intp] = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = min(max(1, round(fraction * len(idx))), len(idx) - 2)
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.array(sorted(train)), np.array(sorted(val))


def calibrate(
    vectors: np.ndarray, texts: Sequence[str], y: np.ndarray, config: IntentClassifierConfig, say: Progress
) -> Calibration:
    """Hold intents out fold by fold; pool in-scope validation and pseudo-OOS signals;
    fit the temperature, the combined score and the thresholds."""
    rng = np.random.default_rng(config.seed)
    classes = np.unique(y)
    n_folds = min(config.oos_holdout_folds, len(classes))
    texts_arr = np.asarray(texts, dtype=object)
    pooled_in: list[Signals] = []
    pooled_oos: list[Signals] = []
    in_correct: list[np.ndarray] = []
    in_decisions: list[tuple[np.ndarray, np.ndarray]] = []

    if len(classes) - int(np.ceil(len(classes) / n_folds)) >= 2:
        folds = np.array_split(rng.permutation(classes), n_folds)
    else:
        folds = [np.array([], dtype=y.dtype)]  # too few intents to hold any out

    for f, held in enumerate(folds):
        say(f"OOS calibration fold {f + 1}/{len(folds)}: {len(held)} intents held out")
        known_mask = ~np.isin(y, held)
        known_idx = np.flatnonzero(known_mask)
        tr_rel, va_rel = per_label_split(y[known_idx], config.calibration_val_fraction, rng)
        tr, va = known_idx[tr_rel], known_idx[va_rel]
        oos = np.flatnonzero(~known_mask)
        scorer = IntentScorer.fit(vectors[tr], list(texts_arr[tr]), y[tr], config)
        d_va = scorer.decisions(vectors[va], list(texts_arr[va]))
        col = {c: i for i, c in enumerate(scorer.model.classes_)}
        y_va_idx = np.array([col[c] for c in y[va]])
        in_decisions.append((d_va, y_va_idx))
        # temperature per fold first (the signals depend on it), refitted on the pool below
        scorer.temperature = fit_temperature(d_va, y_va_idx)
        sig_in = scorer.signals(vectors[va], list(texts_arr[va]), config.class_neighbors, d_va)
        pooled_in.append(sig_in)
        in_correct.append(sig_in["predicted"] == y_va_idx)
        if len(oos):
            pooled_oos.append(scorer.signals(vectors[oos], list(texts_arr[oos]), config.class_neighbors))

    temperature = float(np.exp(np.mean([np.log(fit_temperature(d, yi)) for d, yi in in_decisions])))

    def cat(parts: list[Signals], key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if parts else np.empty(0)

    keys = ("max_prob", "energy", "margin", "nearest", "class_nearest")
    s_in = {k: cat(pooled_in, k) for k in keys}
    s_oos = {k: cat(pooled_oos, k) for k in keys}
    correct = np.concatenate(in_correct)
    n_in, n_oos = len(correct), len(s_oos["nearest"])

    combiner = None
    if n_oos:
        from sklearn.linear_model import LogisticRegression

        x = np.concatenate([combiner_features(s_in), combiner_features(s_oos)])
        target = np.concatenate([np.ones(n_in), np.zeros(n_oos)])
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        fitted = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
        fitted.fit((x - mean) / scale, target)
        combiner = OosCombiner(mean, scale, LinearModel.of(fitted))
        s_in["combined"] = combiner.score(s_in)
        s_oos["combined"] = combiner.score(s_oos)
    else:
        s_in["combined"], s_oos["combined"] = s_in["nearest"], s_oos["nearest"]

    # the off-topic floor: spend `oos_floor_loss` of the budget on the nearest cosine alone
    floor = threshold_for_loss(s_in["nearest"], correct, config.oos_floor_loss)
    if not np.isfinite(floor):
        floor = -1.0
    floor_flag = s_in["nearest"] < floor
    rest_budget = config.oos_max_inscope_loss - float(np.mean(floor_flag & correct))

    thresholds: dict[str, float] = {}
    report: dict[str, Any] = {
        "folds": len(folds),
        "n_inscope_val": int(n_in),
        "n_pseudo_oos": int(n_oos),
        "inscope_val_accuracy": round(float(correct.mean()), 4) if n_in else None,
        "scores": {},
    }
    for name in OOS_SCORES:
        # the score's threshold is chosen among rows the floor has not already flagged
        keep = ~floor_flag
        t = threshold_for_loss(np.where(keep, s_in[name], np.inf), correct, max(rest_budget, 0.0))
        if not np.isfinite(t):
            t = float(np.min(s_in[name]) - 1.0) if t < 0 else float(np.max(s_in[name]) + 1.0)
        thresholds[name] = float(t)
        flag_in = floor_flag | (s_in[name] < t)
        entry = {
            "threshold": round(float(t), 6),
            "inscope_loss": round(float(np.mean(flag_in & correct)), 4) if n_in else None,
        }
        if n_oos:
            flag_oos = (s_oos["nearest"] < floor) | (s_oos[name] < t)
            entry["pseudo_oos_recall"] = round(float(flag_oos.mean()), 4)
        report["scores"][name] = entry
    say(
        "OOS calibration: "
        + ", ".join(f"{k} recall {v.get('pseudo_oos_recall', float('nan')):.3f}" for k, v in report["scores"].items())
    )
    return Calibration(temperature, thresholds, float(floor), combiner, report)
