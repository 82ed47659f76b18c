"""Paired comparisons of two optimizers: a CI on the mean difference and the
verdict of a directional claim ("Muon's X is lower than AdamW's")."""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

CLAIM_VERDICTS = ("holds", "does not hold", "inconclusive")


def mean_difference_ci(differences, *, ci: float = 0.95) -> dict:
  """Mean of paired differences with a Student-t confidence interval.

  The t interval (not a bootstrap) because a claim is often judged on three
  or five seeds, where a percentile bootstrap collapses to the sample range.

  Args:
    differences: 1-D array of paired differences (e.g. Muon - AdamW per seed);
      non-finite entries are dropped and counted.
    ci: confidence level in (0, 1).

  Returns:
    {"mean", "ci_low", "ci_high", "n", "dropped"}; the CI is NaN with fewer
    than two finite differences.
  """
  if not 0 < ci < 1:
    raise ValueError(f"ci must be in (0, 1), got {ci}")
  d = np.asarray(differences, np.float64).ravel()
  finite = d[np.isfinite(d)]
  out = {
    "mean": float(np.mean(finite)) if finite.size else float("nan"),
    "ci_low": float("nan"),
    "ci_high": float("nan"),
    "n": int(finite.size),
    "dropped": int(d.size - finite.size),
  }
  if finite.size >= 2:
    half = (
      scipy_stats.t.ppf(0.5 + ci / 2, finite.size - 1)
      * np.std(finite, ddof=1)
      / np.sqrt(finite.size)
    )
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
  return out


def difference_verdict(ci_low: float, ci_high: float, *, direction: str) -> str:
  """Verdict of a claim that a difference is negative ("below") or positive ("above").

  "holds" iff the CI excludes 0 on the claimed side, "does not hold" iff it
  excludes 0 on the other side, else "inconclusive" (a NaN end included).
  """
  if direction not in ("below", "above"):
    raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")
  if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
    return "inconclusive"
  sign = -1.0 if direction == "below" else 1.0
  low, high = sorted((sign * ci_low, sign * ci_high))
  if low > 0:
    return "holds"
  if high < 0:
    return "does not hold"
  return "inconclusive"


def reproduces(verdict: str, expected: str) -> bool | None:
  """True when `verdict` is the paper's `expected` one; None when inconclusive, untestable or not
  decided (an exponent resting on too few finite points)."""
  if verdict in ("inconclusive", "untestable", "not decided"):
    return None
  return verdict == expected
