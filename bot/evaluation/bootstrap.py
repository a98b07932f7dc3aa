"""Paired bootstrap intervals: how sure a gain measured on one set of rows is.

Both systems are scored on the same rows, so the rows are resampled together and the
interval is that of the mean per-row difference (Koehn 2004; Dror et al. 2018). An
interval whose lower end is above zero says the gain is not an accident of which rows the
test set happened to hold.
"""

from __future__ import annotations

from collections.abc import Sequence


def paired_bootstrap_ci(
    system: Sequence[float], baseline: Sequence[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """The `level` percentile interval of mean(system - baseline) over `resamples`
    resamplings of the rows (with replacement, the same rows for both systems)."""
    import numpy as np

    if len(system) != len(baseline):
        raise ValueError(f"paired scores differ in length: {len(system)} vs {len(baseline)}")
    if not system:
        raise ValueError("no rows to resample")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    diff = np.asarray(system, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return round(float(lo), 4), round(float(hi), 4)
