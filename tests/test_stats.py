"""muon_jax.stats: paired-difference CI against scipy, and the directional verdict."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from muon_jax import stats


def test_mean_difference_ci_matches_scipy_t_interval():
  d = np.array([0.3, -0.1, 0.5, 0.2, np.nan])
  out = stats.mean_difference_ci(d)
  finite = d[np.isfinite(d)]
  low, high = scipy_stats.t.interval(
    0.95, finite.size - 1, loc=finite.mean(), scale=scipy_stats.sem(finite)
  )
  assert out["mean"] == pytest.approx(finite.mean())
  assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high))
  assert out["n"] == 4 and out["dropped"] == 1


def test_mean_difference_ci_covers_the_true_mean_at_its_level():
  rng = np.random.default_rng(0)
  covered = [
    (lambda o: o["ci_low"] <= 1.0 <= o["ci_high"])(
      stats.mean_difference_ci(rng.normal(1.0, 2.0, size=3))
    )
    for _ in range(2000)
  ]
  assert 0.93 < np.mean(covered) < 0.97


def test_one_difference_has_no_ci():
  out = stats.mean_difference_ci([0.4])
  assert out["mean"] == 0.4 and np.isnan(out["ci_low"]) and np.isnan(out["ci_high"])
  with pytest.raises(ValueError, match=r"^ci must be in \(0, 1\)"):
    stats.mean_difference_ci([1.0, 2.0], ci=1.0)


@pytest.mark.parametrize(
  "low, high, direction, verdict",
  [
    (-0.3, -0.1, "below", "holds"),
    (0.1, 0.3, "below", "does not hold"),
    (-0.1, 0.2, "below", "inconclusive"),
    (0.1, 0.3, "above", "holds"),
    (-0.3, -0.1, "above", "does not hold"),
    (float("nan"), 0.2, "above", "inconclusive"),
  ],
)
def test_difference_verdict(low, high, direction, verdict):
  assert stats.difference_verdict(low, high, direction=direction) == verdict


def test_difference_verdict_rejects_unknown_direction_and_reproduces_maps_verdicts():
  with pytest.raises(ValueError, match=r"^direction must be 'below' or 'above'"):
    stats.difference_verdict(0.0, 1.0, direction="up")
  assert stats.reproduces("holds", "holds") is True
  assert stats.reproduces("grows", "dimension-free") is False
  assert stats.reproduces("inconclusive", "holds") is None
  assert stats.reproduces("not decided", "grows") is None  # too few finite points
