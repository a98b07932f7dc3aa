"""Paired bootstrap intervals of a gain."""

import pytest

from bot.evaluation.bootstrap import paired_bootstrap_ci


def test_a_steady_gain_has_an_interval_above_zero_around_it():
    base = [0.2, 0.4, 0.3, 0.5, 0.1, 0.35, 0.25, 0.45] * 10
    system = [b + 0.05 for b in base]
    lo, hi = paired_bootstrap_ci(system, base)
    assert lo == pytest.approx(0.05) and hi == pytest.approx(0.05)


def test_a_gain_from_a_few_rows_has_an_interval_that_reaches_below_zero():
    base = [0.3] * 40
    system = [0.3] * 37 + [0.9, 0.9, 0.0]
    lo, hi = paired_bootstrap_ci(system, base, seed=1)
    assert lo < 0 < hi


def test_the_interval_is_the_same_for_the_same_seed_and_pairs_rows():
    a, b = [0.1, 0.5, 0.3, 0.7], [0.2, 0.4, 0.1, 0.6]
    assert paired_bootstrap_ci(a, b, seed=3) == paired_bootstrap_ci(a, b, seed=3)
    # pairing: shifting both systems by the same row effect changes nothing
    shifted = [x + d for x, d in zip(a, [0.3, -0.2, 0.1, 0.0], strict=True)]
    shifted_b = [x + d for x, d in zip(b, [0.3, -0.2, 0.1, 0.0], strict=True)]
    assert paired_bootstrap_ci(shifted, shifted_b, seed=3) == paired_bootstrap_ci(a, b, seed=3)


@pytest.mark.parametrize(("a", "b"), [([0.1], [0.1, 0.2]), ([], [])])
def test_unpaired_or_empty_scores_are_refused(a, b):
    with pytest.raises(ValueError):
        paired_bootstrap_ci(a, b)
