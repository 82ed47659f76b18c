"""Timing helpers shared by the benchmark binaries (never used in tests' asserts)."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def llama_hidden_shapes(hidden: int = 768, intermediate: int = 3072, layers: int = 12):
  """(in, out) kernel shapes of a LLaMA's hidden matrices: q, k, v, o, gate, up, down per layer."""
  per_layer = [(hidden, hidden)] * 4 + [(hidden, intermediate)] * 2 + [(intermediate, hidden)]
  return per_layer * layers


def median_times(fns: Sequence[Callable[[], object]], repeats: int) -> list[list[float]]:
  """Times each zero-arg function `repeats` times, interleaved round-robin.

  Interleaving spreads any background load evenly over the candidates, so
  their ratio stays fair on a shared machine. Each fn is called once first
  (compile + warm-up) and its result blocked on.
  """
  for fn in fns:
    jax.block_until_ready(fn())
  times = [[] for _ in fns]
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[i].append(time.perf_counter() - start)
  return times


def matmul_peak_gflops(n: int = 2048, dtype=jnp.float32, repeats: int = 5) -> float:
  """Measured dense (n x n) @ (n x n) rate on the default device, GFLOP/s."""
  key = jax.random.PRNGKey(0)
  a = jax.random.normal(key, (n, n), dtype)
  b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), dtype)
  f = jax.jit(jnp.matmul)
  (t,) = median_times([lambda: f(a, b)], repeats)
  return 2 * n**3 / float(np.median(t)) / 1e9
