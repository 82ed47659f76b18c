"""Newton–Schulz orthogonalization: coefficient presets, standard and Gram forms.

The quintic Newton–Schulz map applied to the singular values of a matrix is

    rho(s) = a*s + b*s**3 + c*s**5,      X <- a X + b (X X^H) X + c (X X^H)^2 X,

iterated `steps` times after a pre-normalization (Frobenius by default) that
puts every singular value in [0, 1]. X^H is the conjugate transpose, so complex
matrices work. Muon (Jordan et al. 2024) uses it as a cheap stand-in for the
polar factor U V^H of the momentum; the paper under test ("Dimension-Free
Saddle-Point Escape in Muon", Lemma 2) analyses the same map with the Kimi /
Moonlight coefficients (Liu et al. 2025, arXiv:2502.16982).

Two algebraically identical forms are provided:

* "standard": three products per step on the (m, n) iterate, m <= n.
* "gram": within a segment of steps every iterate is X_k = Q_k X_s with Q_k a
  polynomial in the small Gram matrix R_s = X_s X_s^H (m x m). All
  polynomials in R_s commute, so Q_{k+1} = Z_k Q_k and R_{k+1} = Z_k^2 R_k with
  Z_k = a + b R_k + c R_k^2: only m x m products run inside a segment. This is
  the Gram Newton–Schulz reformulation (Zhang, Amsel, Chen and Dao,
  github.com/Dao-AILab/gram-newton-schulz). It costs fewer FLOPs once
  n >= 1.5 m (see `ns_flops`).

The Gram form restarts every `GRAM_SEGMENT_STEPS` steps: X_s = Q X_{s'} and a
fresh R_s = X_s X_s^H. Without restarts R_k carries the rounding of R_0, an
absolute error of about eps * ||X||^2 that the iteration scales up with the
small singular values it lifts (by a^2 per step), so small singular values
never gain relative accuracy; in float32 a single 5-step segment was 5-180x
less accurate than the standard form on rank-deficient and ill-conditioned
inputs. A fresh R_s has an error relative to the current, lifted spectrum
again, as the standard form's Gram matrix has at every step. With a narrower
`ns_dtype` see `_gram` for what else keeps bf16 accurate.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Coeffs = str | Sequence[float] | Sequence[Sequence[float]]

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
  (a / POLAR_EXPRESS_SAFETY, b / POLAR_EXPRESS_SAFETY**3, c / POLAR_EXPRESS_SAFETY**5)
  for a, b, c in _POLAR_EXPRESS_RAW
) + ((1.875, -1.25, 0.375),)

PRESETS = ("kimi", "dion", "polar_express")
METHODS = ("auto", "standard", "gram")
PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")

# Steps per Gram segment before a restart (see the module docstring). Two
# keep the float32 Gram form within 1.25x of the standard form's error on
# rank-deficient and cond-1e6 inputs for every preset (1.6-3.1x on spectra
# graded over [1e-2, 1] or [1e-3, 1]); segments of (3, 2) were 2.5x off on
# rank-deficient inputs for polar_express (BUILD_NOTES.md, issue 23).
GRAM_SEGMENT_STEPS = 2

# Gram form pays once the long side is this many times the short side (FLOP
# count of `ns_flops`: 5 steps are 12 m^2 n + 22 m^3 vs 20 m^2 n + 10 m^3, and
# (S - r)(4 m^2 n - 6 m^3) in favour of Gram for S steps in r segments).
GRAM_ASPECT_THRESHOLD = 1.5


def _preset_table(name: str):
  if name == "kimi":
    return (KIMI_COEFFS,)
  if name == "dion":
    return DION_COEFFS
  if name == "polar_express":
    return POLAR_EXPRESS_COEFFS
  raise ValueError(
    f"coeffs: unknown preset {name!r}; allowed: {', '.join(PRESETS)}"
    " or a tuple (a, b, c) or a per-step sequence of such tuples"
  )


def _check_steps(steps) -> int:
  if isinstance(steps, jax.core.Tracer):
    # The project's bad-input contract is a ValueError naming the argument.
    raise ValueError(  # noqa: TRY004
      "steps must be a static Python int; under optax.inject_hyperparams pass"
      " static_args=('steps',) or leave steps at its default None"
    )
  if (
    isinstance(steps, (np.ndarray, jax.Array))
    and steps.ndim == 0
    and jnp.issubdtype(steps.dtype, jnp.integer)
  ):
    steps = int(steps)
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
    raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
  return int(steps)


def resolve_coeffs(coeffs: Coeffs, steps=None) -> tuple[tuple[float, float, float], ...]:
  """Returns the per-step schedule ((a, b, c),) * steps for a preset or user value.

  A single (a, b, c) is used at every step. A table with fewer rows than
  `steps` repeats its last row (muon_jax's choice: optax.contrib instead runs
  exactly the table's rows and ignores `ns_steps`, so its "dion" with
  ns_steps=7 is its 5-step update; `muon_jax.compat` follows optax there). One
  with more rows is cut to its first `steps` rows only for "polar_express",
  whose leading steps are a valid shorter schedule, and is an error otherwise.
  `steps=None` means 5 for presets and (a, b, c), else the table's rows.

  Raises:
    ValueError naming `coeffs` or `steps` for unknown presets, steps <= 0,
    malformed tuples or a too-long table.
  """
  if isinstance(coeffs, str):
    table = _preset_table(coeffs)
    name = repr(coeffs)
  else:
    arr = np.asarray(coeffs, dtype=np.float64)
    if arr.shape == (3,):
      arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
      raise ValueError(
        f"coeffs must be a preset name, (a, b, c) or a sequence of"
        f" (a, b, c); got array of shape {np.shape(coeffs)}"
      )
    table = tuple(tuple(float(v) for v in row) for row in arr)
    name = "per-step coeffs schedule"
  if steps is None:
    steps = 5 if isinstance(coeffs, str) or len(table) == 1 else len(table)
  steps = _check_steps(steps)
  if len(table) > steps and not (isinstance(coeffs, str) and coeffs == "polar_express"):
    raise ValueError(
      f"coeffs: {name} has {len(table)} rows but steps={steps}; pass"
      f" steps >= {len(table)} (the last row repeats) or a shorter table"
    )
  return tuple(table[min(i, len(table) - 1)] for i in range(steps))


def use_gram(m: int, n: int, method: str = "auto", dtype=jnp.float32) -> bool:
  """Whether `newton_schulz` runs the Gram form on an (m, n) matrix."""
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if method != "auto":
    return method == "gram"
  short, long = min(m, n), max(m, n)
  # Low precision: the Gram form runs its m x m iteration in the float32
  # accumulation dtype (see `_gram`), and measured 1-2x the standard form's
  # bf16 error; the standard form is both faster and closer there.
  return long >= GRAM_ASPECT_THRESHOLD * short and jnp.finfo(dtype).bits >= 32


def gram_segments(steps: int) -> tuple[int, ...]:
  """Step counts of the Gram form's segments, e.g. (2, 2, 1) for 5 steps."""
  full, rest = divmod(steps, GRAM_SEGMENT_STEPS)
  return (GRAM_SEGMENT_STEPS,) * full + ((rest,) if rest else ())


def ns_flops(shape: Sequence[int], steps: int = 5, method: str = "auto") -> int:
  """Matmul FLOPs (2 per multiply-add) of one `newton_schulz` call on `shape`."""
  *batch, m, n = shape
  short, long = min(m, n), max(m, n)
  count = int(np.prod(batch)) if batch else 1
  if use_gram(m, n, method):
    # Per segment: R = X X^H and Q X (2 m^2 n each), and per step R^2, W R,
    # W (ZR), W Q, minus the first step's W Q and the last step's R update.
    segments = gram_segments(steps)
    small = sum(4 * length - 3 for length in segments)
    return count * (len(segments) * 2 * 2 * short * short * long + small * 2 * short**3)
  return count * steps * (2 * 2 * short * short * long + 2 * short**3)


def _matmul(a, b, acc_dtype):
  # Products run in the operands' dtype (bf16 on tensor cores) but accumulate
  # and return in acc_dtype, so the coefficients below are applied in f32.
  return jnp.matmul(a, b, preferred_element_type=acc_dtype)


def _hermitian(x):
  return jnp.swapaxes(x, -1, -2).conj()


def _standard(x_acc, coeffs_Sx3, gram0_acc, compute_dtype):
  acc_dtype = x_acc.dtype
  gram_acc = gram0_acc
  for k in range(coeffs_Sx3.shape[0]):
    a, b, c = coeffs_Sx3[k, 0], coeffs_Sx3[k, 1], coeffs_Sx3[k, 2]
    x = x_acc.astype(compute_dtype)
    if gram_acc is None:
      gram_acc = _matmul(x, _hermitian(x), acc_dtype)
    gram = gram_acc.astype(compute_dtype)
    poly_acc = b * gram_acc + c * _matmul(gram, gram, acc_dtype)
    x_acc = a * x_acc + _matmul(poly_acc.astype(compute_dtype), x, acc_dtype)
    gram_acc = None
  return x_acc


def _gram(x_acc, coeffs_Sx3, gram0_acc, compute_dtype):
  acc_dtype = x_acc.dtype
  # Rounded operands (e.g. bf16): Q is kept as alpha I + P with the scalar
  # alpha = prod(a) apart and applied as alpha X + P X, so X's rounding in its
  # small singular directions meets P (near 0 there), not Q (near alpha), just
  # as the standard form applies a X in acc_dtype; and the m x m iteration runs
  # in acc_dtype, since R rounded to bf16 loses every singular value below
  # ~0.06. Exact operands: Q itself (alpha X + P X would cancel alpha against
  # P on the large singular values).
  split = jnp.dtype(compute_dtype) != jnp.dtype(acc_dtype)
  long_mm = lambda p, q: _matmul(p.astype(compute_dtype), q.astype(compute_dtype), acc_dtype)
  small_mm = lambda p, q: _matmul(p, q, acc_dtype)
  eye = jnp.eye(x_acc.shape[-2], dtype=acc_dtype)
  x, r, start = x_acc, gram0_acc, 0
  for length in gram_segments(coeffs_Sx3.shape[0]):
    if r is None:
      r = long_mm(x, _hermitian(x))
    q, alpha = None, 1.0  # q: Q, or P when split
    for k in range(start, start + length):
      a, b, c = coeffs_Sx3[k, 0], coeffs_Sx3[k, 1], coeffs_Sx3[k, 2]
      w = b * r + c * small_mm(r, r)  # Z = a I + W
      if split:
        q = w if q is None else a * q + alpha * w + small_mm(w, q)
      else:
        q = a * eye + w if q is None else a * q + small_mm(w, q)
      alpha = alpha * a
      if k < start + length - 1:
        zr = a * r + small_mm(w, r)
        r = a * zr + small_mm(w, zr)
    x = alpha * x + long_mm(q, x) if split else long_mm(q, x)
    r, start = None, start + length
  return x


def _precondition(x_acc, preconditioning, eps):
  """Scales x so its singular values lie in (0, ~1]; returns (x, X X^H or None).

  "frobenius" and "spectral" divide by ||x|| + eps. "aol" rescales row i by
  1/sqrt(sum_j |X X^H|_ij) and "schatten" divides by the Schatten-4 norm
  sqrt(||X X^H||_F) (each floored at eps); both reuse X X^H as the first
  iteration's Gram matrix, as optax's first-step forms do.
  """
  if preconditioning == "frobenius":
    norm = jnp.sqrt(jnp.sum(jnp.square(jnp.abs(x_acc)), axis=(-2, -1), keepdims=True))
    return x_acc / (norm + eps), None
  if preconditioning == "spectral":
    norm = jnp.linalg.svd(x_acc, compute_uv=False)[..., :1, None]
    return x_acc / (norm + eps), None
  gram = jnp.matmul(x_acc, _hermitian(x_acc))
  if preconditioning == "aol":
    scale = jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.abs(gram), axis=-1), eps))[..., None]
    return x_acc * scale, gram * scale * jnp.swapaxes(scale, -1, -2)
  frob = jnp.sqrt(jnp.sum(jnp.square(jnp.abs(gram)), axis=(-2, -1), keepdims=True))
  scale = jax.lax.rsqrt(jnp.maximum(frob, eps))
  return x_acc * scale, gram * scale * scale


def _traced_steps(x_acc, coeffs_1x3, gram0_acc, compute_dtype, steps):
  # A step count known only at run time (optax's ns_steps as a hyperparameter):
  # standard form in a loop; the first step may reuse the preconditioner's Gram.
  first = _standard(x_acc, coeffs_1x3, gram0_acc, compute_dtype)
  x_acc = jnp.where(steps >= 1, first, x_acc)
  body = lambda _, xa: _standard(xa, coeffs_1x3, None, compute_dtype)
  return jax.lax.fori_loop(1, jnp.maximum(steps, 1), body, x_acc)


@functools.partial(jax.jit, static_argnames=("method", "ns_dtype", "preconditioning"))
def _newton_schulz(x, coeffs_Sx3, eps, traced_steps, *, method, ns_dtype, preconditioning):
  out_dtype = x.dtype
  m, n = x.shape[-2:]
  transposed = m > n
  if transposed:
    x = jnp.swapaxes(x, -1, -2)
  compute_dtype = jnp.dtype(ns_dtype) if ns_dtype is not None else x.dtype
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  # Coefficients stay in the real accumulation dtype: a bf16 copy of 3.4445
  # is 3.4375, a different polynomial.
  coeffs_Sx3 = coeffs_Sx3.astype(jnp.finfo(acc_dtype).dtype)
  x_acc, gram0_acc = _precondition(x.astype(acc_dtype), preconditioning, eps)
  if traced_steps is not None:
    x = _traced_steps(x_acc, coeffs_Sx3, gram0_acc, compute_dtype, traced_steps)
  elif use_gram(m, n, method, compute_dtype):
    x = _gram(x_acc, coeffs_Sx3, gram0_acc, compute_dtype)
  else:
    x = _standard(x_acc, coeffs_Sx3, gram0_acc, compute_dtype)
  if transposed:
    x = jnp.swapaxes(x, -1, -2)
  return x.astype(out_dtype)


def coefficient_table(coeffs, steps=None) -> jax.Array:
  """(steps, 3) coefficient array for `newton_schulz`; traced arrays allowed.

  Static values go through `resolve_coeffs`. A jax array of shape (3,) or
  (rows, 3), e.g. coefficients carried in an optimizer state, is used as is
  when rows == steps and repeats its last row when rows < steps.
  """
  if not isinstance(coeffs, jax.Array):
    # float64 under jax_enable_x64, float32 otherwise.
    return jnp.asarray(np.asarray(resolve_coeffs(coeffs, steps), np.float64))
  if coeffs.ndim == 1:
    coeffs = coeffs[None]
  if coeffs.ndim != 2 or coeffs.shape[-1] != 3:
    raise ValueError(f"coeffs must have shape (3,) or (rows, 3), got {coeffs.shape}")
  rows = coeffs.shape[0]
  steps = _check_steps(5 if steps is None and rows == 1 else rows if steps is None else steps)
  if rows > steps:
    raise ValueError(f"coeffs has {rows} rows but steps={steps}; pass steps >= {rows}")
  if rows < steps:
    coeffs = jnp.concatenate([coeffs, jnp.repeat(coeffs[-1:], steps - rows, axis=0)])
  return coeffs


def orthogonalize(
  x: jax.Array,
  *,
  coeffs: Coeffs = "kimi",
  steps: int | None = None,
  eps: float = 1e-7,
  ns_dtype=None,
  method: str = "auto",
  preconditioning: str = "frobenius",
) -> jax.Array:
  """Approximate polar factor of every matrix in `x` (shape (..., m, n)).

  Real and complex inputs: products use conjugate transposes, so a complex
  matrix maps to (an approximation of) its unitary polar factor.

  Args:
    x: floating or complex array of shape (..., m, n); leading dims are
      independent batch dims.
    coeffs: preset ("kimi", "dion", "polar_express"), one (a, b, c) tuple used
      at every step, a per-step table (its last row repeats when shorter than
      `steps`), or a jax array of shape (3,) / (rows, 3) (may be traced).
    steps: number of quintic iterations (>= 1); None: 5, or the table's
      number of rows. A traced integer (e.g. a hyperparameter injected by
      optax.inject_hyperparams) needs a single (a, b, c) and runs the
      standard form in a loop.
    eps: for "frobenius"/"spectral", added to the norm before dividing; for
      "aol"/"schatten", the floor of the rescaling denominators.
    ns_dtype: dtype the matmuls run in (e.g. jnp.bfloat16); they accumulate in
      float32 (complex64 for complex x) and the coefficients are applied there.
      None: x's dtype. The result is returned in x's dtype.
    method: "standard", "gram" or "auto" (Gram form for f32+ matrices with
      aspect ratio >= 1.5, standard otherwise). The Gram form restarts every
      `GRAM_SEGMENT_STEPS` steps and, with a narrower `ns_dtype`, runs its
      m x m products in the accumulation dtype.
    preconditioning: how x is scaled before the iteration: "frobenius"
      (x / (||x||_F + eps), Muon's), "spectral" (x / (||x||_2 + eps), via an
      SVD), "aol" (Turbo-Muon's row scaling, Boissin et al. 2025) or
      "schatten" (x / ||x||_S4, Grishina et al. 2025).

  Returns:
    Array of x's shape and dtype. A zero matrix maps to zeros; a NaN or inf
    in a matrix makes that matrix's output non-finite (never masked).

  References:
    Jordan et al., `Muon <https://kellerjordan.github.io/posts/muon/>`_, 2024.
    Boissin et al., `Turbo-Muon <https://arxiv.org/abs/2512.04632>`_, 2025.
    Grishina et al., `Accelerating Newton-Schulz Iteration for
    Orthogonalization via Chebyshev-type Polynomials
    <https://arxiv.org/abs/2506.10935>`_, 2025.
  """
  if jnp.ndim(x) < 2:
    raise ValueError(
      f"x: newton_schulz needs an array of shape (..., m, n), got shape {jnp.shape(x)}"
    )
  if not jnp.issubdtype(x.dtype, jnp.inexact):
    raise ValueError(f"x: dtype must be floating or complex, got {x.dtype}")
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if (
    ns_dtype is not None
    and jnp.issubdtype(x.dtype, jnp.complexfloating)
    and not jnp.issubdtype(ns_dtype, jnp.complexfloating)
  ):
    raise ValueError(
      f"ns_dtype: {jnp.dtype(ns_dtype).name} would drop the imaginary part of"
      f" {x.dtype} input; use None or a complex dtype"
    )
  if preconditioning not in PRECONDITIONINGS:
    raise ValueError(f"preconditioning must be one of {PRECONDITIONINGS}, got {preconditioning!r}")
  traced_steps = None
  if isinstance(steps, jax.core.Tracer):
    coeffs_Sx3 = coefficient_table(coeffs, 1)
    traced_steps, steps = steps, 1
  else:
    coeffs_Sx3 = coefficient_table(coeffs, steps)
  ns_dtype = None if ns_dtype is None else jnp.dtype(ns_dtype).name
  return _newton_schulz(
    x,
    coeffs_Sx3,
    eps,
    traced_steps,
    method=method,
    ns_dtype=ns_dtype,
    preconditioning=preconditioning,
  )


def polar_svd(x: jax.Array) -> jax.Array:
  """Exact polar factor U V^H of every matrix in `x` (shape (..., m, n)) via SVD."""
  u, _, vh = jnp.linalg.svd(x, full_matrices=False)
  return u @ vh
