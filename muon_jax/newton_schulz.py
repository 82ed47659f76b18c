"""Newton–Schulz orthogonalization: coefficient presets, standard and Gram forms.

The quintic Newton–Schulz map applied to the singular values of a matrix is

    rho(s) = a*s + b*s**3 + c*s**5,      X <- a X + b (X X^T) X + c (X X^T)^2 X,

iterated `steps` times after Frobenius pre-normalization (so every singular
value starts in [0, 1]). Muon (Jordan et al. 2024) uses it as a cheap stand-in
for the polar factor U V^T of the momentum; the paper under test ("Dimension-Free
Saddle-Point Escape in Muon", Lemma 2) analyses the same map with the Kimi /
Moonlight coefficients (Liu et al. 2025, arXiv:2502.16982).

Two algebraically identical forms are provided:

* "standard": three products per step on the (m, n) iterate, m <= n.
* "gram": every iterate is X_k = Q_k X_0 with Q_k a polynomial in the small
  Gram matrix R_0 = X_0 X_0^T (m x m). All polynomials in R_0 commute, so
  Q_{k+1} = Z_k Q_k and R_{k+1} = Z_k^2 R_k with Z_k = a + b R_k + c R_k^2.
  Only m x m products run in the loop; X is touched twice (R_0 and Q X_0).
  This is the Gram Newton–Schulz reformulation (Dao-AILab, gram-newton-schulz)
  and costs fewer FLOPs once n >= 1.5 m (see `ns_flops`).
"""

from __future__ import annotations

import functools
from typing import Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

Coeffs = Union[str, Sequence[float], Sequence[Sequence[float]]]

# Kimi / Moonlight quintic (Liu et al. 2025, arXiv:2502.16982; also Jordan's
# Muon and optax's `_DEFAULT_NS_COEFFS`). The paper's Lemma 2 uses these.
KIMI_COEFFS = (3.4445, -4.7750, 2.0315)

# Jiacheng You's 5-step schedule as shipped by Dion (Ahn et al. 2025,
# arXiv:2504.05295) and optax.contrib (`_DION_NS_COEFFS`).
DION_COEFFS = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)

# Polar Express, degree 5 (Amsel, Persson, Musco, Gower 2025,
# arXiv:2505.16932, Algorithm 1). Every step but the last fixed point is
# divided by the paper's safety factor 1.01 (a/1.01, b/1.01^3, c/1.01^5);
# steps beyond the table repeat the fixed point (1.875, -1.25, 0.375).
_POLAR_EXPRESS_RAW = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
)
POLAR_EXPRESS_SAFETY = 1.01
POLAR_EXPRESS_COEFFS = tuple(
    (a / POLAR_EXPRESS_SAFETY, b / POLAR_EXPRESS_SAFETY**3,
     c / POLAR_EXPRESS_SAFETY**5) for a, b, c in _POLAR_EXPRESS_RAW
) + ((1.875, -1.25, 0.375),)

PRESETS = ("kimi", "dion", "polar_express")
METHODS = ("auto", "standard", "gram")

# Gram form pays once the long side is this many times the short side (FLOP
# count of `ns_flops`: 20 m^2 n + 10 m^3 vs 4 m^2 n + 34 m^3 for 5 steps).
GRAM_ASPECT_THRESHOLD = 1.5


def resolve_coeffs(coeffs: Coeffs, steps=None) -> tuple[tuple[float, float, float], ...]:
  """Returns the per-step schedule ((a, b, c),) * steps for a preset or user value.

  `steps=None` means 5, or the length of a user per-step sequence. Raises
  ValueError with the allowed values for unknown presets, steps <= 0,
  malformed tuples, or a per-step schedule whose length differs from `steps`.
  """
  if steps is None:
    steps = len(coeffs) if (not isinstance(coeffs, str) and np.ndim(coeffs) == 2) else 5
  if isinstance(steps, jax.core.Tracer):
    raise ValueError("steps must be a static Python int; under optax.inject_hyperparams pass"
                     " static_args=('steps',) or leave steps at its default None")
  if isinstance(steps, (np.ndarray, jax.Array)) and steps.ndim == 0 and jnp.issubdtype(steps.dtype, jnp.integer):
    steps = int(steps)
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
    raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
  steps = int(steps)
  if isinstance(coeffs, str):
    if coeffs == "kimi":
      return (KIMI_COEFFS,) * steps
    if coeffs == "dion":
      if steps != len(DION_COEFFS):
        raise ValueError(
            f"coeffs='dion' is a {len(DION_COEFFS)}-step schedule; got steps={steps}"
            f" (use steps={len(DION_COEFFS)} or pass your own per-step sequence)")
      return DION_COEFFS
    if coeffs == "polar_express":
      table = POLAR_EXPRESS_COEFFS
      return tuple(table[min(i, len(table) - 1)] for i in range(steps))
    raise ValueError(f"unknown coeffs preset {coeffs!r}; allowed: {', '.join(PRESETS)}"
                     " or a tuple (a, b, c) or a per-step sequence of such tuples")
  arr = np.asarray(coeffs, dtype=np.float64)
  if arr.shape == (3,):
    return (tuple(float(v) for v in arr),) * steps
  if arr.ndim == 2 and arr.shape[1] == 3:
    if arr.shape[0] != steps:
      raise ValueError(
          f"per-step coeffs schedule has {arr.shape[0]} entries but steps={steps};"
          " they must be equal")
    return tuple(tuple(float(v) for v in row) for row in arr)
  raise ValueError(f"coeffs must be a preset name, (a, b, c) or a sequence of"
                   f" (a, b, c); got array of shape {arr.shape}")


def use_gram(m: int, n: int, method: str = "auto", dtype=jnp.float32) -> bool:
  """Whether `newton_schulz` runs the Gram form on an (m, n) matrix."""
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if method != "auto":
    return method == "gram"
  short, long = min(m, n), max(m, n)
  # Low precision: the Gram recursion squares the conditioning of R_k, which
  # bf16 cannot carry without Dao-AILab's restarts; keep the standard form.
  return long >= GRAM_ASPECT_THRESHOLD * short and jnp.finfo(dtype).bits >= 32


def ns_flops(shape: Sequence[int], steps: int = 5, method: str = "auto") -> int:
  """Matmul FLOPs (2 per multiply-add) of one `newton_schulz` call on `shape`."""
  *batch, m, n = shape
  short, long = min(m, n), max(m, n)
  count = int(np.prod(batch)) if batch else 1
  if use_gram(m, n, method):
    # R0 and Q X0 (2 m^2 n each) + per step R^2, Z R, Z(ZR), Z Q, minus
    # the first step's Z Q and the last step's R update.
    small = 4 * steps - 3 if steps > 1 else 1
    return count * (2 * 2 * short * short * long + small * 2 * short**3)
  return count * steps * (2 * 2 * short * short * long + 2 * short**3)


def _standard(x, schedule):
  for a, b, c in schedule:
    gram = x @ jnp.swapaxes(x, -1, -2)
    poly = b * gram + c * (gram @ gram)
    x = a * x + poly @ x
  return x


def _gram(x, schedule):
  r = x @ jnp.swapaxes(x, -1, -2)
  eye = jnp.eye(r.shape[-1], dtype=x.dtype)
  q = None
  for k, (a, b, c) in enumerate(schedule):
    z = a * eye + b * r + c * (r @ r)
    q = z if q is None else z @ q
    if k < len(schedule) - 1:
      r = z @ (z @ r)
  return q @ x


@functools.partial(jax.jit, static_argnames=("schedule", "method", "ns_dtype"))
def _newton_schulz(x, eps, *, schedule, method, ns_dtype):
  out_dtype = x.dtype
  m, n = x.shape[-2:]
  transposed = m > n
  if transposed:
    x = jnp.swapaxes(x, -1, -2)
  compute_dtype = jnp.dtype(ns_dtype) if ns_dtype is not None else x.dtype
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  x = x.astype(acc_dtype)
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=(-2, -1), keepdims=True))
  x = (x / (norm + eps)).astype(compute_dtype)
  if use_gram(m, n, method, compute_dtype):
    x = _gram(x, schedule)
  else:
    x = _standard(x, schedule)
  if transposed:
    x = jnp.swapaxes(x, -1, -2)
  return x.astype(out_dtype)


def newton_schulz(x: jax.Array, *, coeffs: Coeffs = "kimi", steps: int | None = None,
                  eps: float = 1e-7, ns_dtype=None, method: str = "auto") -> jax.Array:
  """Approximate polar factor of every matrix in `x` (shape (..., m, n)).

  Args:
    x: array of shape (..., m, n); leading dims are independent batch dims.
    coeffs: preset ("kimi", "dion", "polar_express"), one (a, b, c) tuple used
      at every step, or a per-step sequence of length `steps`.
    steps: number of quintic iterations (>= 1); None: 5, or the length of a
      per-step sequence.
    eps: added to each matrix's Frobenius norm before dividing.
    ns_dtype: dtype the iteration runs in (e.g. jnp.bfloat16); the result is
      returned in x's dtype. None: x's dtype.
    method: "standard", "gram" or "auto" (Gram form for f32+ matrices with
      aspect ratio >= 1.5, standard otherwise).

  Returns:
    Array of x's shape and dtype. A zero matrix maps to zeros.
  """
  if x.ndim < 2:
    raise ValueError(f"newton_schulz needs an array of shape (..., m, n), got shape {x.shape}")
  schedule = resolve_coeffs(coeffs, steps)
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  ns_dtype = None if ns_dtype is None else jnp.dtype(ns_dtype).name
  return _newton_schulz(x, eps, schedule=schedule, method=method, ns_dtype=ns_dtype)


def polar_svd(x: jax.Array) -> jax.Array:
  """Exact polar factor U V^T of every matrix in `x` (shape (..., m, n)) via SVD."""
  u, _, vt = jnp.linalg.svd(x, full_matrices=False)
  return u @ vt
