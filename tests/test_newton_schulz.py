"""Newton–Schulz core against the exact SVD polar factor and scalar polynomials."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muon_jax import newton_schulz as ns


def _band(coeffs, steps, low):
  """Exact range of the composed scalar map on [low, 1] (dense grid)."""
  s = np.linspace(low, 1.0, 200_001)
  for a, b, c in ns.resolve_coeffs(coeffs, steps):
    s = a * s + b * s**3 + c * s**5
  return s.min(), s.max()


def _well_conditioned(key, shape, cond=4.0):
  *batch, m, n = shape
  k = min(m, n)
  ku, kv = jax.random.split(key)
  u = jnp.linalg.qr(jax.random.normal(ku, (*batch, m, k)))[0]
  v = jnp.linalg.qr(jax.random.normal(kv, (*batch, n, k)))[0]
  s = jnp.geomspace(1.0, 1.0 / cond, k)
  return (u * s) @ jnp.swapaxes(v, -1, -2), s


@pytest.mark.parametrize("preset", ["kimi", "dion", "polar_express"])
@pytest.mark.parametrize("shape", [(24, 64), (64, 24), (40, 40), (3, 16, 48)])
def test_singular_values_in_band_and_close_to_polar(preset, shape):
  x, s = _well_conditioned(jax.random.PRNGKey(1), shape)
  low = float(s[-1] / jnp.linalg.norm(s))  # smallest normalized singular value
  lo, hi = _band(preset, 5, low)
  y = ns.orthogonalize(x, coeffs=preset)
  assert y.shape == x.shape and y.dtype == x.dtype
  sv = jnp.linalg.svd(y, compute_uv=False)
  assert float(sv.min()) >= lo - 2e-3 and float(sv.max()) <= hi + 2e-3
  # Same singular vectors as the polar factor: error bounded by the band.
  err = jnp.linalg.norm(y - ns.polar_svd(x), ord=2, axis=(-2, -1))
  assert float(err.max()) <= max(1 - lo, hi - 1) + 2e-3


def test_polar_express_much_tighter_than_kimi():
  # Worst-case distance of the scalar map from 1 on [0.05, 1] (sup-norm error
  # vs the polar factor), and the measured spectral error on a real matrix.
  worst = lambda c: max(abs(v - 1.0) for v in _band(c, 5, 0.05))
  assert worst("polar_express") < 0.5 * worst("kimi")
  x, _ = _well_conditioned(jax.random.PRNGKey(2), (32, 96), cond=3.0)
  polar = ns.polar_svd(x)
  err = lambda c: float(jnp.linalg.norm(ns.orthogonalize(x, coeffs=c) - polar, ord=2))
  assert err("polar_express") < 0.5 * err("kimi")


@pytest.mark.parametrize("shape", [(16, 64), (64, 16), (8, 24, 80)])
def test_gram_form_equals_standard(shape):
  x = jax.random.normal(jax.random.PRNGKey(3), shape)
  for preset in ("kimi", "polar_express"):
    g = ns.orthogonalize(x, coeffs=preset, method="gram")
    s = ns.orthogonalize(x, coeffs=preset, method="standard")
    np.testing.assert_allclose(g, s, atol=2e-5 * float(jnp.abs(s).max()))


def test_standard_matches_numpy_reference():
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (12, 20)), np.float64)
  ref = x / (np.linalg.norm(x) + 1e-7)
  for a, b, c in ns.resolve_coeffs("kimi", 5):
    g = ref @ ref.T
    ref = a * ref + (b * g + c * g @ g) @ ref
  np.testing.assert_allclose(
    ns.orthogonalize(jnp.asarray(x, jnp.float32), method="standard"), ref, atol=1e-5
  )


def _np_newton_schulz(x, rows, steps, preconditioning="frobenius", eps=1e-7):
  """Float64 NumPy NS with conjugate transposes; the table's last row repeats."""
  x = np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64)
  transposed = x.shape[0] > x.shape[1]
  x = x.T if transposed else x
  gram = x @ x.conj().T
  if preconditioning == "frobenius":
    x = x / (np.linalg.norm(x) + eps)
  elif preconditioning == "spectral":
    x = x / (np.linalg.norm(x, 2) + eps)
  elif preconditioning == "aol":
    x = x / np.sqrt(np.maximum(np.abs(gram).sum(axis=1), eps))[:, None]
  else:
    x = x / np.sqrt(max(np.linalg.norm(gram), eps))
  for k in range(steps):
    a, b, c = rows[min(k, len(rows) - 1)]
    g = x @ x.conj().T
    x = a * x + (b * g + c * g @ g) @ x
  return x.T if transposed else x


KIMI = (3.4445, -4.7750, 2.0315)


def test_bf16_matmuls_apply_coefficients_in_f32():
  # bf16 rounds 3.4445 to 3.4375: the rounded quintic is a different map.
  # Its distance from the exact one (f64) bounds from below what the old
  # bf16 path produced; ours must stay well inside it.
  rounded = tuple(float(jnp.asarray(v, jnp.bfloat16)) for v in KIMI)
  assert rounded == (3.4375, -4.78125, 2.03125)
  for seed in range(3):
    x = jax.random.normal(jax.random.PRNGKey(seed), (32, 64))
    exact = _np_newton_schulz(x, (KIMI,), 5)
    poly_gap = np.linalg.norm(_np_newton_schulz(x, (rounded,), 5) - exact) / np.linalg.norm(exact)
    y = ns.orthogonalize(x, ns_dtype=jnp.bfloat16, method="standard")
    assert y.dtype == jnp.float32
    f32 = ns.orthogonalize(x, method="standard")
    err = float(jnp.linalg.norm(y - f32) / jnp.linalg.norm(f32))
    # The bf16 path with bf16 coefficients measured 0.061-0.065 here.
    assert err < 0.045 and err < 1.5 * poly_gap, (seed, err, poly_gap)
    sv = jnp.linalg.svd(y, compute_uv=False)
    assert 0.5 < float(sv.min()) and float(sv.max()) < 1.25


@pytest.mark.parametrize("shape", [(12, 20), (20, 12)])
@pytest.mark.parametrize("method", ["standard", "gram"])
def test_complex_matches_numpy_and_svd_polar(shape, method):
  kr, ki = jax.random.split(jax.random.PRNGKey(7))
  x = (jax.random.normal(kr, shape) + 1j * jax.random.normal(ki, shape)).astype(jnp.complex64)
  y = ns.orthogonalize(x, coeffs="polar_express", steps=10, method=method)
  assert y.dtype == jnp.complex64 and bool(jnp.all(jnp.isfinite(y)))
  ref = _np_newton_schulz(x, ns.resolve_coeffs("polar_express", 10), 10)
  np.testing.assert_allclose(y, ref, atol=5e-5)
  # Ten polar-express steps converge on this matrix: the unitary polar factor.
  np.testing.assert_allclose(y, np.asarray(ns.polar_svd(x)), atol=5e-3)


@pytest.mark.parametrize("preconditioning", ns.PRECONDITIONINGS)
@pytest.mark.parametrize("shape", [(16, 40), (40, 16), (24, 24)])
def test_preconditionings_match_numpy(preconditioning, shape):
  x = jax.random.normal(jax.random.PRNGKey(8), shape)
  y = ns.orthogonalize(x, coeffs="dion", preconditioning=preconditioning, method="standard")
  ref = _np_newton_schulz(x, ns.DION_COEFFS, 5, preconditioning)
  np.testing.assert_allclose(y, ref, atol=2e-5)


def test_table_shorter_than_steps_repeats_last_row():
  x = jax.random.normal(jax.random.PRNGKey(9), (10, 14))
  rows = ((3.0, -3.2, 1.2), (2.0, -1.5, 0.5))
  y = ns.orthogonalize(x, coeffs=rows, steps=6)
  np.testing.assert_allclose(y, _np_newton_schulz(x, rows, 6), atol=1e-5)
  traced = jax.jit(lambda c: ns.orthogonalize(x, coeffs=c, steps=6))(jnp.asarray(rows))
  np.testing.assert_allclose(traced, y, atol=1e-6)


def test_nan_is_never_masked():
  x = jax.random.normal(jax.random.PRNGKey(10), (3, 8, 12)).at[1, 2, 3].set(jnp.nan)
  for method in ("standard", "gram"):
    y = ns.orthogonalize(x, method=method)
    assert bool(jnp.all(jnp.isnan(y[1]))), method
    assert bool(jnp.all(jnp.isfinite(y[0]))) and bool(jnp.all(jnp.isfinite(y[2])))


def test_zero_matrix_gives_zeros_without_nan():
  for method in ("standard", "gram"):
    y = ns.orthogonalize(jnp.zeros((8, 32)), method=method)
    assert bool(jnp.all(y == 0))


def test_traceable_under_jit_vmap_grad():
  x = jax.random.normal(jax.random.PRNGKey(6), (5, 8, 12))
  f = lambda m: ns.orthogonalize(m)
  np.testing.assert_allclose(jax.jit(jax.vmap(f))(x), f(x), atol=1e-5)
  g = jax.grad(lambda m: jnp.sum(f(m) ** 2))(x[0])
  assert g.shape == (8, 12) and bool(jnp.all(jnp.isfinite(g)))


def test_schedules_and_validation():
  assert len(ns.resolve_coeffs("polar_express", 9)) == 9
  assert ns.resolve_coeffs("polar_express", 9)[-1] == (1.875, -1.25, 0.375)
  assert ns.resolve_coeffs((1.0, 2.0, 3.0), 2) == ((1.0, 2.0, 3.0),) * 2
  assert ns.resolve_coeffs([(1, 2, 3), (4, 5, 6)], 3) == ((1, 2, 3), (4, 5, 6), (4, 5, 6))
  assert ns.resolve_coeffs("dion", 7)[5:] == (ns.DION_COEFFS[-1],) * 2
  with pytest.raises(ValueError, match="coeffs: per-step coeffs schedule has 3 rows but steps=2"):
    ns.resolve_coeffs([(1, 2, 3), (4, 5, 6), (7, 8, 9)], 2)
  with pytest.raises(ValueError, match="coeffs: 'dion' has 5 rows but steps=4"):
    ns.resolve_coeffs("dion", 4)
  with pytest.raises(ValueError, match="coeffs: unknown preset"):
    ns.resolve_coeffs("nope", 5)
  with pytest.raises(ValueError, match="x: dtype must be floating or complex"):
    ns.orthogonalize(jnp.ones((3, 3), jnp.int32))
  with pytest.raises(ValueError, match="ns_dtype: bfloat16 would drop the imaginary part"):
    ns.orthogonalize(jnp.ones((3, 3), jnp.complex64), ns_dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match="preconditioning must be one of"):
    ns.orthogonalize(jnp.ones((3, 3)), preconditioning="newton")
  with pytest.raises(ValueError, match="steps must be an integer >= 1"):
    ns.orthogonalize(jnp.ones((3, 3)), steps=0)
  with pytest.raises(
    ValueError, match=r"x: newton_schulz needs an array of shape \(\.\.\., m, n\)"
  ):
    ns.orthogonalize(jnp.ones(3))


def test_ns_flops_gram_cheaper_only_for_rectangular():
  # 5 steps in segments (2, 2, 1): 12 m^2 n + 22 m^3 against 20 m^2 n + 10 m^3.
  assert ns.gram_segments(5) == (2, 2, 1) and ns.gram_segments(4) == (2, 2)
  m, n = 768, 3072
  assert ns.ns_flops((m, n), method="gram") == 2 * (6 * m * m * n + 11 * m**3)
  assert ns.ns_flops((m, n), method="gram") < 0.8 * ns.ns_flops((m, n), method="standard")
  assert ns.ns_flops((m, m), method="gram") > ns.ns_flops((m, m), method="standard")
  assert not ns.use_gram(768, 768)
  assert ns.use_gram(768, 3072) and ns.use_gram(3072, 768)
  assert not ns.use_gram(768, 3072, dtype=jnp.bfloat16)


# Accuracy on the inputs Muon meets: gradients are often rank-deficient (batch
# < width) or have a wide spectrum. Every form is measured against the same
# iteration in float64 (not the polar factor, which NS only approximates).


def _spectrum(m, n, singular_values, seed):
  rng = np.random.default_rng(seed)
  k = min(m, n)
  u = np.linalg.qr(rng.standard_normal((m, k)))[0]
  v = np.linalg.qr(rng.standard_normal((n, k)))[0]
  return ((u * singular_values) @ v.T).astype(np.float32)


def _low_rank(m, n, rank, seed):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))).astype(np.float32)


HARD_INPUTS = {
  "rank8_32x10": lambda: _low_rank(32, 10, 8, 0),
  "rank20_64x256": lambda: _low_rank(64, 256, 20, 1),
  "cond1e6_48x160": lambda: _spectrum(48, 160, np.geomspace(1, 1e-6, 48), 2),
  "cond1e6_160x48": lambda: _spectrum(160, 48, np.geomspace(1, 1e-6, 48), 3),
  "cond1e6_64x64": lambda: _spectrum(64, 64, np.geomspace(1, 1e-6, 64), 4),
  "tiny_norm_24x80": lambda: 1e-20 * _low_rank(24, 80, 24, 5),
}
PRESET_STEPS = {"kimi": 5, "dion": 5, "polar_express": 5, "polar_express_8": 8}


def _rows(preset):
  steps = PRESET_STEPS[preset]
  return ns.resolve_coeffs(preset.removesuffix("_8"), steps)


def _rel_err(y, ref):
  return float(np.linalg.norm(np.asarray(y, np.float64) - ref) / np.linalg.norm(ref))


def _pytorch_muon_bf16(x, rows, eps=1e-7):
  """Keller Jordan's Muon NS as PyTorch runs it in bf16, emulated with JAX.

  X = G / (||G|| + eps) in bf16, transposed if tall, then per step
  A = X X^T, B = b A + c A A, X = a X + B X with every tensor rounded to bf16
  (matmuls accumulate in f32, elementwise ops compute in f32 with the Python
  float coefficient, as torch's bf16 kernels do).
  """
  bf16, f32 = jnp.bfloat16, jnp.float32
  mm = lambda p, q: jnp.matmul(p, q, preferred_element_type=f32).astype(bf16)
  lin = lambda s, t: (s * t.astype(f32)).astype(bf16)
  add = lambda p, q: (p.astype(f32) + q.astype(f32)).astype(bf16)
  g = jnp.asarray(x, f32).astype(bf16)
  tall = g.shape[0] > g.shape[1]
  g = g.T if tall else g
  norm = jnp.linalg.norm(g.astype(f32)).astype(bf16).astype(f32)
  g = (g.astype(f32) / (norm + eps)).astype(bf16)
  for a, b, c in rows:
    gram = mm(g, g.T)
    poly = add(lin(b, gram), lin(c, mm(gram, gram)))
    g = add(lin(a, g), mm(poly, g))
  g = np.asarray(g.astype(f32))
  return g.T if tall else g


@pytest.mark.parametrize("preset", list(PRESET_STEPS))
@pytest.mark.parametrize("name", list(HARD_INPUTS))
def test_gram_f32_within_2x_of_standard_on_hard_inputs(preset, name):
  x, rows = HARD_INPUTS[name](), _rows(preset)
  ref = _np_newton_schulz(x, rows, len(rows))
  err = {
    method: _rel_err(ns.orthogonalize(jnp.asarray(x), coeffs=rows, method=method), ref)
    for method in ("standard", "gram", "auto")
  }
  # Single-segment Gram (no restarts) measured 5.0e-5 on rank8_32x10 and
  # 2.2e-4 on cond1e6_48x160 (kimi): 14x and 35x the standard form.
  assert err["standard"] < 2e-4, err
  assert err["gram"] <= 2 * err["standard"], err
  assert err["auto"] <= 2 * err["standard"], err


@pytest.mark.parametrize("preset", ["kimi", "polar_express"])
@pytest.mark.parametrize("cond", [1e2, 1e3])
def test_gram_f32_close_to_standard_on_graded_spectra(preset, cond):
  # A spectrum spread over [1/cond, 1] is where lifting small singular values
  # costs the Gram form most: 1.6-3.1x the standard form's error with
  # restarts every 2 steps, 18-180x without.
  x, rows = _spectrum(64, 200, np.geomspace(1, 1 / cond, 64), 6), _rows(preset)
  ref = _np_newton_schulz(x, rows, len(rows))
  std = _rel_err(ns.orthogonalize(jnp.asarray(x), coeffs=rows, method="standard"), ref)
  gram = _rel_err(ns.orthogonalize(jnp.asarray(x), coeffs=rows, method="gram"), ref)
  assert gram <= 4 * std, (gram, std)


@pytest.mark.parametrize("preset", list(PRESET_STEPS))
@pytest.mark.parametrize("name", [*HARD_INPUTS, "gaussian_128x512"])
def test_bf16_within_2x_of_pytorch_muon_bf16(preset, name):
  if name == "gaussian_128x512":
    x = np.random.default_rng(7).standard_normal((128, 512)).astype(np.float32)
  else:
    x = HARD_INPUTS[name]()
  rows = _rows(preset)
  ref = _np_newton_schulz(x, rows, len(rows))
  torch_err = _rel_err(_pytorch_muon_bf16(x, rows), ref)
  for method in ("standard", "gram", "auto"):
    y = ns.orthogonalize(jnp.asarray(x), coeffs=rows, method=method, ns_dtype=jnp.bfloat16)
    err = _rel_err(y, ref)
    # The Gram form before restarts and f32 m x m products: 5.8 to 3e8 here.
    assert err <= 2 * torch_err, (method, err, torch_err)
