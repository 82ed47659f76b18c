"""Muon as optax transforms: scale_by_muon, muon, muon_with_adamw.

Paper's Algorithm 1 (Kimi variant; Liu et al. 2025, arXiv:2502.16982):

    M_t = beta * M_{t-1} + G_t
    O_t = NewtonSchulz(G_t + beta * M_t)          (Nesterov; M_t without it)
    W_t = W_{t-1} - lr * (0.2 * sqrt(max(m, n)) * O_t + wd * W_{t-1})

Leaves must have >= 2 dims; the last two are the matrix and any leading dims
are independent batch dims (each (m, n) slice is orthogonalized separately).
"""

from __future__ import annotations

import collections
import importlib
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

# The package re-exports the function `newton_schulz`; bind the module itself.
ns = importlib.import_module("muon_jax.newton_schulz")

SCALINGS = ("kimi", "keller", "none")
MOMENTUMS = ("paper", "optax")
BATCHINGS = ("auto", "stack", "loop")
KIMI_RMS = 0.2


class ScaleByMuonState(NamedTuple):
  """State of `scale_by_muon`."""
  count: jax.Array  # shape=(), int32: number of updates applied.
  mu: optax.Updates  # momentum, same tree and shapes as params.


def _check_number(name: str, value, low=None, high=None, high_open=False) -> None:
  """Validates Python numbers; arrays/tracers (e.g. inject_hyperparams) pass."""
  if not isinstance(value, (int, float)) or isinstance(value, bool):
    return
  if (low is not None and value < low) or (high is not None and (
      value >= high if high_open else value > high)):
    hi = "inf" if high is None else high
    raise ValueError(f"{name}={value} is out of range; allowed [{low}, {hi}{')' if high_open else ']'}")


def _path_str(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/")


def _check_matrix_leaves(tree, where: str) -> None:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  if not leaves:
    raise ValueError(f"{where}: no leaves reached Muon (empty pytree); it needs at least one matrix")
  for path, leaf in leaves:
    if jnp.ndim(leaf) < 2:
      raise ValueError(
          f"{where}: leaf '{_path_str(path)}' has shape {jnp.shape(leaf)}; Muon needs >= 2-D"
          " leaves. Route 0-D/1-D params elsewhere with muon_with_adamw (or optax.partition).")


def shape_scale(shape, scaling: str) -> float:
  """Update multiplier for an (..., m, n) leaf under `scaling`.

  "kimi": 0.2 * sqrt(max(m, n)) (Moonlight; matches AdamW's update RMS);
  "keller": sqrt(max(1, m / n)) (Jordan's Muon, with PyTorch's (out, in)
  layout: rows over columns); "none": 1.
  """
  m, n = shape[-2:]
  if scaling == "kimi":
    return KIMI_RMS * math.sqrt(max(m, n))
  if scaling == "keller":
    return math.sqrt(max(1.0, m / n))
  if scaling == "none":
    return 1.0
  raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")


def default_batching() -> str:
  """Stack same-shape leaves on accelerators; loop per leaf on CPU.

  Measured (BUILD_NOTES.md): on a 2-core CPU a vmapped NS over a stack of 4
  equal matrices runs 10-20% slower per matrix than separate calls, and the
  stack/unstack copies add to that; on GPUs one batched kernel per shape wins.
  """
  return "loop" if jax.default_backend() == "cpu" else "stack"


def orthogonalize_tree(tree, *, schedule, eps, ns_dtype, method, batching):
  """Newton–Schulz of every leaf; same-(shape, dtype) leaves share one call if stacked."""
  if batching == "auto":
    batching = default_batching()
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  out = [None] * len(leaves)
  call = lambda x: ns.newton_schulz(x, coeffs=schedule, steps=len(schedule), eps=eps,
                                    ns_dtype=ns_dtype, method=method)
  if batching == "loop":
    out = [call(x) for x in leaves]
  else:
    groups = collections.defaultdict(list)
    for i, x in enumerate(leaves):
      groups[(x.shape, x.dtype)].append(i)
    for idx in groups.values():
      if len(idx) == 1:
        out[idx[0]] = call(leaves[idx[0]])
        continue
      stacked = call(jnp.stack([leaves[i] for i in idx]))
      for j, i in enumerate(idx):
        out[i] = stacked[j]
  return jax.tree_util.tree_unflatten(treedef, out)


def scale_by_muon(beta: float = 0.95, nesterov: bool = True, coeffs: ns.Coeffs = "kimi",
                  steps: int | None = None, eps: float = 1e-7, scaling: str = "kimi",
                  mu_dtype=None, ns_dtype=None, *, momentum: str = "paper",
                  batching: str = "auto", method: str = "auto") -> optax.GradientTransformation:
  """Muon's direction: momentum -> Newton–Schulz -> shape scaling.

  Args:
    beta: momentum coefficient in [0, 1).
    nesterov: feed the Nesterov look-ahead to Newton–Schulz.
    coeffs, steps, eps, ns_dtype, method: see `newton_schulz.newton_schulz`
      (steps=None: 5, or the per-step schedule's length; a None default also
      keeps it static under optax.inject_hyperparams).
    scaling: "kimi" (0.2 sqrt(max(m, n)), the paper's), "keller" or "none".
    mu_dtype: storage dtype of the momentum (None: the gradient's).
    momentum: "paper" — Algorithm 1, M <- beta M + G, Nesterov input
      G + beta M; "optax" — bias-corrected EMA exactly as optax.contrib.muon
      (M <- beta M + (1 - beta) G, Nesterov input
      beta M / (1 - beta^(t+1)) + (1 - beta) G / (1 - beta^t)).
    batching: "stack" (one vmapped NS per (shape, dtype) group), "loop"
      (one NS per leaf) or "auto" (loop on CPU, stack elsewhere).

  Returns:
    An optax.GradientTransformation with state ScaleByMuonState. Updates are
    returned in the gradients' dtypes.
  """
  schedule = ns.resolve_coeffs(coeffs, steps)
  _check_number("beta", beta, 0.0, 1.0, high_open=True)
  _check_number("eps", eps, 0.0)
  shape_scale((1, 1), scaling)
  for name, value, allowed in (("momentum", momentum, MOMENTUMS),
                               ("batching", batching, BATCHINGS),
                               ("method", method, ns.METHODS)):
    if value not in allowed:
      raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def init_fn(params):
    _check_matrix_leaves(params, "scale_by_muon")
    mu = jax.tree.map(lambda p: jnp.zeros(p.shape, mu_dtype or p.dtype), params)
    return ScaleByMuonState(count=jnp.zeros([], jnp.int32), mu=mu)

  def update_fn(updates, state, params=None):
    del params
    _check_matrix_leaves(updates, "scale_by_muon")
    count = optax.safe_increment(state.count)
    if momentum == "paper":
      mu = jax.tree.map(lambda m, g: beta * m + g, state.mu, updates)
      direction = (jax.tree.map(lambda m, g: g + beta * m, mu, updates) if nesterov else mu)
    else:
      mu = jax.tree.map(lambda m, g: beta * m + (1 - beta) * g, state.mu, updates)
      t = count.astype(jnp.float32)
      if nesterov:
        direction = jax.tree.map(
            lambda m, g: beta * m / (1 - beta**(t + 1)) + (1 - beta) * g / (1 - beta**t),
            mu, updates)
      else:
        direction = jax.tree.map(lambda m: m / (1 - beta**t), mu)
    ortho = orthogonalize_tree(direction, schedule=schedule, eps=eps, ns_dtype=ns_dtype,
                               method=method, batching=batching)
    new_updates = jax.tree.map(
        lambda o, g: (shape_scale(o.shape, scaling) * o).astype(g.dtype), ortho, updates)
    mu = jax.tree.map(lambda m, g: m.astype(mu_dtype or g.dtype), mu, updates)
    return new_updates, ScaleByMuonState(count=count, mu=mu)

  return optax.GradientTransformation(init_fn, update_fn)


def _check_learning_rate(name: str, lr) -> None:
  if callable(lr):
    return
  _check_number(name, lr, 0.0)


def muon(learning_rate: optax.ScalarOrSchedule, *, weight_decay: float = 0.0,
         weight_decay_mask: Any | Callable[[optax.Params], Any] | None = None,
         beta: float = 0.95, nesterov: bool = True, coeffs: ns.Coeffs = "kimi",
         steps: int | None = None, eps: float = 1e-7, scaling: str = "kimi", mu_dtype=None,
         ns_dtype=None, momentum: str = "paper", batching: str = "auto",
         method: str = "auto") -> optax.GradientTransformation:
  """Muon: scale_by_muon -> decoupled weight decay -> learning rate.

  W <- W - lr * (scale * NS(momentum) + weight_decay * W). Every leaf must be
  >= 2-D (use `muon_with_adamw` for mixed models). `learning_rate` may be a
  float or an optax schedule; the signature is explicit so that
  `optax.inject_hyperparams(muon)(learning_rate=...)` works. The remaining
  arguments are those of `scale_by_muon`.
  """
  _check_learning_rate("learning_rate", learning_rate)
  _check_number("weight_decay", weight_decay, 0.0)
  return optax.chain(
      scale_by_muon(beta=beta, nesterov=nesterov, coeffs=coeffs, steps=steps, eps=eps,
                    scaling=scaling, mu_dtype=mu_dtype, ns_dtype=ns_dtype, momentum=momentum,
                    batching=batching, method=method),
      optax.add_decayed_weights(weight_decay, weight_decay_mask),
      optax.scale_by_learning_rate(learning_rate),
  )


# Path components (lower-cased) that mark a 2-D leaf as an embedding or output
# head, which Muon's authors and the paper (App 12) route to AdamW.
NON_HIDDEN_PATTERN = re.compile(r"(embed|lm_head|unembed|wte|wpe|^head$|classifier)")


def is_hidden_matrix(path, leaf) -> bool:
  """Default Muon predicate: a 2-D leaf whose path names no embedding/head."""
  if jnp.ndim(leaf) != 2:
    return False
  parts = [p.lower() for p in _path_str(path).split("/")]
  return not any(NON_HIDDEN_PATTERN.search(p) for p in parts)


def muon_labels(params, predicate: Callable[[Any, Any], bool] = is_hidden_matrix):
  """Pytree of "muon" / "adamw" labels: print it to see where each leaf goes."""
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: "muon" if predicate(path, leaf) else "adamw", params)


def muon_with_adamw(learning_rate: optax.ScalarOrSchedule, *,
                    adam_learning_rate: optax.ScalarOrSchedule | None = None,
                    adam_b1: float = 0.9, adam_b2: float = 0.999, adam_eps: float = 1e-8,
                    adam_weight_decay: float = 0.0, muon_weight_decay: float = 0.0,
                    muon_mask: Callable[[Any, Any], bool] | None = None,
                    **muon_kwargs) -> optax.GradientTransformation:
  """Muon on 2-D hidden weights, AdamW on everything else.

  Args:
    learning_rate: Muon's learning rate (float or schedule).
    adam_learning_rate: AdamW's; None uses `learning_rate` (sensible with the
      default "kimi" scaling, which matches AdamW's update RMS).
    adam_b1, adam_b2, adam_eps, adam_weight_decay: AdamW's settings (optax
      defaults; the paper's LLaMA runs pass their own).
    muon_weight_decay: decoupled weight decay on the Muon leaves.
    muon_mask: predicate (path, leaf) -> bool choosing Muon leaves; default
      `is_hidden_matrix` (2-D and not an embedding / lm_head by path).
    **muon_kwargs: forwarded to `scale_by_muon`.

  Returns:
    optax.GradientTransformation (an optax.partition over the two labels).
  """
  predicate = muon_mask or is_hidden_matrix
  if adam_learning_rate is None:
    adam_learning_rate = learning_rate
  _check_learning_rate("adam_learning_rate", adam_learning_rate)
  partition = getattr(optax, "partition", None) or optax.multi_transform
  return partition(
      {
          "muon": muon(learning_rate, weight_decay=muon_weight_decay, **muon_kwargs),
          "adamw": optax.adamw(adam_learning_rate, b1=adam_b1, b2=adam_b2, eps=adam_eps,
                               weight_decay=adam_weight_decay),
      },
      lambda params: muon_labels(params, predicate),
  )
