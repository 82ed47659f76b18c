"""Descriptive statistics of one run: effective rank of a spectrum, first-crossing time of a
trajectory. Shared by the saddle simulator, matrix factorization and the landscape probe.
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
