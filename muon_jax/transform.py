"""Muon as optax transforms: scale_by_muon, muon, muon_with_adamw.

Paper's Algorithm 1 (Kimi variant; Liu et al. 2025, arXiv:2502.16982):

    M_t = beta * M_{t-1} + G_t
    O_t = NewtonSchulz(G_t + beta * M_t)          (Nesterov; M_t without it)
    W_t = W_{t-1} - lr * (0.2 * sqrt(max(m, n)) * O_t + wd * W_{t-1})

Layout follows JAX/Flax (and optax): a 2-D kernel is (fan_in, fan_out), i.e.
(reduction, output). Which axes of a leaf form the matrix is set by
`MuonDimensionNumbers`; by default a 2-D leaf is (reduction, output) and an
N-D leaf such as a Flax conv kernel (kh, kw, c_in, c_out) flattens every axis
but the last into the reduction side, as Jordan's Muon flattens conv kernels.
Axes named in neither set are batch axes: each slice is orthogonalized alone.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from muon_jax import newton_schulz as ns

SCALINGS = ("kimi", "keller", "none")
MOMENTUMS = ("paper", "optax", "keller")
BATCHINGS = ("auto", "stack", "loop")
KIMI_RMS = 0.2


class MuonDimensionNumbers(NamedTuple):
  """Which axes of a leaf form the (reduction, output) matrix Muon orthogonalizes.

  Same fields and meaning as `optax.contrib.MuonDimensionNumbers` (instances
  of either class are accepted everywhere): several axes per side are
  flattened in the order given; axes in neither set are batch axes.
  """

  reduction_axis: Sequence[int] | int = 0
  output_axis: Sequence[int] | int = 1


def is_dimension_numbers(x) -> bool:
  """True for MuonDimensionNumbers of this package or of optax.contrib."""
  return isinstance(x, tuple) and hasattr(x, "reduction_axis") and hasattr(x, "output_axis")


def default_dimension_numbers(shape) -> MuonDimensionNumbers:
  """(0, 1) for a matrix; every axis but the last on the reduction side otherwise."""
  ndim = len(shape)
  if ndim == 2:
    return MuonDimensionNumbers(0, 1)
  return MuonDimensionNumbers(tuple(range(ndim - 1)), ndim - 1)


def matrix_axes(shape, dims) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
  """(batch, reduction, output) axes of a leaf of `shape`, normalized and checked."""
  ndim = len(shape)
  if ndim < 2:
    raise ValueError(f"dimension_numbers: Muon needs >= 2-D leaves, got shape {tuple(shape)}")
  dims = default_dimension_numbers(shape) if dims is None else dims

  def norm(axes):
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if not axes or any(not -ndim <= a < ndim for a in axes):
      raise ValueError(f"dimension_numbers: axes {axes} invalid for shape {tuple(shape)}")
    return tuple(a % ndim for a in axes)

  reduction, output = norm(dims.reduction_axis), norm(dims.output_axis)
  if (
    set(reduction) & set(output)
    or len(set(reduction)) < len(reduction)
    or len(set(output)) < len(output)
  ):
    raise ValueError(
      f"dimension_numbers: reduction {reduction} and output {output} axes must be"
      f" distinct for shape {tuple(shape)}"
    )
  batch = tuple(a for a in range(ndim) if a not in reduction + output)
  return batch, reduction, output


def matrix_shape(shape, dims=None) -> tuple[int, int]:
  """(fan_in, fan_out) of the matrix Muon orthogonalizes for a leaf of `shape`."""
  _, reduction, output = matrix_axes(shape, dims)
  return math.prod(shape[a] for a in reduction), math.prod(shape[a] for a in output)


def to_matrices(x: jax.Array, dims=None):
  """Reshapes x to (fan_in, fan_out), or (batch, fan_in, fan_out) with batch axes.

  Returns (matrices, restore) where restore maps an array of the matrices'
  shape back to x's layout.
  """
  batch, reduction, output = matrix_axes(x.shape, dims)
  order = batch + reduction + output
  fan_in, fan_out = matrix_shape(x.shape, dims)
  flat = ((math.prod(x.shape[a] for a in batch),) if batch else ()) + (fan_in, fan_out)
  permuted_shape = tuple(x.shape[a] for a in order)
  inverse = tuple(order.index(a) for a in range(x.ndim))
  identity = order == tuple(range(x.ndim))
  matrices = x.reshape(flat) if identity else jnp.transpose(x, order).reshape(flat)

  def restore(y):
    y = y.reshape(permuted_shape)
    return y if identity else jnp.transpose(y, inverse)

  return matrices, restore


class ScaleByMuonState(NamedTuple):
  """State of `scale_by_muon`."""

  count: jax.Array  # shape=(), int32: number of updates applied.
  mu: optax.Updates  # momentum, same tree and shapes as params.


def _check_number(name: str, value, low=None, high=None, high_open=False) -> None:
  """Validates Python numbers; arrays/tracers (e.g. inject_hyperparams) pass."""
  if not isinstance(value, (int, float)) or isinstance(value, bool):
    return
  if (low is not None and value < low) or (
    high is not None and (value >= high if high_open else value > high)
  ):
    hi = "inf" if high is None else high
    raise ValueError(
      f"{name}={value} is out of range; allowed [{low}, {hi}{')' if high_open else ']'}"
    )


def _path_str(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/")


def _check_matrix_leaves(tree, where: str) -> None:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  if not leaves:
    raise ValueError(
      f"{where}: no leaves reached Muon (empty pytree); it needs at least one matrix"
    )
  for path, leaf in leaves:
    if jnp.ndim(leaf) < 2:
      raise ValueError(
        f"{where}: leaf '{_path_str(path)}' has shape {jnp.shape(leaf)}; Muon needs >= 2-D"
        " leaves. Route 0-D/1-D params elsewhere with muon_with_adamw (or optax.partition)."
      )
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
      raise ValueError(
        f"{where}: leaf '{_path_str(path)}' has dtype {jnp.result_type(leaf)};"
        " Muon needs floating or complex leaves"
      )


def leaf_dimension_numbers(dimension_numbers, tree) -> list:
  """Per-leaf dimension numbers (None = default) in `tree`'s leaf order.

  `dimension_numbers` is None, one MuonDimensionNumbers for every leaf, a
  pytree of them (a prefix of `tree`, e.g. one per sub-module; None entries
  mean the default), or a callable tree -> such a pytree.
  """
  spec = dimension_numbers(tree) if callable(dimension_numbers) else dimension_numbers
  n_leaves = len(jax.tree.leaves(tree))
  if spec is None or is_dimension_numbers(spec):
    return [spec] * n_leaves
  is_spec = lambda x: x is None or is_dimension_numbers(x)
  try:
    subtrees = jax.tree.structure(spec, is_leaf=is_spec).flatten_up_to(tree)
  except ValueError as e:
    raise ValueError(f"dimension_numbers: tree does not match the updates' tree ({e})") from None
  specs = jax.tree.leaves(spec, is_leaf=is_spec)
  return [d for d, sub in zip(specs, subtrees) for _ in jax.tree.leaves(sub)]


def shape_scale(shape, scaling: str, dimension_numbers=None, kimi_rms: float = KIMI_RMS):
  """Update multiplier for a leaf of `shape` whose matrix is (fan_in, fan_out).

  "kimi": kimi_rms * sqrt(max(fan_in, fan_out)) (Moonlight's consistent RMS;
  0.2 matches AdamW's update RMS); "keller": sqrt(max(1, fan_out / fan_in))
  (Jordan's width rule, written for JAX's (in, out) layout as optax does;
  PyTorch's (out, in) weight has rows = fan_out); "none": 1.
  """
  fan_in, fan_out = matrix_shape(shape, dimension_numbers)
  if scaling == "kimi":
    return kimi_rms * math.sqrt(max(fan_in, fan_out))
  if scaling == "keller":
    return math.sqrt(max(1.0, fan_out / fan_in))
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


def orthogonalize_tree(
  tree,
  *,
  coeffs,
  steps=None,
  eps,
  ns_dtype=None,
  method="auto",
  batching="auto",
  preconditioning="frobenius",
  dimension_numbers=None,
):
  """Newton–Schulz of every leaf's matrix (see `to_matrices`), in the leaf's layout.

  Args:
    tree: pytree of >= 2-D arrays.
    coeffs, steps, eps, ns_dtype, method, preconditioning: see
      `newton_schulz.orthogonalize` (coeffs may be a traced (rows, 3) array;
      a traced steps needs a single (a, b, c)).
    batching: "stack" (one NS call per (matrix shape, dtype) group), "loop"
      (one per leaf) or "auto" (`default_batching`).
    dimension_numbers: see `leaf_dimension_numbers`.

  Returns:
    A pytree like `tree`.
  """
  if batching == "auto":
    batching = default_batching()
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  dims = leaf_dimension_numbers(dimension_numbers, tree)
  if isinstance(steps, jax.core.Tracer):
    table, traced_steps = coeffs, steps
  else:
    table, traced_steps = ns.coefficient_table(coeffs, steps), None
  call = lambda x: ns.orthogonalize(
    x,
    coeffs=table,
    steps=traced_steps,
    eps=eps,
    ns_dtype=ns_dtype,
    method=method,
    preconditioning=preconditioning,
  )
  flat, restores = zip(*(to_matrices(x, d) for x, d in zip(leaves, dims))) if leaves else ((), ())
  out = [None] * len(leaves)
  if batching == "loop":
    out = [call(x) for x in flat]
  else:
    groups = collections.defaultdict(list)
    for i, x in enumerate(flat):
      groups[(x.shape, x.dtype)].append(i)
    for idx in groups.values():
      if len(idx) == 1:
        out[idx[0]] = call(flat[idx[0]])
        continue
      stacked = call(jnp.stack([flat[i] for i in idx]))
      for j, i in enumerate(idx):
        out[i] = stacked[j]
  return jax.tree_util.tree_unflatten(treedef, [r(y) for r, y in zip(restores, out)])


def momentum_direction(updates, mu, count, beta, nesterov: bool, momentum: str):
  """(new momentum, Newton–Schulz input) for one of the `MOMENTUMS` forms.

  `count` is the step number t >= 1 of this update (optax's bias correction).
  """
  if momentum == "paper":
    mu = jax.tree.map(lambda m, g: beta * m + g, mu, updates)
    return mu, (jax.tree.map(lambda m, g: g + beta * m, mu, updates) if nesterov else mu)
  mu = jax.tree.map(lambda m, g: beta * m + (1 - beta) * g, mu, updates)
  if momentum == "keller":
    return mu, (
      jax.tree.map(lambda m, g: beta * m + (1 - beta) * g, mu, updates) if nesterov else mu
    )
  t = count.astype(jnp.float32)
  if nesterov:
    return mu, jax.tree.map(
      lambda m, g: beta * m / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta**t), mu, updates
    )
  return mu, jax.tree.map(lambda m: m / (1 - beta**t), mu)


def dual_norm_scale(direction, ortho):
  """Scales each orthogonalized leaf O by <D, O> (Bernstein & Newhouse 2024's dual norm)."""
  return jax.tree.map(lambda d, o: jnp.sum(d.conj() * o) * o, direction, ortho)


def scale_by_muon(
  beta: float = 0.95,
  nesterov: bool = True,
  coeffs: ns.Coeffs = "kimi",
  steps: int | None = None,
  eps: float = 1e-7,
  scaling: str = "kimi",
  mu_dtype=None,
  ns_dtype=None,
  *,
  momentum: str = "paper",
  batching: str = "auto",
  method: str = "auto",
  preconditioning: str = "frobenius",
  dimension_numbers=None,
  adaptive: bool = False,
  kimi_rms: float = KIMI_RMS,
) -> optax.GradientTransformation:
  """Muon's direction: momentum -> Newton–Schulz -> shape scaling.

  Args:
    beta: momentum coefficient in [0, 1).
    nesterov: feed the Nesterov look-ahead to Newton–Schulz.
    coeffs, steps, ns_dtype, method, preconditioning: see
      `newton_schulz.orthogonalize` (steps=None: 5, or the table's rows; a
      table shorter than steps repeats its last row; a None default also keeps
      steps static under optax.inject_hyperparams).
    eps: added to the Frobenius norm of the Newton–Schulz input, i.e. of the
      momentum form's output (see `momentum`): its effect depends on that
      form's scale, which is why "keller" exists.
    scaling: "kimi" (kimi_rms sqrt(max(fan_in, fan_out)), the paper's),
      "keller" (sqrt(max(1, fan_out / fan_in)), optax's default) or "none".
    mu_dtype: storage dtype of the momentum (None: the gradient's).
    momentum: "paper" — Algorithm 1 and Moonlight, M <- beta M + G, Nesterov
      input G + beta M; "optax" — bias-corrected EMA exactly as
      optax.contrib.muon (M <- beta M + (1 - beta) G, Nesterov input
      beta M / (1 - beta^(t+1)) + (1 - beta) G / (1 - beta^t)); "keller" —
      Jordan's Muon, the same EMA without bias correction, Nesterov input
      beta M + (1 - beta) G. The three differ by a per-step factor, which
      Newton–Schulz removes except through eps.
    batching: "stack" (one vmapped NS per (shape, dtype) group), "loop"
      (one NS per leaf) or "auto" (loop on CPU, stack elsewhere).
    dimension_numbers: None (2-D leaves as (in, out); N-D leaves flatten all
      but the last axis into fan_in), one MuonDimensionNumbers for all leaves,
      a pytree of them (a prefix of the params is fine) or a callable params ->
      such a pytree.
    adaptive: multiply each orthogonalized leaf by <direction, O>, the dual
      norm of its Newton–Schulz input (optax's `adaptive`).
    kimi_rms: the update RMS targeted by "kimi" scaling (optax's
      `consistent_rms`); >= 0.

  Returns:
    An optax.GradientTransformation with state ScaleByMuonState. Updates are
    returned in the gradients' dtypes.

  References:
    Jordan et al., `Muon <https://kellerjordan.github.io/posts/muon/>`_, 2024.
    Liu et al., `Muon is Scalable for LLM Training
    <https://arxiv.org/abs/2502.16982>`_, 2025.
    Bernstein & Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """
  ns.coefficient_table(coeffs, steps)
  _check_number("beta", beta, 0.0, 1.0, high_open=True)
  _check_number("eps", eps, 0.0)
  _check_number("kimi_rms", kimi_rms, 0.0)
  if scaling not in SCALINGS:
    raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
  for name, value, allowed in (
    ("momentum", momentum, MOMENTUMS),
    ("batching", batching, BATCHINGS),
    ("method", method, ns.METHODS),
    ("preconditioning", preconditioning, ns.PRECONDITIONINGS),
  ):
    if value not in allowed:
      raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
  if not (
    dimension_numbers is None
    or callable(dimension_numbers)
    or all(
      map(is_dimension_numbers, jax.tree.leaves(dimension_numbers, is_leaf=is_dimension_numbers))
    )
  ):
    raise ValueError(
      "dimension_numbers must be None, MuonDimensionNumbers, a pytree of them"
      f" or a callable; got {dimension_numbers!r}"
    )
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def init_fn(params):
    _check_matrix_leaves(params, "scale_by_muon")
    for leaf, dims in zip(
      jax.tree.leaves(params), leaf_dimension_numbers(dimension_numbers, params)
    ):
      matrix_axes(jnp.shape(leaf), dims)
    mu = jax.tree.map(lambda p: jnp.zeros(p.shape, mu_dtype or p.dtype), params)
    return ScaleByMuonState(count=jnp.zeros([], jnp.int32), mu=mu)

  def update_fn(updates, state, params=None):
    del params
    _check_matrix_leaves(updates, "scale_by_muon")
    count = optax.safe_increment(state.count)
    mu, direction = momentum_direction(updates, state.mu, count, beta, nesterov, momentum)
    dims = dimension_numbers(updates) if callable(dimension_numbers) else dimension_numbers
    ortho = orthogonalize_tree(
      direction,
      coeffs=coeffs,
      steps=steps,
      eps=eps,
      ns_dtype=ns_dtype,
      method=method,
      batching=batching,
      preconditioning=preconditioning,
      dimension_numbers=dims,
    )
    if adaptive:
      ortho = dual_norm_scale(direction, ortho)
    ortho_leaves, treedef = jax.tree.flatten(ortho)
    new_updates = treedef.unflatten(
      [
        (shape_scale(o.shape, scaling, d, kimi_rms) * o).astype(g.dtype)
        for o, g, d in zip(
          ortho_leaves, jax.tree.leaves(updates), leaf_dimension_numbers(dims, updates)
        )
      ]
    )
    mu = jax.tree.map(lambda m, g: m.astype(mu_dtype or g.dtype), mu, updates)
    return new_updates, ScaleByMuonState(count=count, mu=mu)

  return optax.GradientTransformation(init_fn, update_fn)


def _check_learning_rate(name: str, lr) -> None:
  if callable(lr):
    return
  _check_number(name, lr, 0.0)


def muon(
  learning_rate: optax.ScalarOrSchedule,
  *,
  weight_decay: float = 0.0,
  weight_decay_mask: Any | Callable[[optax.Params], Any] | None = None,
  beta: float = 0.95,
  nesterov: bool = True,
  coeffs: ns.Coeffs = "kimi",
  steps: int | None = None,
  eps: float = 1e-7,
  scaling: str = "kimi",
  mu_dtype=None,
  ns_dtype=None,
  momentum: str = "paper",
  batching: str = "auto",
  method: str = "auto",
  preconditioning: str = "frobenius",
  dimension_numbers=None,
  adaptive: bool = False,
  kimi_rms: float = KIMI_RMS,
) -> optax.GradientTransformation:
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
    scale_by_muon(
      beta=beta,
      nesterov=nesterov,
      coeffs=coeffs,
      steps=steps,
      eps=eps,
      scaling=scaling,
      mu_dtype=mu_dtype,
      ns_dtype=ns_dtype,
      momentum=momentum,
      batching=batching,
      method=method,
      preconditioning=preconditioning,
      dimension_numbers=dimension_numbers,
      adaptive=adaptive,
      kimi_rms=kimi_rms,
    ),
    optax.add_decayed_weights(weight_decay, weight_decay_mask),
    optax.scale_by_learning_rate(learning_rate),
  )


# Path components (lower-cased) that mark a leaf as an embedding or output
# head, which Muon's authors and the paper (App 12) route to AdamW.
NON_HIDDEN_PATTERN = re.compile(r"(embed|lm_head|unembed|wte|wpe|^head$|classifier)")
CONV_PATTERN = re.compile(r"conv")


def _parts(path) -> list[str]:
  return [p.lower() for p in _path_str(path).split("/")]


def is_hidden_matrix(path, leaf) -> bool:
  """Default Muon predicate: a hidden weight matrix or conv kernel, by shape and path.

  True for 2-D leaves and for >= 3-D leaves with "conv" in their path (Flax
  conv kernels (..., c_in, c_out), orthogonalized with the spatial axes
  flattened into fan_in), unless a path component names an embedding or head
  (NON_HIDDEN_PATTERN). Everything else goes to AdamW.
  """
  ndim = jnp.ndim(leaf)
  parts = _parts(path)
  if any(NON_HIDDEN_PATTERN.search(p) for p in parts):
    return False
  return ndim == 2 or (ndim >= 3 and any(CONV_PATTERN.search(p) for p in parts))


def muon_labels(params, predicate: Callable[[Any, Any], bool] = is_hidden_matrix):
  """Pytree of "muon" / "adamw" labels (see `describe_routing` for a readable table)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, leaf: "muon" if predicate(path, leaf) else "adamw", params
  )


def describe_routing(
  params, predicate: Callable[[Any, Any], bool] = is_hidden_matrix, dimension_numbers=None
) -> str:
  """One line per leaf: path, shape, label and, for Muon leaves, the matrix it orthogonalizes.

  `print(describe_routing(params))` shows what `muon_with_adamw` does with
  the same `predicate` (its `muon_mask`) and `dimension_numbers`.
  """
  leaves = jax.tree_util.tree_leaves_with_path(params)
  labels = jax.tree.leaves(muon_labels(params, predicate))
  muon_tree = jax.tree.map(
    lambda p, lab: p if lab == "muon" else None, params, muon_labels(params, predicate)
  )
  muon_dims = iter(leaf_dimension_numbers(dimension_numbers, muon_tree))
  rows = []
  for (path, leaf), label in zip(leaves, labels):
    matrix = ""
    if label == "muon":
      batch, _, _ = matrix_axes(jnp.shape(leaf), dims := next(muon_dims))
      fan_in, fan_out = matrix_shape(jnp.shape(leaf), dims)
      n_batch = math.prod(jnp.shape(leaf)[a] for a in batch)
      matrix = f"{n_batch} x " if batch else ""
      matrix += f"{fan_in}x{fan_out}"
    rows.append((_path_str(path), str(tuple(jnp.shape(leaf))), label, matrix))
  widths = [
    max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(("path", "shape", "label"))
  ]
  fmt = lambda r: f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
  return "\n".join(
    [fmt(("path", "shape", "label", "orthogonalized matrix"))] + [fmt(r) for r in rows]
  )


def muon_with_adamw(
  learning_rate: optax.ScalarOrSchedule,
  *,
  adam_learning_rate: optax.ScalarOrSchedule | None = None,
  adam_b1: float = 0.9,
  adam_b2: float = 0.999,
  adam_eps: float = 1e-8,
  adam_eps_root: float = 0.0,
  adam_mu_dtype=None,
  adam_nesterov: bool = False,
  adam_weight_decay: float = 0.0,
  muon_weight_decay: float = 0.0,
  muon_mask: Callable[[Any, Any], bool] | None = None,
  beta: float = 0.95,
  nesterov: bool = True,
  coeffs: ns.Coeffs = "kimi",
  steps: int | None = None,
  eps: float = 1e-7,
  scaling: str = "kimi",
  mu_dtype=None,
  ns_dtype=None,
  momentum: str = "paper",
  batching: str = "auto",
  method: str = "auto",
  preconditioning: str = "frobenius",
  dimension_numbers=None,
  adaptive: bool = False,
  kimi_rms: float = KIMI_RMS,
) -> optax.GradientTransformation:
  """Muon on hidden matrices and conv kernels, AdamW on everything else.

  Args:
    learning_rate: Muon's learning rate (float or schedule).
    adam_learning_rate: AdamW's; None uses `learning_rate` (sensible with the
      default "kimi" scaling, which matches AdamW's update RMS).
    adam_b1, adam_b2, adam_eps, adam_eps_root, adam_mu_dtype, adam_nesterov,
      adam_weight_decay: optax.adamw's b1, b2, eps, eps_root, mu_dtype,
      nesterov and weight_decay (optax defaults; optax.contrib.muon instead
      ties nesterov and mu_dtype to Muon's and eps to Muon's eps).
    muon_weight_decay: decoupled weight decay on the Muon leaves.
    muon_mask: predicate (path, leaf) -> bool choosing Muon leaves; default
      `is_hidden_matrix` (see `describe_routing` for what it picks).
    beta, nesterov, coeffs, steps, eps, scaling, mu_dtype, ns_dtype, momentum,
      batching, method, preconditioning, dimension_numbers, adaptive, kimi_rms:
      `scale_by_muon`'s, for the Muon leaves.

  Returns:
    optax.GradientTransformation (an optax.partition over the two labels).
    Its init raises, naming the candidates and `muon_mask`, if no leaf is
    routed to Muon.
  """
  predicate = muon_mask or is_hidden_matrix
  if adam_learning_rate is None:
    adam_learning_rate = learning_rate
  _check_learning_rate("adam_learning_rate", adam_learning_rate)

  def labels(params):
    tree = muon_labels(params, predicate)
    if "muon" not in jax.tree.leaves(tree):
      multi = [
        f"'{_path_str(p)}' {tuple(jnp.shape(x))}"
        for p, x in jax.tree_util.tree_leaves_with_path(params)
        if jnp.ndim(x) >= 2
      ]
      raise ValueError(
        "muon_mask: no leaf was routed to Muon. >= 2-D leaves seen: "
        f"{', '.join(multi[:8]) or 'none'}{' ...' if len(multi) > 8 else ''}. Pass"
        " muon_mask=lambda path, leaf: ... (e.g. jnp.ndim(leaf) >= 2 for conv kernels, which"
        " are then flattened to (kh*kw*c_in, c_out); see dimension_numbers)"
      )
    return tree

  return optax.partition(
    {
      "muon": muon(
        learning_rate,
        weight_decay=muon_weight_decay,
        beta=beta,
        nesterov=nesterov,
        coeffs=coeffs,
        steps=steps,
        eps=eps,
        scaling=scaling,
        mu_dtype=mu_dtype,
        ns_dtype=ns_dtype,
        momentum=momentum,
        batching=batching,
        method=method,
        preconditioning=preconditioning,
        dimension_numbers=dimension_numbers,
        adaptive=adaptive,
        kimi_rms=kimi_rms,
      ),
      "adamw": optax.adamw(
        adam_learning_rate,
        b1=adam_b1,
        b2=adam_b2,
        eps=adam_eps,
        eps_root=adam_eps_root,
        mu_dtype=adam_mu_dtype,
        weight_decay=adam_weight_decay,
        nesterov=adam_nesterov,
      ),
    },
    labels,
  )
