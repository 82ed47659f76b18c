"""Shared metrics: effective rank, first-crossing times, log-log exponent fits.

One implementation of each, reused by the saddle simulator, matrix
factorization and the landscape probe.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def effective_rank(singular_values, *, normalized: bool = False, eps: float = 1e-12):
  """Entropy effective rank of a spectrum (Roy & Vetterli 2007).

  With p_i = s_i / sum(s), H = -sum p_i log p_i:
    normalized=False: exp(H), in [1, k] (identity -> k, rank-1 -> 1);
    normalized=True:  H / log(k), in [0, 1] (the "normalized Shannon entropy"
      of the paper's App 12 probe; identity -> 1, rank-1 -> 0).
  Works on (..., k) arrays with NumPy or JAX inputs; k is the last axis.
  """
  s = jnp.abs(jnp.asarray(singular_values))
  p = s / jnp.maximum(jnp.sum(s, axis=-1, keepdims=True), eps)
  entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
  if normalized:
    k = s.shape[-1]
    return entropy / np.log(k) if k > 1 else jnp.zeros_like(entropy)
  return jnp.exp(entropy)


def first_crossing(values, threshold, *, axis: int = -1):
  """First index along `axis` where values >= threshold.

  Returns (index, crossed): index is the length of `axis` (the censoring
  value) where the threshold is never reached, and crossed flags which
  trajectories did reach it. Works with NumPy and JAX arrays.
  """
  values = jnp.asarray(values)
  hit = values >= threshold
  crossed = jnp.any(hit, axis=axis)
  index = jnp.where(crossed, jnp.argmax(hit, axis=axis), values.shape[axis])
  return index, crossed


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
  lo, hi = (np.quantile(boots, [(1 - ci) / 2, (1 + ci) / 2]) if boots else (np.nan, np.nan))
  return {"exponent": float(slope), "intercept": float(intercept),
          "ci_low": float(lo), "ci_high": float(hi), "n": int(x.size)}


# The project's one verdict rule for "is the exponent zero?". Every experiment
# judges a dimension exponent with `exponent_verdict` and writes the band it
# used (`DIMENSION_FREE_DELTA`) into its result JSON.
DIMENSION_FREE_DELTA = 0.1
VERDICTS = ("dimension-free", "grows", "shrinks", "inconclusive")


def exponent_verdict(ci_low: float, ci_high: float, *, delta: float = DIMENSION_FREE_DELTA) -> str:
  """The one verdict rule, applied in this order to a 95 % CI of an exponent.

  "dimension-free" iff the CI lies inside [-delta, delta]; else "grows" iff it
  lies above 0; else "shrinks" iff it lies below 0; else "inconclusive" (this
  includes a CI with a NaN end).
  """
  if not delta > 0:
    raise ValueError(f"delta must be > 0, got {delta}")
  if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
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
