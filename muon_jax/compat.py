"""Drop-in for `optax.contrib`'s Muon, computed by muon_jax's core.

Moving from optax is an import change:

    from muon_jax import compat as contrib      # was: from optax import contrib
    tx = contrib.muon(learning_rate=3e-4)

`muon`, `scale_by_muon`, `scale_by_shape`, `orthogonalize_via_newton_schulz`,
`MuonDimensionNumbers` and `MuonState` have the signatures and defaults of the
installed optax.contrib (0.2.8) and compute the same function (to float32
rounding; tests/test_compat.py and optax's own test file run against this
module). `MuonDimensionNumbers` and `MuonState` are optax's own classes, so
dimension numbers and states pass between the two libraries either way; the
state has the same pytree structure, so checkpoints and `optax.tree.get`
lookups carry over.
The Newton–Schulz iteration, reshaping, momentum and scaling are muon_jax's
(`muon_jax.newton_schulz`, `muon_jax.transform`), which is where the speed comes
from (same-shape batching, Gram form on rectangular matrices).

Deliberate differences, only where optax's result is not what it means:
  * bfloat16 params: optax rounds the coefficients to bfloat16 (3.4445 ->
    3.4375); here they are applied in float32.
  * complex params with preconditioning="schatten": optax's first step uses
    X X^T, here X X^H (the Schatten-4 norm of a complex matrix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from optax.contrib import MuonState

from muon_jax import newton_schulz as ns
from muon_jax import transform as core

__all__ = [
  "MuonDimensionNumbers",
  "MuonState",
  "muon",
  "orthogonalize_via_newton_schulz",
  "scale_by_muon",
  "scale_by_shape",
]

# optax's own class where optax has one, so dimension numbers made here also
# work in optax.contrib.muon (which checks isinstance against its class);
# muon_jax accepts either class everywhere.
MuonDimensionNumbers = getattr(optax.contrib, "MuonDimensionNumbers", core.MuonDimensionNumbers)
WeightDimNumOrFn = Any  # MuonDimensionNumbers | pytree of them | callable params -> pytree

_PRECONDITIONINGS = list(ns.PRECONDITIONINGS)
_DEFAULT_NS_COEFFS = ns.KIMI_COEFFS
_DION_NS_COEFFS = [tuple(row) for row in ns.DION_COEFFS]
_NS_COEFFS_PRESET_DICT = {"standard": _DEFAULT_NS_COEFFS, "dion": _DION_NS_COEFFS}
# optax's AOL and Schatten first steps floor their denominators at this value
# whatever `eps` is.
_FIRST_STEP_EPS = 1e-8


def _ns_eps(preconditioning, eps):
  return eps if preconditioning in ("frobenius", "spectral") else _FIRST_STEP_EPS


def _steps(ns_coeffs, ns_steps):
  # optax iterates over every row of a (rows, 3) table and ignores ns_steps.
  return ns_coeffs.shape[0] if ns_coeffs.ndim == 2 else ns_steps


def orthogonalize_via_newton_schulz(
  x: jax.Array,
  ns_coeffs: jax.Array,
  ns_steps: jax.typing.ArrayLike = 5,
  preconditioning: Literal["frobenius", "spectral", "aol", "schatten"] = "frobenius",
  eps: jax.typing.ArrayLike = 1e-8,
  dimension_numbers: MuonDimensionNumbers | None = None,
) -> jax.Array:
  """Orthogonalize via Newton–Schulz iteration (optax.contrib's function).

  Args:
    x: a matrix, or an array whose matrix `dimension_numbers` name.
    ns_coeffs: (3,) coefficients used at every step, or an (n, 3) table (then
      its n rows run and `ns_steps` is ignored).
    ns_steps: number of iterations for (3,) coefficients; may be traced.
    preconditioning: "frobenius", "spectral", "aol" or "schatten".
    eps: added to the norm for "frobenius" / "spectral".
    dimension_numbers: MuonDimensionNumbers; required unless x is 2-D.

  Returns:
    The orthogonalized array, x's shape and dtype.
  """
  if x.ndim != 2 and not core.is_dimension_numbers(dimension_numbers):
    raise ValueError(
      "Input must have shape (m, n) or weight dimension numbers must be"
      f" provided. Got shape={x.shape} and {dimension_numbers=}."
    )
  if x.ndim == 2:
    dimension_numbers = MuonDimensionNumbers(reduction_axis=0, output_axis=1)
  ns_coeffs = jnp.asarray(ns_coeffs)
  if ns_coeffs.ndim > 2 or ns_coeffs.shape[-1] != 3:
    raise ValueError(
      f"Newton-Schulz coefficients must have shape (3,) or (n, 3), got {ns_coeffs.shape}"
    )
  if preconditioning not in _PRECONDITIONINGS:
    raise ValueError(f"Unknown preconditioning {preconditioning}")
  matrices, restore = core.to_matrices(x, dimension_numbers)
  return restore(
    ns.orthogonalize(
      matrices,
      coeffs=ns_coeffs,
      steps=_steps(ns_coeffs, ns_steps),
      eps=_ns_eps(preconditioning, eps),
      preconditioning=preconditioning,
    )
  )


def _resolve(weight_dimension_numbers, updates):
  # Only shapes matter, so a callable sees the updates (params may be absent).
  if callable(weight_dimension_numbers):
    return weight_dimension_numbers(updates)
  return weight_dimension_numbers


def scale_by_shape(
  weight_dimension_numbers: WeightDimNumOrFn | None = None,
  consistent_rms: jax.typing.ArrayLike | None = None,
) -> optax.GradientTransformation:
  """Scale updates by factors derived from parameter shape (optax.contrib's).

  Args:
    weight_dimension_numbers: MuonDimensionNumbers, a pytree of them or a
      callable returning one; None: 2-D (fan_in, fan_out) leaves.
    consistent_rms: if set, scale by sqrt(max(fan_in, fan_out)) *
      consistent_rms; None: width scaling sqrt(max(1, fan_out / fan_in)).

  Returns:
    A stateless `GradientTransformation`.
  """

  def update_fn(updates, state, params=None):
    del params
    dims = core.leaf_dimension_numbers(_resolve(weight_dimension_numbers, updates), updates)
    leaves, treedef = jax.tree.flatten(updates)
    if consistent_rms is None:
      scale = lambda x, d: core.shape_scale(x.shape, "keller", d)
    else:
      scale = lambda x, d: core.shape_scale(x.shape, "kimi", d, kimi_rms=consistent_rms)
    return treedef.unflatten([scale(x, d) * x for x, d in zip(leaves, dims)]), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def scale_by_muon(
  ns_coeffs: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike, jax.typing.ArrayLike]
  | tuple[
    tuple[jax.typing.ArrayLike, jax.typing.ArrayLike, jax.typing.ArrayLike], ...
  ] = _DEFAULT_NS_COEFFS,
  ns_steps: jax.typing.ArrayLike = 5,
  beta: jax.typing.ArrayLike = 0.95,
  eps: jax.typing.ArrayLike = 1e-8,
  mu_dtype: jax.typing.DTypeLike | None = None,
  *,
  nesterov: bool = True,
  adaptive: bool = False,
  preconditioning: Literal["frobenius", "spectral", "aol", "schatten"] = "frobenius",
  weight_dimension_numbers: WeightDimNumOrFn | None = None,
) -> optax.GradientTransformation:
  """Rescale updates according to the Muon algorithm (optax.contrib's).

  Bias-corrected EMA momentum (Nesterov look-ahead by default), then
  Newton–Schulz of each leaf's matrix, then (if `adaptive`) the dual-norm
  scale <momentum, O>. No shape scaling here: see `scale_by_shape`.

  Args:
    ns_coeffs: (a, b, c), or a table of them with at most `ns_steps` rows.
    ns_steps: number of Newton–Schulz iterations (ignored for a table).
    beta: EMA decay of the gradients.
    eps: added to the norm of the Newton–Schulz input.
    mu_dtype: dtype of the momentum accumulator.
    nesterov: whether to use Nesterov momentum.
    adaptive: scale each update by the dual norm of its momentum.
    preconditioning: "frobenius", "spectral", "aol" or "schatten".
    weight_dimension_numbers: MuonDimensionNumbers, a pytree of them or a
      callable params -> such a pytree; None: every leaf is a 2-D matrix.

  Returns:
    A `GradientTransformation` with state `MuonState`.

  References:
    Jordan et al., `Muon <https://kellerjordan.github.io/posts/muon/>`_, 2024.
    Bernstein & Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """

  def init_fn(params):
    mu = optax.tree.zeros_like(params, dtype=mu_dtype)
    ns_coeffs_ = jnp.asarray(ns_coeffs)
    if ns_coeffs_.ndim > 2 or ns_coeffs_.shape[-1] != 3:
      raise ValueError(f"ns_coeffs must have shape (3,) or (n, 3), got {ns_coeffs_.shape}")
    if ns_coeffs_.ndim == 2:
      if not ns_coeffs_.shape[0] <= ns_steps:
        raise ValueError(f"Not enough coeffs to perform {ns_steps} steps")
      ns_coeffs_ = ns_coeffs_[-ns_steps:]
    return MuonState(count=jnp.zeros([], jnp.int32), mu=mu, ns_coeffs=ns_coeffs_)

  def update_fn(updates, state, params=None):
    del params
    dims = _resolve(weight_dimension_numbers, updates)
    for leaf, d in zip(jax.tree.leaves(updates), core.leaf_dimension_numbers(dims, updates)):
      if d is None and jnp.ndim(leaf) != 2:
        raise ValueError(
          "Input must have shape (m, n) or weight dimension numbers must be"
          f" provided. Got shape={jnp.shape(leaf)} and dimension_numbers=None."
        )
    count_inc = optax.safe_increment(state.count)
    mu, mu_hat = core.momentum_direction(updates, state.mu, count_inc, beta, nesterov, "optax")
    ortho = core.orthogonalize_tree(
      mu_hat,
      coeffs=state.ns_coeffs,
      steps=_steps(state.ns_coeffs, ns_steps),
      eps=_ns_eps(preconditioning, eps),
      preconditioning=preconditioning,
      dimension_numbers=dims,
    )
    if adaptive:
      ortho = core.dual_norm_scale(mu_hat, ortho)
    mu = optax.tree.cast(mu, mu_dtype)
    return ortho, MuonState(count=count_inc, mu=mu, ns_coeffs=state.ns_coeffs)

  return optax.GradientTransformation(init_fn, update_fn)


def muon(
  learning_rate: optax.ScalarOrSchedule,
  ns_coeffs: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike, jax.typing.ArrayLike]
  | tuple[tuple[jax.typing.ArrayLike, jax.typing.ArrayLike, jax.typing.ArrayLike], ...]
  | str = _DEFAULT_NS_COEFFS,
  ns_steps: jax.typing.ArrayLike = 5,
  beta: jax.typing.ArrayLike = 0.95,
  eps: jax.typing.ArrayLike = 1e-8,
  weight_decay: jax.typing.ArrayLike = 0.0,
  weight_decay_mask: Any | Callable[[optax.Params], Any] | None = None,
  mu_dtype: jax.typing.DTypeLike | None = None,
  *,
  nesterov: bool = True,
  adaptive: bool = False,
  preconditioning: Literal["frobenius", "spectral", "aol", "schatten"] = "frobenius",
  adam_b1: jax.typing.ArrayLike = 0.9,
  adam_b2: jax.typing.ArrayLike = 0.999,
  adam_eps_root: jax.typing.ArrayLike = 0.0,
  adam_weight_decay: jax.typing.ArrayLike = 0.0,
  adam_learning_rate: optax.ScalarOrSchedule | None = None,
  muon_weight_dimension_numbers: WeightDimNumOrFn | None = None,
  consistent_rms: jax.typing.ArrayLike | None = None,
) -> optax.GradientTransformation:
  """Muon on 2-D leaves (or those given dimension numbers), AdamW on the rest.

  optax.contrib.muon's semantics: Muon leaves get `scale_by_muon` ->
  `scale_by_shape` -> decoupled weight decay -> learning rate; the others
  get optax.adamw(adam_learning_rate or learning_rate, adam_b1, adam_b2,
  eps=eps, eps_root=adam_eps_root, weight_decay=adam_weight_decay,
  mu_dtype=mu_dtype, nesterov=nesterov).

  Args:
    learning_rate: Muon's learning rate or schedule.
    ns_coeffs: (a, b, c), a table of them, or a preset: "standard", "dion".
    ns_steps, beta, eps, mu_dtype, nesterov, adaptive, preconditioning: see
      `scale_by_muon`.
    weight_decay, weight_decay_mask: decoupled weight decay on Muon leaves.
    adam_b1, adam_b2, adam_eps_root, adam_weight_decay, adam_learning_rate:
      the AdamW group's settings (learning rate defaults to Muon's).
    muon_weight_dimension_numbers: a pytree of MuonDimensionNumbers (None
      entries go to AdamW) or a callable params -> such a pytree; None: every
      2-D leaf is Muon's.
    consistent_rms: see `scale_by_shape`.

  Returns:
    An optax.partition over the labels "muon" and "adam".
  """
  if adam_learning_rate is None:
    adam_learning_rate = learning_rate
  if isinstance(ns_coeffs, str):
    if ns_coeffs not in _NS_COEFFS_PRESET_DICT:
      raise ValueError(f"Unknown ns_coeff preset string: {ns_coeffs}")
    ns_coeffs = _NS_COEFFS_PRESET_DICT[ns_coeffs]

  is_spec = lambda x: x is None or core.is_dimension_numbers(x)
  dimension_numbers = muon_weight_dimension_numbers
  if dimension_numbers is None:
    param_labels = lambda params: jax.tree.map(lambda x: "muon" if x.ndim == 2 else "adam", params)
    dimension_numbers = MuonDimensionNumbers()
  else:

    def param_labels(params):
      spec = _resolve(dimension_numbers, params)
      # Dimension numbers first: they may be a prefix of the params.
      return jax.tree.map(
        lambda d, sub: jax.tree.map(lambda _: "muon" if d is not None else "adam", sub),
        spec,
        params,
        is_leaf=is_spec,
      )

  def muon_dimension_numbers(params):
    # One entry per Muon leaf, MaskedNode elsewhere: the shape of the masked
    # updates that optax.partition hands to the Muon branch.
    spec = _resolve(dimension_numbers, params)
    mask = jax.tree.map(lambda label: label == "muon", param_labels(params))
    return jax.tree.map(
      lambda d, submask: jax.tree.map(lambda m: d if m else optax.MaskedNode(), submask),
      spec,
      mask,
      is_leaf=lambda x: is_spec(x) or isinstance(x, optax.MaskedNode),
    )

  return optax.partition(
    transforms={
      "muon": optax.chain(
        scale_by_muon(
          ns_coeffs=ns_coeffs,
          ns_steps=ns_steps,
          beta=beta,
          eps=eps,
          mu_dtype=mu_dtype,
          nesterov=nesterov,
          adaptive=adaptive,
          preconditioning=preconditioning,
          weight_dimension_numbers=muon_dimension_numbers,
        ),
        scale_by_shape(
          weight_dimension_numbers=muon_dimension_numbers, consistent_rms=consistent_rms
        ),
        optax.add_decayed_weights(weight_decay, weight_decay_mask),
        optax.scale_by_learning_rate(learning_rate),
      ),
      "adam": optax.adamw(
        learning_rate=adam_learning_rate,
        b1=adam_b1,
        b2=adam_b2,
        eps=eps,
        eps_root=adam_eps_root,
        weight_decay=adam_weight_decay,
        mu_dtype=mu_dtype,
        nesterov=nesterov,
      ),
    },
    param_labels=param_labels,
  )
