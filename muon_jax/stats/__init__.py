"""Statistics shared by more than one package: descriptive measures of a run, exponent fits
with censoring and THE verdict rule, paired optimizer comparisons.

A flat surface: `from muon_jax import stats; stats.censored_exponent(...)`.
"""

from muon_jax.stats.descriptive import effective_rank, first_crossing
from muon_jax.stats.exponents import (
  DIMENSION_FREE_DELTA,
  VERDICTS,
  censored_exponent,
  exponent_verdict,
  fit_loglog_exponent,
  kaplan_meier_median,
)
from muon_jax.stats.paired import (
  CLAIM_VERDICTS,
  difference_verdict,
  mean_difference_ci,
  reproduces,
)

__all__ = [
  "CLAIM_VERDICTS",
  "DIMENSION_FREE_DELTA",
  "VERDICTS",
  "censored_exponent",
  "difference_verdict",
  "effective_rank",
  "exponent_verdict",
  "first_crossing",
  "fit_loglog_exponent",
  "kaplan_meier_median",
  "mean_difference_ci",
  "reproduces",
]
