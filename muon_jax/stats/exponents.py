"""Exponent fits and THE verdict rule: log-log and censored (log-normal AFT) fits,
Kaplan-Meier medians, bootstrap CIs.

One implementation of each, reused by the saddle simulator, matrix
factorization, the theory checks and the landscape experiment.
"""

from __future__ import annotations

import numpy as np


def fit_loglog_exponent(x, y, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95):
  """Least-squares slope of log y vs log x with a bootstrap CI.

  x, y: 1-D positive arrays (one point per observation; repeated x values are
  fine and are what the bootstrap resamples). Returns a dict with
  "exponent", "intercept", "ci_low", "ci_high", "n". The bootstrap resamples
  points with replacement from a NumPy Generator seeded by `seed`; resamples
  with a single distinct x are skipped.
  """
  x = np.asarray(x, dtype=np.float64).ravel()
  y = np.asarray(y, dtype=np.float64).ravel()
  if x.shape != y.shape or x.size < 2:
    raise ValueError(f"need >= 2 matching (x, y) points, got {x.size} and {y.size}")
  if np.any(x <= 0) or np.any(y <= 0):
    raise ValueError("log-log fit needs positive x and y")
  lx, ly = np.log(x), np.log(y)
  if np.ptp(lx) == 0:
    raise ValueError("log-log fit needs at least two distinct x values")
  slope, intercept = np.polyfit(lx, ly, 1)
  rng = np.random.default_rng(seed)
  boots = []
  for _ in range(n_boot):
    idx = rng.integers(0, x.size, x.size)
    if np.ptp(lx[idx]) == 0:
      continue
    boots.append(np.polyfit(lx[idx], ly[idx], 1)[0])
  lo, hi = np.quantile(boots, [(1 - ci) / 2, (1 + ci) / 2]) if boots else (np.nan, np.nan)
  return {
    "exponent": float(slope),
    "intercept": float(intercept),
    "ci_low": float(lo),
    "ci_high": float(hi),
    "n": int(x.size),
  }


# The project's one verdict rule for "is the exponent zero?". Every experiment
# judges a dimension exponent with `exponent_verdict` and writes the band it
# used (`DIMENSION_FREE_DELTA`) into its result JSON.
DIMENSION_FREE_DELTA = 0.1
VERDICTS = ("dimension-free", "grows", "shrinks", "inconclusive")


def exponent_verdict(ci_low: float, ci_high: float, *, delta: float = DIMENSION_FREE_DELTA) -> str:
  """The one verdict rule, applied in this order to a 95 % CI of an exponent.

  "dimension-free" iff the CI lies inside [-delta, delta]; else "grows" iff it
  lies above 0; else "shrinks" iff it lies below 0; else "inconclusive" (this
  includes a CI with a NaN end). An end may be infinite: [0.3, inf] (runs
  trapped at large D) "grows".
  """
  if not delta > 0:
    raise ValueError(f"delta must be > 0, got {delta}")
  if np.isnan(ci_low) or np.isnan(ci_high):
    return "inconclusive"
  if ci_low > ci_high:
    raise ValueError(f"ci_low={ci_low} exceeds ci_high={ci_high}")
  if -delta <= ci_low and ci_high <= delta:
    return "dimension-free"
  if ci_low > 0:
    return "grows"
  if ci_high < 0:
    return "shrinks"
  return "inconclusive"


# ----------------------------------------------------------------------------
# Censoring-aware exponent of escape times.


def _lognormal_aft_newton(x, y, escaped, weights_BxN, *, max_iter: int = 100, tol: float = 1e-10):
  """Censored log-normal regression y = log tau ~ N(a + b x, s^2), batched over weights.

  Maximises sum_i w_i l_i in Olsen's parametrisation (p0, p1, r) = (a, b, 1) / s,
  where the Tobit log-likelihood is concave (Olsen 1978), so damped Newton
  converges from any start. Escaped: l = log r - z^2 / 2; censored at y:
  l = log Phi(-z); z = r y - p0 - p1 x.

  Args:
    x, y: (N,) log D and log tau (the budget where censored).
    escaped: (N,) bool.
    weights_BxN: (B, N) non-negative observation weights (bootstrap counts).
    max_iter, tol: Newton iterations and the convergence level of the step.

  Returns:
    (theta_Bx3, converged_B, info_Bx3x3): theta = (p0, p1, r) and the
    observed information (minus the Hessian) at theta.
  """
  from scipy import special

  w = np.asarray(weights_BxN, np.float64)
  b_count = w.shape[0]
  design_Nx3 = np.stack([-np.ones_like(x), -x, y], axis=1)  # dz / dtheta.
  esc = escaped.astype(np.float64)

  def loglik_grad_info(theta):
    z = y[None, :] * theta[:, 2:3] - theta[:, 0:1] - theta[:, 1:2] * x[None, :]
    log_surv = special.log_ndtr(-z)
    mills = np.exp(-0.5 * z * z - 0.5 * np.log(2 * np.pi) - log_surv)  # phi(z) / Phi(-z).
    ll = np.where(esc > 0, np.log(theta[:, 2:3]) - 0.5 * z * z, log_surv)
    dz = np.where(esc > 0, -z, -mills)
    d2z = np.where(esc > 0, 1.0, mills * (mills - z))  # minus d2l / dz2.
    loglik = np.sum(w * ll, axis=1)
    grad = np.einsum("bn,bn,nk->bk", w, dz, design_Nx3)
    grad[:, 2] += np.sum(w * esc, axis=1) / theta[:, 2]
    info = np.einsum("bn,bn,nk,nl->bkl", w, d2z, design_Nx3, design_Nx3)
    info[:, 2, 2] += np.sum(w * esc, axis=1) / theta[:, 2] ** 2
    return loglik, grad, info

  # Start: least squares on all points as if uncensored.
  coef = np.polyfit(x, y, 1)
  s0 = max(float(np.std(y - np.polyval(coef, x))), 1e-3)
  theta = np.tile(np.array([coef[1], coef[0], 1.0]) / s0, (b_count, 1))
  converged = np.zeros(b_count, bool)
  loglik, grad, info = loglik_grad_info(theta)
  for _ in range(max_iter):
    step = np.linalg.solve(info + 1e-12 * np.eye(3), grad[..., None])[..., 0]
    scale = np.ones(b_count)
    for _ in range(40):  # Halve until r stays positive and the likelihood does not drop.
      trial = theta + scale[:, None] * step
      ok = trial[:, 2] > 0
      trial_ll = np.where(ok, loglik_grad_info(np.where(ok[:, None], trial, theta))[0], -np.inf)
      bad = ~ok | (trial_ll < loglik - 1e-12)
      if not bad.any():
        break
      scale = np.where(bad, scale / 2, scale)
    theta = np.where(converged[:, None], theta, trial)
    converged |= np.max(np.abs(scale[:, None] * step), axis=1) < tol
    loglik, grad, info = loglik_grad_info(theta)
    if converged.all():
      break
  return theta, converged, info


def kaplan_meier_median(tau, escaped, *, ci: float = 0.95) -> tuple[float, tuple[float, float]]:
  """Kaplan-Meier median of right-censored times and its CI (lifelines).

  The median is the first time the survival estimate reaches 1/2 (within
  1e-9: lifelines' own `median_survival_time_` skips an exact 1/2 that
  rounding leaves at 0.5000000000000001); inf where it never does.

  Returns:
    (median, (low, high)); the CI ends are inf where not reached.
  """
  from lifelines import KaplanMeierFitter
  from lifelines.utils import median_survival_times

  km = KaplanMeierFitter(alpha=1 - ci).fit(np.asarray(tau, np.float64), np.asarray(escaped, bool))
  surv = km.survival_function_.iloc[:, 0]
  reached = surv.index[surv.to_numpy() <= 0.5 + 1e-9]
  low, high = median_survival_times(km.confidence_interval_).to_numpy().ravel()
  return (float(reached[0]) if reached.size else float("inf")), (float(low), float(high))


def _unbounded_slope(counts_BxN, members, escaped) -> np.ndarray:
  """Per weighting: +-inf where the censored likelihood has no finite maximum, else nan.

  That happens when every escape is at one D and every other D (all censored)
  lies on one side of it: the slope runs to -inf when they are smaller (only
  the largest D escapes: shrinks), to +inf when larger. Without any escape
  there is no fit; it counts at +inf (trapped) rather than being dropped,
  which would bias a CI towards "no growth" exactly when runs are trapped.
  """
  esc_BxK = np.stack([counts_BxN[:, idx] @ escaped[idx] > 0 for idx in members], axis=1)
  k = np.arange(len(members))
  count = esc_BxK.sum(axis=1)
  at = np.argmax(esc_BxK, axis=1)
  out = np.full(counts_BxN.shape[0], np.nan)
  out[(count == 1) & (at == k[-1])] = -np.inf
  out[((count == 1) & (at == k[0])) | (count == 0)] = np.inf
  return out


def censored_exponent(D, tau, escaped, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95):
  """Exponent alpha of escape time tau ~ D^alpha with right-censored runs.

  The model is the log-normal accelerated-failure-time regression
  log tau = a + alpha log D + s eps, eps ~ N(0, 1), with runs that never
  escaped entering as censored at their budget (their likelihood is
  P(tau > budget)), so a run trapped at large D is evidence of growth, never
  a missing value. Its maximum-likelihood fit equals lifelines'
  `LogNormalAFTFitter` (tested); it is computed here by batched Newton so the
  bootstrap refits every resample at once (lifelines takes ~0.2 s per fit).

  Args:
    D: (N,) dimension of each run (at least two distinct values).
    tau: (N,) escape step of each run; the budget where `escaped` is False.
    escaped: (N,) bool, whether the run escaped within its budget.
    n_boot: bootstrap resamples (seeds resampled within each D, censoring
      flags kept with their times); 0 uses the model's Wald CI.
    seed: seed of the bootstrap's NumPy Generator.
    ci: confidence level.

  Returns:
    dict with "exponent" (MLE of alpha), "ci" = (low, high) (bootstrap
    percentile CI, or the Wald CI when n_boot = 0), "ci_model" (Wald CI by
    the delta method; (nan, nan) without a proper maximum), "ci_method",
    "intercept", "log_sigma", "converged" (False when the likelihood has no
    finite maximum), "censored_frac",
    "per_D" (per D: runs, escaped fraction, `kaplan_meier_median` and its
    CI, inf where the survival curve never falls to 1/2),
    "escape_fraction_slope" (least-squares slope of the escaped fraction
    against log D) with "escape_fraction_slope_ci" from the same resamples,
    and "n_boot". When every escape is at the largest (smallest) D and all
    other D values are fully censored, the slope's likelihood has no finite
    maximum: the exponent is -inf (+inf), and so is each such resample's. A
    resample without any escape counts at +inf (trapped). The bootstrap CI
    takes order statistics, so an infinite end stays infinite.

  References:
    Kaplan & Meier (1958), Nonparametric estimation from incomplete
    observations. Olsen (1978), Note on the uniqueness of the maximum
    likelihood estimator for the Tobit model.
  """
  from scipy import stats

  d = np.asarray(D, np.float64).ravel()
  t = np.asarray(tau, np.float64).ravel()
  e = np.asarray(escaped, bool).ravel()
  if not d.shape == t.shape == e.shape:
    raise ValueError(
      f"D, tau, escaped must have one entry per run, got {d.size}, {t.size}, {e.size}"
    )
  if np.any(d <= 0) or np.any(t <= 0):
    raise ValueError("D and tau must be positive")
  if np.unique(d).size < 2:
    raise ValueError("D needs at least two distinct values to fit an exponent")
  if n_boot < 0:
    raise ValueError(f"n_boot must be >= 0, got {n_boot}")
  if not 0 < ci < 1:
    raise ValueError(f"ci must lie in (0, 1), got {ci}")
  x, y = np.log(d), np.log(t)
  dims = np.unique(d)
  members = [np.flatnonzero(d == v) for v in dims]
  q = (1 - ci) / 2

  per_d = []
  for v, idx in zip(dims, members):
    median, median_ci = kaplan_meier_median(t[idx], e[idx], ci=ci)
    per_d.append(
      {
        "D": float(v),
        "runs": int(idx.size),
        "escaped_frac": float(e[idx].mean()),
        "km_median": median,
        "km_median_ci": median_ci,
      }
    )
  frac = np.array([p["escaped_frac"] for p in per_d])
  log_dims = np.log(dims)

  out = {
    "n_boot": int(n_boot),
    "censored_frac": float(1 - e.mean()),
    "per_D": per_d,
    "escape_fraction_slope": float(np.polyfit(log_dims, frac, 1)[0]),
  }
  nan_ci = (float("nan"), float("nan"))
  if not e.any():
    return {
      **out,
      "exponent": float("nan"),
      "intercept": float("nan"),
      "log_sigma": float("nan"),
      "converged": False,
      "ci": nan_ci,
      "ci_model": nan_ci,
      "ci_method": "none",
      "escape_fraction_slope_ci": nan_ci,
    }

  theta, converged, info = _lognormal_aft_newton(x, y, e, np.ones((1, x.size)))
  p0, p1, r = theta[0]
  unbounded = _unbounded_slope(np.ones((1, x.size)), members, e)[0]
  alpha = unbounded if np.isinf(unbounded) else p1 / r
  jac = np.array([0.0, 1.0 / r, -p1 / r**2])
  try:
    se = float(np.sqrt(jac @ np.linalg.solve(info[0], jac)))
  except np.linalg.LinAlgError:
    se = float("nan")
  z = stats.norm.ppf(1 - q)
  # The Wald CI needs a proper maximum.
  ok = bool(converged[0]) and bool(np.isfinite(se)) and bool(np.isfinite(alpha))
  out.update(
    exponent=float(alpha),
    intercept=float(p0 / r),
    log_sigma=float(-np.log(r)),
    converged=ok,
    ci_model=(float(alpha - z * se), float(alpha + z * se)) if ok else nan_ci,
  )

  if n_boot == 0:
    return {**out, "ci": out["ci_model"], "ci_method": "wald", "escape_fraction_slope_ci": nan_ci}
  rng = np.random.default_rng(seed)
  counts_BxN = np.zeros((n_boot, x.size))
  for idx in members:
    picks = rng.integers(0, idx.size, (n_boot, idx.size))
    np.add.at(counts_BxN, (np.arange(n_boot)[:, None], idx[picks]), 1.0)
  boot_frac = np.stack([counts_BxN[:, idx] @ e[idx] / idx.size for idx in members], axis=1)
  frac_slopes = np.polyfit(log_dims, boot_frac.T, 1)[0]
  boot_alpha = _weighted_exponents(x, y, e, members, counts_BxN)
  return {
    **out,
    "ci": order_statistic_ci(boot_alpha, ci),
    "ci_method": "bootstrap",
    "escape_fraction_slope_ci": tuple(float(v) for v in np.quantile(frac_slopes, [q, 1 - q])),
  }


def _weighted_exponents(x, y, escaped, members, weights_BxN) -> np.ndarray:
  """The censored exponent's estimate under each row of observation weights (+-inf unbounded)."""
  alpha = _unbounded_slope(weights_BxN, members, escaped)
  # Newton would chase an unbounded row's slope for all its iterations; rows are fitted
  # independently, so leaving those rows out changes no other row's estimate.
  bounded = ~np.isinf(alpha)
  if bounded.any():
    theta, _, _ = _lognormal_aft_newton(x, y, escaped, weights_BxN[bounded])
    # Tied times (s -> 0) leave Newton's last iterate, whose slope has converged.
    alpha[bounded] = theta[:, 1] / theta[:, 2]
  return alpha


def censored_exponent_resamples(D, tau, escaped, weights_BxN) -> np.ndarray:
  """`censored_exponent`'s point estimate under each row of observation weights, batched.

  The weights are bootstrap counts (a resample as multiplicities of the runs); a run
  with weight 0 is left out. This is the estimator `censored_exponent`'s own bootstrap
  refits, for resampling schemes it does not cover (a selection redone per resample).

  Args:
    D, tau, escaped: (N,) as in `censored_exponent` (at least two distinct D).
    weights_BxN: (B, N) non-negative weights; every row must weigh two distinct D.

  Returns:
    (B,) exponents: -inf / +inf where the weighted likelihood has no finite maximum
    (escapes at one D only) or there is no escape (+inf, trapped), as in
    `censored_exponent`.
  """
  d = np.asarray(D, np.float64).ravel()
  t = np.asarray(tau, np.float64).ravel()
  e = np.asarray(escaped, bool).ravel()
  w = np.asarray(weights_BxN, np.float64)
  if not d.shape == t.shape == e.shape or w.ndim != 2 or w.shape[1] != d.size:
    raise ValueError(f"need (N,) D, tau, escaped and (B, N) weights, got {d.size} and {w.shape}")
  if np.any(d <= 0) or np.any(t <= 0) or np.any(w < 0):
    raise ValueError("D and tau must be positive and weights non-negative")
  dims = np.unique(d)
  if dims.size < 2:
    raise ValueError("D needs at least two distinct values to fit an exponent")
  members = [np.flatnonzero(d == v) for v in dims]
  return _weighted_exponents(np.log(d), np.log(t), e, members, w)


def order_statistic_ci(samples, ci: float = 0.95) -> tuple[float, float]:
  """Percentile CI of bootstrap samples as order statistics, so an infinite end stays infinite."""
  q = (1 - ci) / 2
  samples = np.asarray(samples, np.float64)
  return (
    float(np.quantile(samples, q, method="lower")),
    float(np.quantile(samples, 1 - q, method="higher")),
  )


def kaplan_meier_medians(tau, escaped, weights_BxN) -> np.ndarray:
  """Kaplan-Meier medians of right-censored times under each row of weights, batched.

  With integer weights (bootstrap counts) a row's median is `kaplan_meier_median`'s
  of the runs repeated by their weights: the survival estimate is lifelines'
  product over event times of (at risk - deaths) / at risk, and the median the
  first event time where it reaches 1/2 (within 1e-9); inf where it never does.

  Args:
    tau: (N,) times; escaped: (N,) bool, False where censored at tau.
    weights_BxN: (B, N) non-negative weights.

  Returns:
    (B,) medians.
  """
  t = np.asarray(tau, np.float64).ravel()
  e = np.asarray(escaped, bool).ravel()
  w = np.asarray(weights_BxN, np.float64)
  times = np.unique(t[e])
  if times.size == 0:
    return np.full(w.shape[0], np.inf)
  deaths = w @ (e[:, None] & (t[:, None] == times[None, :]))
  at_risk = w @ (t[:, None] >= times[None, :])
  with np.errstate(divide="ignore", invalid="ignore"):
    factor = np.where(deaths > 0, np.log(at_risk - deaths) - np.log(at_risk), 0.0)
  reached = np.exp(np.cumsum(factor, axis=1)) <= 0.5 + 1e-9
  return np.where(reached.any(axis=1), times[np.argmax(reached, axis=1)], np.inf)
