"""The project's verdict rule (muon_jax.metrics.exponent_verdict)."""

import math

import pytest

from muon_jax import metrics


@pytest.mark.parametrize("ci, expected", [
    ((-0.05, 0.08), "dimension-free"),
    ((-0.1, 0.1), "dimension-free"),      # the band is closed
    ((0.05, 0.3), "grows"),               # above 0 but not inside the band
    ((0.9, 1.1), "grows"),
    ((-0.4, -0.2), "shrinks"),
    ((-0.3, 0.05), "inconclusive"),       # straddles 0 and leaves the band
    ((-0.05, 0.2), "inconclusive"),
    ((math.nan, 0.0), "inconclusive"),
])
def test_exponent_verdict_order(ci, expected):
  assert metrics.exponent_verdict(*ci) == expected


def test_exponent_verdict_delta_changes_the_band():
  assert metrics.exponent_verdict(0.05, 0.15) == "grows"
  assert metrics.exponent_verdict(0.05, 0.15, delta=0.2) == "dimension-free"


def test_exponent_verdict_bad_input():
  with pytest.raises(ValueError, match="delta must be > 0"):
    metrics.exponent_verdict(0.0, 0.1, delta=0.0)
  with pytest.raises(ValueError, match="exceeds ci_high"):
    metrics.exponent_verdict(0.2, 0.1)
