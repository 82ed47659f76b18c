"""Saddle simulator: noise model vs its covariance, metrics, grid == per-cell loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from muon_jax import metrics
from muon_jax import saddle as sd


def _draws(cfg, kappa, count, seed=0, geometry_seed=0):
  geom = sd.make_geometry(cfg, geometry_seed)
  keys = jax.random.split(jax.random.key(seed), count)
  noise = jax.vmap(lambda k: sd.sample_noise(k, geom, kappa, cfg))(keys)
  return geom, np.asarray(noise, np.float64)


@pytest.mark.parametrize("signal", ["aligned", "incoherent"])
@pytest.mark.parametrize("noise", ["standard", "isotropic"])
def test_noise_covariance_is_sigma2_identity_plus_kappa_spike(signal, noise):
  n, kappa, sigma, count = 3, 9.0, 2.0, 60_000
  cfg = sd.SaddleConfig(n=n, signal=signal, noise=noise, sigma=sigma)
  geom, x = _draws(cfg, kappa, count)
  x = x.reshape(count, n * n)
  cov = x.T @ x / count
  s = np.outer(np.asarray(geom.u), np.asarray(geom.v)).ravel()
  if signal == "aligned":
    np.testing.assert_allclose(s, np.eye(n * n)[0])  # S = E_11, App 11.1.
  expected = sigma**2 * (np.eye(n * n) + (kappa - 1) * np.outer(s, s))
  np.testing.assert_allclose(cov, expected, atol=0.06 * sigma**2 * kappa)
  # Recover sigma and kappa: variance along S and mean variance orthogonal to it.
  kappa_hat_sigma2 = s @ cov @ s
  perp = np.eye(n * n) - np.outer(s, s)
  sigma2_hat = np.trace(perp @ cov @ perp) / (n * n - 1)
  assert abs(sigma2_hat / sigma**2 - 1) < 0.02
  assert abs(kappa_hat_sigma2 / sigma2_hat / kappa - 1) < 0.03
  assert np.abs(x.mean(0)).max() < 0.05 * sigma * np.sqrt(kappa)


def test_aligned_standard_noise_is_eq7_hadamard_form():
  # App 11.1 eq. (7): N = sqrt(Sigma) ⊙ Z with Sigma_ij = sigma^2, Sigma_11 = kappa sigma^2,
  # using the same standard-normal Z the simulator draws.
  cfg = sd.SaddleConfig(n=5, sigma=1.5)
  geom = sd.make_geometry(cfg, 0)
  key = jax.random.key(3)
  z = np.asarray(sd.unit_draws(key, cfg))
  sigma2 = np.full((5, 5), 1.5**2)
  sigma2[0, 0] *= 7.0
  np.testing.assert_allclose(sd.sample_noise(key, geom, 7.0, cfg), np.sqrt(sigma2) * z, rtol=1e-6)


def test_isotropic_bulk_lies_on_sphere_of_radius_n():
  cfg = sd.SaddleConfig(n=7, noise="isotropic")
  x = jax.vmap(lambda k: sd.unit_draws(k, cfg))(jax.random.split(jax.random.key(0), 10))
  np.testing.assert_allclose(jnp.linalg.norm(x, axis=(1, 2)), 7.0, rtol=1e-5)


def test_heavy_tail_has_student_t_tail_and_power_law_columns():
  scipy_stats = pytest.importorskip("scipy.stats")
  n, count, nu = 8, 15_000, 3
  cfg = sd.SaddleConfig(n=n, noise="heavy_tail", tail_df=nu, tail_exponent=1.0)
  x = np.asarray(jax.vmap(lambda k: sd.unit_draws(k, cfg))(
      jax.random.split(jax.random.key(1), count)), np.float64).ravel()
  # Unit-variance t_3: P(|x| > a) = 2 sf_t3(a sqrt(3)); a Gaussian would give 6e-5 at a = 4.
  for a in (1.0, 2.0, 4.0):
    expected = 2 * scipy_stats.t.sf(a * np.sqrt(nu / (nu - 2)), nu)
    observed = np.mean(np.abs(x) > a)
    assert abs(observed / expected - 1) < 0.1, (a, observed, expected)
  assert abs(np.var(x) - 1) < 0.15  # finite variance 1 (heavy 4th moment: loose).
  # Column profile: median |N_ij| scales as sqrt(j^-1 / mean), rows 2..n (row 1 holds S).
  geom, noise = _draws(cfg, 1.0, 8_000)
  med = np.median(np.abs(noise[:, 1:, :]), axis=(0, 1))
  q = np.arange(1, n + 1) ** -1.0
  np.testing.assert_allclose(med / med[0], np.sqrt(q / q[0]), rtol=0.05)
  np.testing.assert_allclose(np.asarray(geom.col_var).mean(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("signal", ["aligned", "incoherent"])
def test_drift_points_away_from_the_saddle(signal):
  lam, mu, w0 = 0.3, 0.2, 0.5
  cfg = sd.SaddleConfig(n=4, signal=signal, bulk_curvature=mu)
  geom = sd.make_geometry(cfg, 0)
  s = jnp.outer(geom.u, geom.v)
  other = jnp.ones((4, 4)) - sd.project(geom, jnp.ones((4, 4))) * s  # orthogonal to S.
  w = w0 * s + other
  g = sd.expected_gradient(w, geom, lam, cfg)
  np.testing.assert_allclose(g, -lam * w0 * s + mu * other, atol=1e-6)
  # Stochastic mean matches, and a noiseless descent step grows |<S, W>| by (1 + lr lam).
  keys = jax.random.split(jax.random.key(0), 20_000)
  mean = jax.vmap(lambda k: sd.stochastic_gradient(k, w, geom, lam, 4.0, cfg))(keys).mean(0)
  np.testing.assert_allclose(mean, g, atol=0.05)
  quiet = sd.SaddleConfig(n=4, signal=signal, sigma=0.0)
  g0 = sd.stochastic_gradient(keys[0], w0 * s, geom, lam, 4.0, quiet)
  np.testing.assert_allclose(sd.project(geom, w0 * s - 0.1 * g0), w0 * (1 + 0.1 * lam), rtol=1e-6)


def test_update_metrics_first_crossing_and_censoring():
  rng = np.random.default_rng(0)
  steps = 50
  values = np.abs(np.cumsum(rng.normal(size=(3, steps)), axis=1)) * np.array([[0.3], [0.2], [0.01]])
  thresholds = jnp.array([1.0, 1.5, 1.0])  # the third never crosses: censored.
  tau, hit = jnp.full((3,), steps, jnp.int32), jnp.zeros((3,), bool)
  for t in range(steps):
    tau, hit = sd.update_metrics(tau, hit, t, jnp.asarray(values[:, t], jnp.float32), thresholds,
                                 jnp.ones(3, bool))
  idx, crossed = metrics.first_crossing(values, np.asarray(thresholds)[:, None], axis=1)
  np.testing.assert_array_equal(hit, crossed)
  np.testing.assert_array_equal(tau, np.where(crossed, np.asarray(idx) + 1, steps))
  assert not bool(hit[2]) and int(tau[2]) == steps
  # Not tracked -> never recorded, even when the value crosses.
  tau2, hit2 = sd.update_metrics(jnp.full((3,), steps, jnp.int32), jnp.zeros(3, bool), 4,
                                 jnp.full((3,), 9.0), thresholds, jnp.array([True, False, True]))
  np.testing.assert_array_equal(tau2, [5, steps, 5])
  np.testing.assert_array_equal(hit2, [True, False, True])


def test_top_singular_pair_matches_svd():
  rng = np.random.default_rng(1)
  m = rng.normal(size=(12, 12)) + 6 * np.outer(rng.normal(size=12), rng.normal(size=12)) / 12
  u, _, vt = np.linalg.svd(m)
  u1, v1 = sd.top_singular_pair(jnp.asarray(m, jnp.float32), jnp.ones(12) / np.sqrt(12), 60)
  assert abs(abs(float(u1 @ u[:, 0])) - 1) < 1e-4
  assert abs(abs(float(v1 @ vt[0])) - 1) < 1e-4


def test_find_momentum_in_optax_states():
  w = jnp.ones((3, 3))
  for name, field in (("muon", "mu"), ("adamw", "mu")):
    opt = sd.make_optimizer(name)(0.1)
    _, state = opt.update(2 * w, opt.init(w), w)
    mom = sd.find_momentum(state, w.shape)
    assert mom is not None and float(jnp.abs(mom).sum()) > 0
  opt = optax.sgd(0.1, momentum=0.9)
  _, state = opt.update(w, opt.init(w), w)
  np.testing.assert_allclose(sd.find_momentum(state, w.shape), w)
  assert sd.find_momentum(optax.sgd(0.1).init(w), w.shape) is None


def _lion_chain(lr):  # an arbitrary user transform (chain) with a learning rate
  return optax.chain(optax.clip_by_global_norm(10.0), optax.lion(lr, b1=0.9, b2=0.99))


@pytest.mark.parametrize("name", ["muon", "adamw", "lion_chain"])
def test_batched_grid_equals_per_cell_loop(name):
  fn = _lion_chain if name == "lion_chain" else sd.make_optimizer(name)
  lr = {"muon": [0.05, 0.2], "adamw": [0.02, 0.1], "lion_chain": [0.02]}[name]
  cfg = sd.SaddleConfig(n=6, steps=40, chunk=16, radius=0.5, signal="incoherent")
  grid = sd.make_grid([0.5, 0.05], [1.0, 50.0], lr, [0, 3])
  batched = sd.run_grid(fn, cfg, grid, seed=7)
  loop = sd.run_cell_loop(fn, cfg, grid, seed=7)
  for k in ("tau_esc", "tau_esc_frob", "tau_lock", "escaped", "escaped_frob", "locked"):
    np.testing.assert_array_equal(batched[k], loop[k], err_msg=k)
  np.testing.assert_allclose(batched["w_final"], loop["w_final"], atol=1e-6)
  # The grid is not trivial: some cells escape, some do not, lock happens somewhere.
  assert batched["escaped_frob"].any() and not batched["escaped"].all()


def test_trace_agrees_with_metrics_and_freezes_after_escape():
  cfg = sd.SaddleConfig(n=8, steps=120, chunk=32, radius=0.6)
  grid = sd.make_grid([0.5], [1.0, 100.0], [0.05], [0, 1, 2])
  out = sd.run_grid(sd.make_optimizer("muon"), cfg, grid, trace=True)
  tr = out["trace"]
  assert tr.shape == (6, 120, 2) and np.isfinite(tr).all()
  for col, crit, flag in ((0, "tau_esc", "escaped"), (1, "tau_esc_frob", "escaped_frob")):
    idx, crossed = metrics.first_crossing(tr[:, :, col], cfg.radius, axis=1)
    np.testing.assert_array_equal(out[flag], crossed)
    np.testing.assert_array_equal(out[crit], np.where(crossed, np.asarray(idx) + 1, cfg.steps))
  done = out["escaped"] & out["escaped_frob"]
  assert done.any()
  for i in np.flatnonzero(done):
    last = max(out["tau_esc"][i], out["tau_esc_frob"][i])
    np.testing.assert_array_equal(tr[i, last - 1:], np.broadcast_to(tr[i, last - 1], tr[i, last - 1:].shape))
  np.testing.assert_allclose(np.abs(out["w_final"][:, 0, 0]), tr[:, -1, 0], rtol=1e-6)


def test_cells_spread_over_devices_give_the_same_results():
  devices = jax.local_devices()
  if len(devices) < 2:
    pytest.skip("needs >= 2 devices (conftest emulates 8 CPU devices)")
  cfg = sd.SaddleConfig(n=5, steps=40, chunk=8, radius=0.4)
  grid = sd.make_grid([0.5], [1.0, 30.0], [0.05], [0, 1, 2])  # 6 cells: padded to 8.
  fn = sd.make_optimizer("muon")
  many = sd.run_grid(fn, cfg, grid, devices=devices)
  one = sd.run_grid(fn, cfg, grid, devices=devices[:1])
  for k in ("tau_esc", "tau_esc_frob", "tau_lock", "escaped"):
    np.testing.assert_array_equal(many[k], one[k])
  np.testing.assert_allclose(many["w_final"], one["w_final"], atol=1e-6)


def test_median_exponent_fit_recovers_power_law_and_verdicts():
  rng = np.random.default_rng(0)
  dims = np.array([256, 1024, 4096, 16384])
  taus = [5 * d**0.7 * np.exp(rng.normal(0, 0.05, 9)) for d in dims]
  fit = sd.fit_median_exponent(dims, taus, n_boot=300, seed=1)
  meds = [np.median(t) for t in taus]
  slope = np.polyfit(np.log(dims), np.log(meds), 1)[0]
  assert fit["exponent"] == pytest.approx(slope, abs=1e-9)
  assert fit["ci_low"] < 0.7 < fit["ci_high"] and fit["ci_high"] - fit["ci_low"] < 0.1
  assert sd.verdict(fit, []) == "grows ~D^0.70"
  flat = sd.fit_median_exponent(dims, [100 * np.exp(rng.normal(0, 0.05, 9)) for _ in dims],
                                n_boot=300)
  assert sd.verdict(flat, []).startswith("dimension-free")
  assert sd.verdict({"exponent": -0.5, "ci_low": -0.6, "ci_high": -0.4}, []) == "shrinks ~D^-0.50"
  assert sd.verdict({"exponent": 0.1, "ci_low": -0.3, "ci_high": 0.5}, []).startswith("inconclusive")
  assert sd.verdict(None, [64]).startswith("not escaped within budget")
  assert sd.median_censored([10, 20, 100, 100], [True, True, False, False])[1]
  assert not sd.median_censored([10, 20, 30, 100], [True, True, True, False])[1]


def test_summarize_and_claims_on_synthetic_records():
  recs = []
  for opt, alpha in (("muon", 0.0), ("adamw", 1.0)):
    for n in (8, 16, 32):
      for s in range(5):
        tau = int(round(40 * (n * n) ** alpha * (1 + 0.01 * s)))
        recs.append({"optimizer": opt, "lr": 0.1, "noise": "standard", "lam": 0.1, "kappa": 100.0,
                     "n": n, "seed": s, "tau_esc": tau, "tau_esc_frob": 10**6,
                     "escaped": True, "escaped_frob": False})
  summary = sd.summarize(recs, steps=10**6, n_boot=200)
  assert len(summary) == 4
  by = {(s["optimizer"], s["criterion"]): s for s in summary}
  assert by[("muon", "tau_esc")]["verdict"].startswith("dimension-free")
  assert by[("adamw", "tau_esc")]["fit"]["exponent"] == pytest.approx(1.0, abs=0.01)
  assert by[("adamw", "tau_esc_frob")]["verdict"].startswith("not escaped")
  assert by[("muon", "tau_esc")]["per_n"][0]["median"] == np.median([round(40 * (1 + 0.01 * s)) for s in range(5)])
  claims = sd.evaluate_claims(summary)
  assert claims["muon_dimension_free"]["tau_esc"]["reproduces_in"] == "1/1 groups"
  assert claims["adamw_grows_with_D"]["tau_esc"]["groups"][0]["linear"]
  assert claims["muon_faster_with_n_at_high_kappa"]["tau_esc"]["reproduces_in"] == "0/1 groups"
  assert claims["adamw_grows_with_D"]["tau_esc_frob"]["reproduces_in"] == "0/1 groups"


def test_config_rejects_bad_values():
  for kw in ({"n": 1}, {"n": 4, "signal": "diagonal"}, {"n": 4, "noise": "pink"},
             {"n": 4, "steps": 0}, {"n": 4, "tail_df": 2}, {"n": 4, "radius": 0.0}):
    with pytest.raises(ValueError):
      sd.SaddleConfig(**kw)
  with pytest.raises(ValueError, match="optimizer"):
    sd.make_optimizer("adagrad")
