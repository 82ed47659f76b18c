"""The project's verdict rule (muon_jax.stats.exponent_verdict)."""

import math

import numpy as np
import pytest

from muon_jax import stats


@pytest.mark.parametrize(
  "ci, expected",
  [
    ((-0.05, 0.08), "dimension-free"),
    ((-0.1, 0.1), "dimension-free"),  # the band is closed
    ((0.05, 0.3), "grows"),  # above 0 but not inside the band
    ((0.9, 1.1), "grows"),
    ((-0.4, -0.2), "shrinks"),
    ((-0.3, 0.05), "inconclusive"),  # straddles 0 and leaves the band
    ((-0.05, 0.2), "inconclusive"),
    ((math.nan, 0.0), "inconclusive"),
  ],
)
def test_exponent_verdict_order(ci, expected):
  assert stats.exponent_verdict(*ci) == expected


def test_exponent_verdict_delta_changes_the_band():
  assert stats.exponent_verdict(0.05, 0.15) == "grows"
  assert stats.exponent_verdict(0.05, 0.15, delta=0.2) == "dimension-free"


def test_exponent_verdict_bad_input():
  with pytest.raises(ValueError, match="delta must be > 0"):
    stats.exponent_verdict(0.0, 0.1, delta=0.0)
  with pytest.raises(ValueError, match="exceeds ci_high"):
    stats.exponent_verdict(0.2, 0.1)


# ----------------------------------------------------------------------------
# censored_exponent: log-normal AFT with right censoring.

DIMS = (1024, 4096, 16384)  # n = 32, 64, 128: the saddle experiment's CPU dims.


def _censored_sample(alpha, rng, *, seeds=16, log_sigma_noise=1.0, censored_at_top=0.58):
  """log tau = 2 + alpha log D + N(0, s^2), censored at one budget for every D.

  The budget is the (1 - censored_at_top) quantile of tau at the largest D.
  """
  from scipy import stats

  d = np.repeat(DIMS, seeds).astype(np.float64)
  log_tau = 2 + alpha * np.log(d) + log_sigma_noise * rng.standard_normal(d.size)
  budget = np.exp(
    2 + alpha * np.log(max(DIMS)) + log_sigma_noise * stats.norm.ppf(1 - censored_at_top)
  )
  escaped = np.exp(log_tau) < budget
  return d, np.minimum(np.exp(log_tau), budget), escaped


def _naive_median_fit(d, tau):
  """The budget-as-value fit: slope of log median tau (censored runs at the budget) vs log D."""
  dims = np.unique(d)
  medians = [np.median(tau[d == v]) for v in dims]
  return np.polyfit(np.log(dims), np.log(medians), 1)[0]


def test_censored_exponent_equals_lifelines_lognormal_aft():
  import pandas as pd
  from lifelines import LogNormalAFTFitter

  d, tau, escaped = _censored_sample(0.5, np.random.default_rng(3))
  assert 0.2 < 1 - escaped.mean() < 0.6
  fit = stats.censored_exponent(d, tau, escaped, n_boot=0)
  ref = LogNormalAFTFitter().fit(
    pd.DataFrame({"T": tau, "E": escaped, "logD": np.log(d)}), "T", "E"
  )
  np.testing.assert_allclose(fit["exponent"], ref.params_[("mu_", "logD")], rtol=1e-5)
  np.testing.assert_allclose(fit["intercept"], ref.params_[("mu_", "Intercept")], rtol=1e-5)
  np.testing.assert_allclose(fit["log_sigma"], ref.params_[("sigma_", "Intercept")], rtol=1e-5)
  np.testing.assert_allclose(
    fit["ci_model"], ref.confidence_intervals_.loc[("mu_", "logD")], rtol=1e-4
  )
  assert fit["ci"] == fit["ci_model"] and fit["ci_method"] == "wald"


def test_censored_exponent_without_censoring_is_least_squares():
  rng = np.random.default_rng(4)
  d = np.repeat(DIMS, 10).astype(np.float64)
  tau = np.exp(1 + 0.3 * np.log(d) + 0.4 * rng.standard_normal(d.size))
  fit = stats.censored_exponent(d, tau, np.ones(d.size, bool), n_boot=200)
  np.testing.assert_allclose(fit["exponent"], np.polyfit(np.log(d), np.log(tau), 1)[0], rtol=1e-6)
  assert fit["ci"][0] < fit["exponent"] < fit["ci"][1]
  assert abs(fit["escape_fraction_slope"]) < 1e-12


def test_kaplan_meier_median_counts_an_exact_half():
  # Six escapes at 1..6: S(3) = 1/2 exactly, so the median is 3 (lifelines' own
  # median_survival_time_ gives 4 here: its S(3) is 0.5000000000000001).
  median, (low, high) = stats.kaplan_meier_median(np.arange(1.0, 7.0), np.ones(6, bool))
  assert median == 3.0 and low <= 3.0 <= high
  assert stats.kaplan_meier_median([1.0, 9.0, 9.0], [True, False, False])[0] == np.inf


def test_kaplan_meier_median_per_dimension():
  # D = 4: times 1..5 all escaped -> median 3. D = 16: 1 of 4 escaped (at 1), three
  # censored at 10 -> S stays at 3/4: median not reached (inf).
  d = np.array([4] * 5 + [16] * 4, float)
  tau = np.array([1, 2, 3, 4, 5, 1, 10, 10, 10], float)
  escaped = np.array([True] * 6 + [False] * 3)
  per_d = stats.censored_exponent(d, tau, escaped, n_boot=0)["per_D"]
  assert [p["D"] for p in per_d] == [4.0, 16.0]
  assert per_d[0]["km_median"] == 3.0 and per_d[0]["escaped_frac"] == 1.0
  assert per_d[1]["km_median"] == np.inf and per_d[1]["escaped_frac"] == 0.25
  assert per_d[0]["km_median_ci"][0] <= 3.0 <= per_d[0]["km_median_ci"][1]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_censored_exponent_ci_covers_truth(alpha):
  # >= 100 repeats, 30-60 % censored at the largest D: the seed-bootstrap and the
  # Wald CI both cover the true exponent in >= 90 % of them.
  rng = np.random.default_rng(int(alpha) + 10)
  repeats, boot_hits, wald_hits, censored_top = 100, 0, 0, []
  for r in range(repeats):
    d, tau, escaped = _censored_sample(alpha, rng)
    censored_top.append(1 - escaped[d == max(DIMS)].mean())
    fit = stats.censored_exponent(d, tau, escaped, n_boot=200, seed=r)
    boot_hits += fit["ci"][0] <= alpha <= fit["ci"][1]
    wald_hits += fit["ci_model"][0] <= alpha <= fit["ci_model"][1]
  assert 0.3 <= np.mean(censored_top) <= 0.6
  assert boot_hits >= 90 and wald_hits >= 90


def test_naive_budget_as_value_median_fit_is_biased():
  # Same data as the coverage test at alpha = 1: with > 1/2 censored at the largest D the
  # naive median there is the budget, below the true median, so the naive slope is too low;
  # the censored fit is unbiased.
  rng = np.random.default_rng(11)
  naive, censored = [], []
  for _ in range(100):
    d, tau, escaped = _censored_sample(1.0, rng)
    naive.append(_naive_median_fit(d, tau))
    censored.append(stats.censored_exponent(d, tau, escaped, n_boot=0)["exponent"])
  naive, censored = np.array(naive), np.array(censored)
  se = np.std(censored - naive) / np.sqrt(naive.size)
  assert abs(np.mean(censored) - 1.0) < 0.03
  assert np.mean(naive) < 1.0 - 0.05
  assert np.mean(censored - naive) > 5 * se


def test_trapped_at_large_dimension_is_growth():
  # Every run escapes at the smallest D, none at the largest: a clear increase, not a
  # missing value.
  rng = np.random.default_rng(5)
  d = np.repeat(DIMS, 12).astype(np.float64)
  tau = np.exp(np.log(d) + 0.3 * rng.standard_normal(d.size))
  budget = 2 * 4096.0
  escaped = tau < budget
  assert escaped[d == DIMS[0]].all() and not escaped[d == DIMS[-1]].any()
  fit = stats.censored_exponent(d, np.minimum(tau, budget), escaped, n_boot=300)
  assert stats.exponent_verdict(*fit["ci"]) == "grows"
  assert fit["escape_fraction_slope"] < 0 and fit["escape_fraction_slope_ci"][1] < 0


def test_escapes_at_one_dimension_only_have_an_unbounded_exponent():
  # Escapes only at the largest D (all smaller D trapped): the slope's likelihood has
  # no finite maximum, it runs to -inf; only at the smallest D: +inf. Newton's last
  # iterate (a finite, narrow, meaningless number) must not be reported.
  d = np.repeat(DIMS, 8).astype(np.float64)
  tau = np.where(d == DIMS[-1], 50.0 + np.arange(d.size) % 8, 1000.0)
  fit = stats.censored_exponent(d, tau, d == DIMS[-1], n_boot=200)
  assert fit["exponent"] == -np.inf and not fit["converged"]
  assert fit["ci"] == (-np.inf, -np.inf) and stats.exponent_verdict(*fit["ci"]) == "shrinks"
  tau = np.where(d == DIMS[0], 50.0 + np.arange(d.size) % 8, 1000.0)
  fit = stats.censored_exponent(d, tau, d == DIMS[0], n_boot=200)
  assert fit["exponent"] == np.inf and stats.exponent_verdict(*fit["ci"]) == "grows"
  # Escapes at one middle D: trapped on both sides, a finite maximum exists.
  tau = np.where(d == DIMS[1], 50.0 + np.arange(d.size) % 8, 1000.0)
  fit = stats.censored_exponent(d, tau, d == DIMS[1], n_boot=0)
  assert np.isfinite(fit["exponent"]) and fit["converged"]


def test_mostly_trapped_resamples_keep_an_infinite_ci_end_and_the_verdict():
  # Every run escapes at the smallest D, one in 8 at the middle D, none at the largest:
  # the ~34 % of resamples that lose that one escape have an unbounded slope (+inf),
  # so the CI's upper end is +inf (an interpolated quantile would be NaN, read as
  # "inconclusive"), and the verdict is "grows".
  d = np.repeat(DIMS, 8).astype(np.float64)
  rng = np.random.default_rng(6)
  escaped = d == DIMS[0]
  tau = np.where(escaped, 100 * np.exp(0.1 * rng.standard_normal(d.size)), 2000.0)
  one = np.flatnonzero(d == DIMS[1])[0]
  escaped[one], tau[one] = True, 1900.0
  fit = stats.censored_exponent(d, tau, escaped, n_boot=500)
  assert np.isfinite(fit["exponent"]) and fit["exponent"] > 0 and fit["converged"]
  assert fit["ci"][1] == np.inf and fit["ci"][0] > 0
  assert stats.exponent_verdict(*fit["ci"]) == "grows"


def test_censored_exponent_without_any_escape_is_inconclusive():
  d = np.repeat(DIMS, 4).astype(np.float64)
  fit = stats.censored_exponent(d, np.full(d.size, 100.0), np.zeros(d.size, bool), n_boot=50)
  assert np.isnan(fit["exponent"]) and not fit["converged"]
  assert stats.exponent_verdict(*fit["ci"]) == "inconclusive"
  assert fit["per_D"][0]["km_median"] == np.inf


def test_censored_exponent_bad_input():
  d = np.array([4.0, 16.0])
  with pytest.raises(ValueError, match="D, tau, escaped must have one entry per run"):
    stats.censored_exponent(d, [1.0], [True, True])
  with pytest.raises(ValueError, match="D needs at least two distinct values"):
    stats.censored_exponent([4.0, 4.0], [1.0, 2.0], [True, True])
  with pytest.raises(ValueError, match="D and tau must be positive"):
    stats.censored_exponent(d, [0.0, 2.0], [True, True])
  with pytest.raises(ValueError, match="n_boot must be >= 0"):
    stats.censored_exponent(d, [1.0, 2.0], [True, True], n_boot=-1)


def test_batched_kaplan_meier_medians_equal_lifelines_on_the_repeated_runs():
  # Tied times, censoring at the budget and a median that is never reached: each row's
  # median is kaplan_meier_median's of the runs repeated by their integer weights.
  from muon_jax.stats.exponents import kaplan_meier_medians

  rng = np.random.default_rng(3)
  tau = np.minimum(rng.integers(1, 12, 10), 9).astype(float)
  escaped = tau < 9
  weights = rng.integers(0, 4, (40, tau.size)).astype(float)
  weights[0] = 1.0
  weights[1] = np.where(escaped, 0.0, 1.0) + np.eye(tau.size)[np.argmax(escaped)]
  got = kaplan_meier_medians(tau, escaped, weights)
  for w, median in zip(weights, got):
    reps = np.repeat(np.arange(tau.size), w.astype(int))
    assert median == stats.kaplan_meier_median(tau[reps], escaped[reps])[0]
  assert got[1] == np.inf  # one escape among mostly censored runs.
  assert np.all(kaplan_meier_medians(tau, np.zeros(tau.size, bool), weights) == np.inf)


def test_censored_exponent_resamples_refit_the_point_estimate():
  # Unit weights give censored_exponent's estimate; weights that keep only the escapes at
  # the largest D (all else trapped) give its unbounded slope, -inf.
  from muon_jax.stats.exponents import censored_exponent_resamples

  rng = np.random.default_rng(4)
  d, tau, escaped = _censored_sample(0.5, rng)
  fit = stats.censored_exponent(d, tau, escaped, n_boot=0)
  only_top = np.where((d == max(DIMS)) | ~escaped, 1.0, 0.0)
  alpha = censored_exponent_resamples(d, tau, escaped, np.stack([np.ones(d.size), only_top]))
  assert alpha[0] == pytest.approx(fit["exponent"], abs=1e-8)
  assert escaped[d == max(DIMS)].any() and alpha[1] == -np.inf
  with pytest.raises(ValueError, match="weights"):
    censored_exponent_resamples(d, tau, escaped, np.ones(d.size))


def test_order_statistic_ci_keeps_infinite_ends():
  from muon_jax.stats.exponents import order_statistic_ci

  samples = np.r_[np.linspace(0.0, 1.0, 90), np.full(10, np.inf)]
  low, high = order_statistic_ci(samples)
  assert high == np.inf and 0 <= low < 0.05
