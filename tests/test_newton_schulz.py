"""Newton–Schulz core against the exact SVD polar factor and scalar polynomials."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import importlib

ns = importlib.import_module("muon_jax.newton_schulz")


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
  y = ns.newton_schulz(x, coeffs=preset)
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
  err = lambda c: float(jnp.linalg.norm(ns.newton_schulz(x, coeffs=c) - polar, ord=2))
  assert err("polar_express") < 0.5 * err("kimi")


@pytest.mark.parametrize("shape", [(16, 64), (64, 16), (8, 24, 80)])
def test_gram_form_equals_standard(shape):
  x = jax.random.normal(jax.random.PRNGKey(3), shape)
  for preset in ("kimi", "polar_express"):
    g = ns.newton_schulz(x, coeffs=preset, method="gram")
    s = ns.newton_schulz(x, coeffs=preset, method="standard")
    np.testing.assert_allclose(g, s, atol=2e-5 * float(jnp.abs(s).max()))


def test_standard_matches_numpy_reference():
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (12, 20)), np.float64)
  ref = x / (np.linalg.norm(x) + 1e-7)
  for a, b, c in ns.resolve_coeffs("kimi", 5):
    g = ref @ ref.T
    ref = a * ref + (b * g + c * g @ g) @ ref
  np.testing.assert_allclose(ns.newton_schulz(jnp.asarray(x, jnp.float32), method="standard"),
                             ref, atol=1e-5)


def test_bf16_ns_dtype_returns_input_dtype_and_is_close():
  x = jax.random.normal(jax.random.PRNGKey(5), (32, 64))
  y = ns.newton_schulz(x, ns_dtype=jnp.bfloat16)
  assert y.dtype == jnp.float32
  ref = ns.newton_schulz(x)
  # bf16 keeps ~3 significant digits per product; 5 steps of 3 products
  # leave a few percent, and the spectrum stays in the kimi band.
  assert float(jnp.linalg.norm(y - ref) / jnp.linalg.norm(ref)) < 0.1
  sv = jnp.linalg.svd(y, compute_uv=False)
  assert 0.5 < float(sv.min()) and float(sv.max()) < 1.25


def test_zero_matrix_gives_zeros_without_nan():
  for method in ("standard", "gram"):
    y = ns.newton_schulz(jnp.zeros((8, 32)), method=method)
    assert bool(jnp.all(y == 0))


def test_traceable_under_jit_vmap_grad():
  x = jax.random.normal(jax.random.PRNGKey(6), (5, 8, 12))
  f = lambda m: ns.newton_schulz(m)
  np.testing.assert_allclose(jax.jit(jax.vmap(f))(x), f(x), atol=1e-5)
  g = jax.grad(lambda m: jnp.sum(f(m) ** 2))(x[0])
  assert g.shape == (8, 12) and bool(jnp.all(jnp.isfinite(g)))


def test_schedules_and_validation():
  assert len(ns.resolve_coeffs("polar_express", 9)) == 9
  assert ns.resolve_coeffs("polar_express", 9)[-1] == (1.875, -1.25, 0.375)
  assert ns.resolve_coeffs((1.0, 2.0, 3.0), 2) == ((1.0, 2.0, 3.0),) * 2
  with pytest.raises(ValueError, match="per-step coeffs schedule has 2 entries but steps=3"):
    ns.resolve_coeffs([(1, 2, 3), (4, 5, 6)], 3)
  with pytest.raises(ValueError, match="'dion' is a 5-step schedule"):
    ns.resolve_coeffs("dion", 4)
  with pytest.raises(ValueError, match="unknown coeffs preset"):
    ns.resolve_coeffs("nope", 5)
  with pytest.raises(ValueError, match="steps must be an integer >= 1"):
    ns.newton_schulz(jnp.ones((3, 3)), steps=0)
  with pytest.raises(ValueError, match=r"shape \(\.\.\., m, n\)"):
    ns.newton_schulz(jnp.ones(3))


def test_ns_flops_gram_cheaper_only_for_rectangular():
  assert ns.ns_flops((768, 3072), method="gram") < 0.6 * ns.ns_flops((768, 3072), method="standard")
  assert not ns.use_gram(768, 768)
  assert ns.use_gram(768, 3072) and ns.use_gram(3072, 768)
  assert not ns.use_gram(768, 3072, dtype=jnp.bfloat16)
