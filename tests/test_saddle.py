"""Saddle simulator and experiment: noise model vs its covariance, criteria vs NumPy,
grid == per-cell loop, race, lr-optimal tau*, untestable groups."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from muon_jax import stats
from muon_jax.paper import saddle as sd


def _draws(cfg, kappa, count, seed=0, geometry_seed=0):
  geom = sd.make_geometry(cfg, geometry_seed)
  keys = jax.random.split(jax.random.key(seed), count)
  noise = jax.vmap(lambda k: sd.sample_noise(k, geom, kappa, cfg))(keys)
  return geom, np.asarray(noise, np.float64)


@pytest.mark.parametrize("signal", ["aligned", "incoherent"])
@pytest.mark.parametrize("noise", ["standard", "isotropic"])
def test_noise_covariance_is_sigma2_identity_plus_kappa_spike(signal, noise):
  n, kappa, sigma, count = 3, 9.0, 2.0, 60_000
  cfg = sd.SimConfig(n=n, signal=signal, noise=noise, sigma=sigma)
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
  cfg = sd.SimConfig(n=5, sigma=1.5)
  geom = sd.make_geometry(cfg, 0)
  key = jax.random.key(3)
  z = np.asarray(sd.unit_draws(key, cfg))
  sigma2 = np.full((5, 5), 1.5**2)
  sigma2[0, 0] *= 7.0
  np.testing.assert_allclose(sd.sample_noise(key, geom, 7.0, cfg), np.sqrt(sigma2) * z, rtol=1e-6)


def test_isotropic_bulk_lies_on_sphere_of_radius_n():
  cfg = sd.SimConfig(n=7, noise="isotropic")
  x = jax.vmap(lambda k: sd.unit_draws(k, cfg))(jax.random.split(jax.random.key(0), 10))
  np.testing.assert_allclose(jnp.linalg.norm(x, axis=(1, 2)), 7.0, rtol=1e-5)


def test_heavy_tail_has_student_t_tail_and_power_law_columns():
  scipy_stats = pytest.importorskip("scipy.stats")
  n, count, nu = 8, 15_000, 3
  cfg = sd.SimConfig(n=n, noise="heavy_tail", tail_df=nu, tail_exponent=1.0)
  x = np.asarray(
    jax.vmap(lambda k: sd.unit_draws(k, cfg))(jax.random.split(jax.random.key(1), count)),
    np.float64,
  ).ravel()
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


def test_student_t_keeps_the_tails_without_the_column_profile():
  key = jax.random.key(2)
  flat, profiled = sd.SimConfig(n=8, noise="student_t"), sd.SimConfig(n=8, noise="heavy_tail")
  np.testing.assert_array_equal(sd.unit_draws(key, flat), sd.unit_draws(key, profiled))
  np.testing.assert_array_equal(sd.make_geometry(flat, 0).col_var, np.ones(8))
  np.testing.assert_array_equal(sd.column_variance(8, "heavy_tail", 0.0), np.ones(8))
  # The mean-1 profile j^-1 gives column 1 (S's column) n / H_n of the variance.
  for n, top in ((32, 7.9), (128, 23.6), (512, 75.1)):
    harmonic = np.sum(1.0 / np.arange(1, n + 1))
    assert float(sd.column_variance(n, "heavy_tail", 1.0)[0]) == pytest.approx(
      n / harmonic, rel=1e-5
    )
    assert n / harmonic == pytest.approx(top, abs=0.05)


def test_unspiked_reading_caps_every_column_at_the_standard_variance_on_paired_draws():
  n = 64
  capped = np.asarray(sd.column_variance(n, "heavy_tail_unspiked", 1.0), np.float64)
  np.testing.assert_allclose(capped, 1.0 / np.arange(1, n + 1), rtol=1e-6)  # j^-1, maximum 1
  spiked = np.asarray(sd.column_variance(n, "heavy_tail", 1.0), np.float64)
  np.testing.assert_allclose(spiked / capped, spiked[0], rtol=1e-5)  # same shape, other scale
  # Both readings see the same Student-t draws, so their escape times are paired.
  for noise in ("heavy_tail", "heavy_tail_unspiked"):
    keys = sd.cell_keys(0, n, noise, 3)
    np.testing.assert_array_equal(
      jax.random.key_data(keys[1]), jax.random.key_data(sd.cell_keys(0, n, "heavy_tail", 3)[1])
    )
  assert not np.array_equal(
    jax.random.key_data(sd.cell_keys(0, n, "student_t", 3)[1]),
    jax.random.key_data(sd.cell_keys(0, n, "heavy_tail", 3)[1]),
  )


@pytest.mark.parametrize("signal", ["aligned", "incoherent"])
def test_drift_points_away_from_the_saddle(signal):
  lam, mu, w0 = 0.3, 0.2, 0.5
  cfg = sd.SimConfig(n=4, signal=signal, bulk_curvature=mu)
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
  quiet = sd.SimConfig(n=4, signal=signal, sigma=0.0)
  g0 = sd.stochastic_gradient(keys[0], w0 * s, geom, lam, 4.0, quiet)
  np.testing.assert_allclose(sd.project(geom, w0 * s - 0.1 * g0), w0 * (1 + 0.1 * lam), rtol=1e-6)


def test_update_metrics_first_crossing_and_censoring():
  rng = np.random.default_rng(0)
  steps = 50
  values = np.abs(np.cumsum(rng.normal(size=(3, steps)), axis=1)) * np.array([[0.3], [0.2], [0.01]])
  thresholds = jnp.array([1.0, 1.5, 1.0])  # the third never crosses: censored.
  tau, hit = jnp.full((3,), steps, jnp.int32), jnp.zeros((3,), bool)
  for t in range(steps):
    tau, hit = sd.update_metrics(
      tau, hit, t, jnp.asarray(values[:, t], jnp.float32), thresholds, jnp.ones(3, bool)
    )
  idx, crossed = stats.first_crossing(values, np.asarray(thresholds)[:, None], axis=1)
  np.testing.assert_array_equal(hit, crossed)
  np.testing.assert_array_equal(tau, np.where(crossed, np.asarray(idx) + 1, steps))
  assert not bool(hit[2]) and int(tau[2]) == steps
  # Not tracked -> never recorded, even when the value crosses.
  tau2, hit2 = sd.update_metrics(
    jnp.full((3,), steps, jnp.int32),
    jnp.zeros(3, bool),
    4,
    jnp.full((3,), 9.0),
    thresholds,
    jnp.array([True, False, True]),
  )
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
  cfg = sd.SimConfig(n=6, steps=40, chunk=16, radius=0.5, signal="incoherent")
  grid = sd.make_grid([0.5, 0.05], [1.0, 50.0], lr, [0, 3])
  batched = sd.run_grid(fn, cfg, grid, seed=7)
  loop = sd.run_cell_loop(fn, cfg, grid, seed=7)
  for m in sd.METRICS:
    for k in (f"tau_{m}", f"hit_{m}"):
      np.testing.assert_array_equal(batched[k], loop[k], err_msg=k)
  np.testing.assert_allclose(batched["w_final"], loop["w_final"], atol=1e-6)
  # The grid is not trivial: some cells escape, some do not.
  assert batched["hit_definition1"].any() and not batched["hit_structural"].all()


def test_criteria_values_match_numpy_and_crossings_match_the_trace():
  cfg = sd.SimConfig(
    n=8, steps=120, chunk=32, radius=0.6, perp_radius=0.3, init_scale=0.05, signal="incoherent"
  )
  grid = sd.make_grid([0.5], [1.0, 100.0], [0.05], [0, 1, 2])
  out = sd.run_grid(sd.make_optimizer("muon"), cfg, grid, trace=True)
  tr = out["trace"]
  assert tr.shape == (6, 120, 5) and np.isfinite(tr).all()
  thresholds = [0.6, 0.6, 0.6, 0.3, 0.3]
  for col, (m, level) in enumerate(zip(sd.METRICS[:5], thresholds)):
    idx, crossed = stats.first_crossing(tr[:, :, col], level, axis=1)
    np.testing.assert_array_equal(out[f"hit_{m}"], crossed, err_msg=m)
    np.testing.assert_array_equal(
      out[f"tau_{m}"], np.where(crossed, np.asarray(idx) + 1, cfg.steps)
    )
  # Final values against NumPy on W_final - W_0 (W_0 re-drawn from the cell's init key).
  geom = sd.make_geometry(cfg, 0)
  s = np.outer(np.asarray(geom.u), np.asarray(geom.v))
  for i, si in enumerate(grid.seed_index):
    init_key = sd.cell_keys(0, cfg.n, cfg.noise, int(si))[0]
    w0 = np.asarray(sd.init_cell(sd.make_optimizer("muon"), cfg, init_key, 0.05).w, np.float64)
    delta = out["w_final"][i].astype(np.float64) - w0
    perp = delta - np.sum(s * delta) * s
    np.testing.assert_allclose(tr[i, -1, 0], abs(np.sum(s * delta)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(tr[i, -1, 1], np.linalg.norm(delta), rtol=1e-4)
    np.testing.assert_allclose(tr[i, -1, 3], np.linalg.norm(perp), rtol=1e-4)
    # Warm-started power iterations: a lower bound within 2 % of the SVD's top value.
    for col, m in ((2, delta), (4, perp)):
      top = np.linalg.svd(m, compute_uv=False)[0]
      assert 0.98 * top <= tr[i, -1, col] <= top * (1 + 1e-4)
  # Frozen after the structural escape; the structural escape implies both whole-parameter ones.
  done = out["hit_structural"]
  assert done.any()
  assert np.all(out["tau_definition1"][done] <= out["tau_structural"][done])
  assert np.all(out["tau_spectral"][done] <= out["tau_structural"][done])
  for i in np.flatnonzero(done):
    last = out["tau_structural"][i]
    np.testing.assert_array_equal(
      tr[i, last - 1 :], np.broadcast_to(tr[i, last - 1], tr[i, last - 1 :].shape)
    )


def test_race_success_follows_the_orthogonal_radius():
  # With R_perp huge the orthogonal deviation never counts: success == structural escape.
  # With R_perp tiny the orthogonal deviation always wins: no success.
  grid = sd.make_grid([0.5], [1.0, 100.0], [0.05], [0, 1, 2, 3])
  outcomes = {}
  for rp in (1e6, 1e-4):
    cfg = sd.SimConfig(n=8, steps=150, chunk=50, radius=0.5, perp_radius=rp)
    out = sd.run_grid(sd.make_optimizer("muon"), cfg, grid)
    recs = [{k: out[k][i] for k in out if k != "w_final"} for i in range(len(grid.lam))]
    outcomes[rp] = [
      (sd.race_success(r, "frobenius"), sd.race_success(r, "spectral"), r) for r in recs
    ]
  assert any(r["hit_structural"] for _, _, r in outcomes[1e6])
  for frob, spec, r in outcomes[1e6]:
    assert frob == spec == bool(r["hit_structural"])
  assert not any(frob or spec for frob, spec, _ in outcomes[1e-4])


def test_cells_spread_over_devices_give_the_same_results():
  devices = jax.local_devices()
  if len(devices) < 2:
    pytest.skip("needs >= 2 devices (conftest emulates 8 CPU devices)")
  cfg = sd.SimConfig(n=5, steps=40, chunk=8, radius=0.4)
  grid = sd.make_grid([0.5], [1.0, 30.0], [0.05], [0, 1, 2])  # 6 cells: padded to 8.
  fn = sd.make_optimizer("muon")
  many = sd.run_grid(fn, cfg, grid, devices=devices)
  one = sd.run_grid(fn, cfg, grid, devices=devices[:1])
  for m in sd.METRICS:
    np.testing.assert_array_equal(many[f"tau_{m}"], one[f"tau_{m}"])
  np.testing.assert_allclose(many["w_final"], one["w_final"], atol=1e-6)


def test_sim_config_rejects_bad_values():
  for kw, msg in (
    ({"n": 1}, "n=1"),
    ({"n": 4, "signal": "diagonal"}, "signal"),
    ({"n": 4, "noise": "pink"}, "noise"),
    ({"n": 4, "steps": 0}, "steps"),
    ({"n": 4, "tail_df": 2}, "tail_df"),
    ({"n": 4, "radius": 0.0}, "radius"),
    ({"n": 4, "perp_radius": 0.0}, "perp_radius"),
  ):
    with pytest.raises(ValueError, match=msg):
      sd.SimConfig(**kw)
  with pytest.raises(ValueError, match="optimizer"):
    sd.make_optimizer("adagrad")


# ----------------------------------------------------------------------------
# Experiment statistics on synthetic records (known answers, no simulation).


def _results(cfg, recs):
  """A results dict as `saddle.run` returns it, from synthetic cell records."""
  return sd.resummarize({"config": sd.config_dict(cfg), "delta": 0.1, "cells": recs})


def _record(opt, signal, n, lr, seed, tau, perp_frob, kappa=100.0, lam=0.1, noise="standard"):
  """A cell record: structural escape at `tau` (None: never), perp Frobenius at `perp_frob`."""
  steps = 1000
  rec = {
    "optimizer": opt,
    "signal": signal,
    "noise": noise,
    "n": n,
    "D": n * n,
    "lam": lam,
    "kappa": kappa,
    "lr": lr,
    "seed": seed,
  }
  for m, t in (
    ("structural", tau),
    ("definition1", tau),
    ("spectral", tau),
    ("perp_frobenius", perp_frob),
    ("perp_spectral", None),
    ("lock", None),
  ):
    rec[f"tau_{m}"], rec[f"hit_{m}"] = (steps, False) if t is None else (t, True)
  return rec


def test_tau_star_picks_the_fastest_race_winning_lr():
  # lr 0.1: tau 50 at every n but the orthogonal deviation wins at n >= 16 (at step 10);
  # lr 0.01: tau = 25 n, never loses the race. tau* = 50, 400, 800 at lr 0.1, 0.01, 0.01.
  cfg = sd.SaddleConfig(
    dims=(8, 16, 32),
    kappas=(100.0,),
    seeds=6,
    steps=1000,
    n_boot=100,
    optimizers=("muon",),
    signals=("aligned",),
    muon_lrs=(0.01, 0.1),
  )
  recs = []
  for n in (8, 16, 32):
    for s in range(6):
      recs.append(_record("muon", "aligned", n, 0.1, s, 50 + s, None if n == 8 else 10))
      recs.append(_record("muon", "aligned", n, 0.01, s, 25 * n + s, None))
  # Extra paper-lr seeds beyond `seeds` stay out of tau*: counted, these race winners at
  # lr 0.1, n = 16 would make it the fastest qualifying lr there.
  extra = [_record("muon", "aligned", 16, 0.1, s, 50, None) for s in range(6, 32)]
  (star,) = sd.tau_star(cfg, recs + extra)
  per_n = star["frobenius"]["per_n"]
  assert [p["lr"] for p in per_n] == [0.1, 0.01, 0.01]
  assert [p["tau_star"] for p in per_n] == [52.0, 402.0, 802.0]  # KM medians of 6 seeds.
  assert [p["success"] for p in per_n] == [1.0, 1.0, 1.0]
  assert per_n[1]["success_by_lr"] == {"0.01": 1.0, "0.1": 0.0}
  assert star["frobenius"]["lr_slope"] == pytest.approx(np.log(0.1) / np.log(16), rel=1e-6)
  assert star["frobenius"]["verdict"] == "grows"
  # No lr wins at n = 32 once lr 0.01 is trapped there: tau*(32) censored, still "grows".
  trapped = [
    r
    if not (r["n"] == 32 and r["lr"] == 0.01)
    else _record("muon", "aligned", 32, 0.01, r["seed"], None, None)
    for r in recs
  ]
  # Its exponent still points up, but a law read off two finite tau* is not decided.
  (star,) = sd.tau_star(cfg, trapped)
  assert star["frobenius"]["per_n"][2]["lr"] is None
  assert star["frobenius"]["per_n"][2]["tau_star"] is None
  assert star["frobenius"]["finite_n"] == 2 and star["frobenius"]["exponent"] > 0
  assert star["frobenius"]["verdict"] == "not decided"
  assert star["frobenius"]["reason"] == "rests on 2 finite n (needs 3)"


def _tau_star_config(**kw):
  return sd.SaddleConfig(
    **{
      "dims": (8, 16, 32),
      "kappas": (100.0,),
      "seeds": 8,
      "n_boot": 200,
      "optimizers": ("muon",),
      "signals": ("aligned",),
      "muon_lrs": (0.01, 0.1),
      **kw,
    }
  )


def test_tau_star_ci_equals_the_conditional_ci_when_the_choice_never_flips():
  # lr 0.01 runs each seed's draws one step slower than lr 0.1. Resampled jointly (common
  # random numbers), lr 0.1's KM median stays one step ahead in every resample, so the
  # selection bootstrap is the conditional seed bootstrap of lr 0.1's runs, draw for draw
  # (resampling the lrs separately would let lr 0.01 win about half the resamples).
  cfg = _tau_star_config()
  recs, fast = [], []
  for n in cfg.dims:
    for s in range(cfg.seeds):
      tau = (50 + 20 * s) * (n / 8) ** 0.3
      fast.append(_record("muon", "aligned", n, 0.1, s, tau, None))
      recs += [fast[-1], _record("muon", "aligned", n, 0.01, s, tau + 1, None)]
  (star,) = sd.tau_star(cfg, recs)
  e = star["frobenius"]
  assert [p["lr"] for p in e["per_n"]] == [0.1, 0.1, 0.1] and e["finite_n"] == 3
  conditional = stats.censored_exponent(
    [r["D"] for r in fast],
    [r["tau_structural"] for r in fast],
    [r["hit_structural"] for r in fast],
    n_boot=cfg.n_boot,
    seed=cfg.seed,
  )
  assert e["ci_method"] == "bootstrap with lr selection per resample"
  assert e["exponent"] == pytest.approx(conditional["exponent"], abs=1e-9)
  assert e["ci"] == pytest.approx(list(conditional["ci"]), abs=1e-9)


def test_tau_star_ci_carries_the_chance_of_another_lr_winning():
  # lr 0.1 escapes at ~100 at every n but wins the race in exactly half the seeds at n = 32:
  # the point estimate picks it everywhere (success 0.5 qualifies) and reads a flat law.
  # In the ~36 % of resamples where fewer than half of those seeds win, lr 0.01 (~400)
  # takes n = 32: the CI that redoes the choice reaches well above the conditional one.
  cfg = _tau_star_config()
  recs, chosen = [], []
  for n in cfg.dims:
    for s in range(cfg.seeds):
      loses = n == 32 and s >= 4
      chosen.append(_record("muon", "aligned", n, 0.1, s, 100 + s, 10 if loses else None))
      recs += [chosen[-1], _record("muon", "aligned", n, 0.01, s, 400 + s, None)]
  (star,) = sd.tau_star(cfg, recs)
  e = star["frobenius"]
  assert [p["lr"] for p in e["per_n"]] == [0.1, 0.1, 0.1]
  assert e["per_n"][2]["success"] == 0.5
  conditional = stats.censored_exponent(
    [r["D"] for r in chosen],
    [r["tau_structural"] for r in chosen],
    [r["hit_structural"] for r in chosen],
    n_boot=cfg.n_boot,
    seed=cfg.seed,
  )
  assert stats.exponent_verdict(*conditional["ci"]) == "dimension-free"
  assert e["exponent"] == pytest.approx(conditional["exponent"], abs=1e-9)
  assert e["ci"][0] <= conditional["ci"][0] + 1e-9
  assert e["ci"][1] > conditional["ci"][1] + 0.2
  assert e["verdict"] != "dimension-free"


def _lognormal_records(cfg, tau_of, *, sigma=0.1, seed=0, **record_kw):
  """A record per (optimizer, signal, n, lam, first lr, seed): tau = tau_of(n, lam) e^(sigma Z)."""
  rng = np.random.default_rng(seed)
  return [
    _record(
      opt,
      signal,
      n,
      lr,
      s,
      float(tau_of(n, lam) * np.exp(sigma * rng.standard_normal())),
      None,
      lam=lam,
      **record_kw,
    )
    for opt in cfg.optimizers
    for signal in cfg.signals
    for n in cfg.dims
    for lam in cfg.curvatures
    for lr in cfg.lrs(opt)[:1]
    for s in range(cfg.seeds)
  ]


def test_lack_of_fit_flags_a_kinked_law_and_passes_a_power_law():
  # tau ~ D^+0.5 up to n = 16, D^-0.5 beyond: over n = 4...16 and 16...64 the halves'
  # exponents are +0.5 and -0.5. A pure power law D^0.25 has one exponent on both halves.
  cfg = sd.SaddleConfig(
    dims=(4, 8, 16, 32, 64), kappas=(100.0,), seeds=16, n_boot=200, optimizers=("muon",)
  )
  laws = {
    "kinked": (lambda n, lam: 20.0 * min(n, 256 / n), (0.5, -0.5)),
    "power": (lambda n, lam: 20.0 * n**0.5, (0.25, 0.25)),
  }
  for name, (law, halves) in laws.items():
    (group,) = sd.summarize(cfg, _lognormal_records(cfg, law))
    fit = group["structural"]["lack_of_fit"]
    assert fit["lower"]["n"] == [4, 8, 16] and fit["upper"]["n"] == [16, 32, 64]
    assert [fit["lower"]["exponent"], fit["upper"]["exponent"]] == pytest.approx(halves, abs=0.03)
    assert fit["disagree"] == (name == "kinked"), name
  two = dataclasses.replace(cfg, dims=(8, 16))
  (group,) = sd.summarize(two, _lognormal_records(two, laws["kinked"][0]))
  assert group["structural"]["lack_of_fit"] is None  # needs 3 n: two per half.


def test_muon_pools_both_geometries_into_one_fit_on_their_union():
  cfg = sd.SaddleConfig(
    dims=(8, 16, 32),
    kappas=(100.0,),
    seeds=6,
    n_boot=100,
    signals=("aligned", "incoherent"),
    muon_lrs=(0.02,),
    adamw_lrs=(0.001,),
  )
  recs = _lognormal_records(cfg, lambda n, lam: 300.0 / n**0.5, sigma=0.3)
  results = _results(cfg, recs)
  json.dumps(results, allow_nan=False)  # every new entry is plain JSON.
  (entry,) = results["pooled"]  # Muon only: AdamW's law differs between the geometries.
  assert {k: entry[k] for k in sd.statistics.POOLED_KEYS} == {
    "optimizer": "muon",
    "noise": "standard",
    "lam": 0.1,
    "kappa": 100.0,
    "lr": 0.02,
  }
  # The geometries share each seed's draws (the streams ignore the signal).
  assert entry["shared_draws"] and entry["signals"] == ["aligned", "incoherent"]
  union = [r for r in recs if r["optimizer"] == "muon"]
  direct = sd.statistics.exponent_entry(
    stats.censored_exponent(
      [r["D"] for r in union],
      [r["tau_structural"] for r in union],
      [r["hit_structural"] for r in union],
      n_boot=cfg.n_boot,
      seed=cfg.seed,
    )
  )
  assert {k: v for k, v in entry["structural"].items() if k != "lack_of_fit"} == direct
  assert [p["runs"] for p in entry["structural"]["per_D"]] == [12, 12, 12]
  assert entry["structural"]["lack_of_fit"]["lower"]["n"] == [8, 16]
  one = dataclasses.replace(cfg, signals=("incoherent",))
  assert _results(one, [r for r in recs if r["signal"] == "incoherent"])["pooled"] == []


def test_curvature_exponent_recovers_an_inverse_curvature_law():
  # tau ~ 5 / lam at every n: the exponent against lam is -1 per n and over all n, for each
  # geometry and for Muon's geometries pooled (not AdamW's).
  cfg = sd.SaddleConfig(
    dims=(8, 16),
    curvatures=(0.01, 0.03, 0.1, 0.3),
    kappas=(1.0,),
    seeds=8,
    n_boot=200,
    signals=("aligned", "incoherent"),
    muon_lrs=(0.02,),
    adamw_lrs=(0.001,),
  )
  recs = _lognormal_records(cfg, lambda n, lam: 5.0 / lam, kappa=1.0)
  entries = _results(cfg, recs)["curvature"]
  assert sorted((c["optimizer"], c["signal"]) for c in entries) == [
    ("adamw", "aligned"),
    ("adamw", "incoherent"),
    ("muon", "aligned"),
    ("muon", "incoherent"),
    ("muon", "pooled"),
  ]
  for c in entries:
    assert [p["n"] for p in c["per_n"]] == [8, 16]
    for e in c["per_n"] + [c["pooled_over_n"]]:
      assert e["exponent"] == pytest.approx(-1, abs=0.05) and e["verdict"] == "shrinks"
      assert [p["lam"] for p in e["per_lam"]] == [0.01, 0.03, 0.1, 0.3]
      assert e["lack_of_fit"]["lower"]["lam"] == [0.01, 0.03] and not e["lack_of_fit"]["disagree"]
  pooled = next(c for c in entries if c["signal"] == "pooled")
  assert pooled["shared_draws"] and pooled["pooled_over_n"]["per_lam"][0]["runs"] == 32


def test_untestable_groups_are_labelled_and_tallied_apart():
  cfg = sd.SaddleConfig(dims=(8, 16), kappas=(100.0,), seeds=5, n_boot=50, steps=1000)
  recs = [
    _record(opt, signal, n, 0.01, s, 100 + s, None)
    for opt in ("muon", "adamw", "sgd")
    for signal in ("aligned", "incoherent")
    for n in (8, 16)
    for s in range(5)
  ]
  summary = sd.summarize(cfg, recs)
  by = {(s["optimizer"], s["signal"]): s for s in summary}
  assert by[("adamw", "aligned")]["structural"]["verdict"] == "untestable"
  assert "coordinate-separable" in by[("adamw", "aligned")]["structural"]["reason"]
  # SGD is linear and rotation-equivariant: untestable in the incoherent geometry too.
  assert "linear optimizer" in by[("sgd", "incoherent")]["structural"]["reason"]
  assert by[("sgd", "incoherent")]["spectral"]["verdict"] == "dimension-free"
  for key in (("muon", "aligned"), ("adamw", "incoherent")):
    assert by[key]["structural"]["verdict"] == "dimension-free"  # identical taus at both n.
  assert by[("adamw", "aligned")]["definition1"]["verdict"] == "dimension-free"
  tally = sd.tallies(summary, [])
  assert tally["aligned"]["adamw"]["structural"] == {"untestable": 1}
  assert tally["incoherent"]["adamw"]["structural"] == {"dimension-free": 1}


def test_independent_draws_give_each_group_its_own_streams():
  base = {
    "dims": (8,),
    "curvatures": (0.1, 0.01),
    "kappas": (1.0, 100.0),
    "seeds": 3,
    "paper_lr_seeds": 5,
    "muon_lrs": (0.01, 0.1),
    "adamw_lrs": (0.001, 0.01),
    "signals": ("aligned",),
  }
  common = sd.SaddleConfig(**base)
  cells = [c for c in sd.all_cells(common) if c["signal"] == "aligned"]
  # Muon's paper lr (0.02) is closest to 0.01 on this grid: 5 seeds there, 3 elsewhere.
  assert {sd.stream_index(common, c) for c in cells} == set(range(5))
  per_lr = {(c["optimizer"], c["lr"]): set() for c in cells}
  for c in cells:
    per_lr[(c["optimizer"], c["lr"])].add(c["seed"])
  assert per_lr == {
    ("muon", 0.01): set(range(5)),
    ("muon", 0.1): set(range(3)),
    ("adamw", 0.001): set(range(5)),
    ("adamw", 0.01): set(range(3)),
  }
  indep = sd.SaddleConfig(**base, independent_draws=True)
  assert len({sd.stream_index(indep, c) for c in cells}) == len(cells)


def test_saddle_config_rejects_bad_values():
  from muon_jax.infra import config

  for kw, msg in (
    ({"muon_lrs": (0.1, 0.1)}, "muon_lrs has duplicate values"),
    ({"adamw_lrs": (0.0, 0.1)}, "adamw_lrs=0.0 is out of range"),
    ({"perp_radius": 0.0}, "perp_radius=0.0 is out of range"),
    ({"success_level": 1.0}, "success_level=1.0 is out of range"),
    ({"signals": ("diagonal",)}, "signals='diagonal' is not allowed"),
  ):
    with pytest.raises(ValueError, match=msg):
      config.check(sd.SaddleConfig(**kw))


def test_claims_rows_follow_the_verdicts():
  # Muon: flat at kappa 1 (Fig 1a holds), tau ~ D^-1/2 at kappa 100 (Fig 1b holds); no AdamW,
  # no noise ablation: those rows are absent or untestable.
  cfg = sd.SaddleConfig(
    dims=(8, 64),
    kappas=(1.0, 100.0),
    seeds=5,
    n_boot=100,
    steps=1000,
    optimizers=("muon",),
    signals=("incoherent",),
    muon_lrs=(0.02,),
  )
  recs = [
    _record(
      "muon",
      "incoherent",
      n,
      0.02,
      s,
      (100 + s) if kappa == 1.0 else round(800 / n) + s,
      None,
      kappa=kappa,
    )
    for kappa in (1.0, 100.0)
    for n in (8, 64)
    for s in range(5)
  ]
  rows = {r["id"]: r for r in sd.claims(_results(cfg, recs))}
  # Fig 1a's two regimes: moderate kappa (dimension-free) and pronounced kappa (shrinks).
  a = rows["fig1a/kappa=1/incoherent/lam=0.1/structural"]
  assert (a["verdict"], a["reproduces"]) == ("dimension-free", True)
  b = rows["fig1a/kappa=100/incoherent/lam=0.1/structural"]
  assert (b["verdict"], b["reproduces"]) == ("shrinks", True)
  assert not any("tau_star" in k for k in rows)  # one lr is no sweep: no tau* rows
  # Criteria that scale with the update norm are reported but never judged against the paper.
  d1 = rows["fig1a/kappa=1/incoherent/lam=0.1/definition1"]
  assert d1["reproduces"] == "n/a (update-norm scaling)"
  assert "reconstructed; the paper prints no lr" in a["criterion"]
  assert not any(k.startswith("fig1c") for k in rows)
  # Fig 1b is curvature scaling: one lam cannot test it.
  for k in ("fig1b", "fig5a", "fig5b", "fig1d"):
    assert (rows[k]["verdict"], rows[k]["reproduces"]) == ("untestable", None)


@pytest.mark.parametrize("depends_on_lam, verdict", [(False, "holds"), (True, "does not hold")])
def test_fig1d_claim_fits_adamw_tau_against_curvature(depends_on_lam, verdict):
  cfg = sd.SaddleConfig(
    dims=(8, 16),
    curvatures=(0.01, 0.001),
    kappas=(1.0,),
    seeds=6,
    n_boot=200,
    steps=10**5,
    optimizers=("adamw",),
    signals=("incoherent",),
    adamw_lrs=(0.001,),
  )
  recs = [
    _record(
      "adamw",
      "incoherent",
      n,
      0.001,
      s,
      round((1 / lam if depends_on_lam else 500) * (1 + 0.01 * s)),
      None,
      kappa=1.0,
      lam=lam,
    )
    for lam in (0.01, 0.001)
    for n in (8, 16)
    for s in range(6)
  ]
  (row,) = [r for r in sd.claims(_results(cfg, recs)) if r["id"].startswith("fig1d")]
  assert row["id"] == "fig1d/incoherent" and row["verdict"] == verdict
  assert row["reproduces"] is (verdict == "holds")


def test_figures_follow_the_ablations_that_ran():
  import matplotlib.pyplot as plt

  from muon_jax.paper.figures import saddle as figures

  base = {
    "dims": (8, 16),
    "kappas": (1.0,),
    "seeds": 4,
    "n_boot": 50,
    "steps": 1000,
    "optimizers": ("muon",),
    "signals": ("incoherent",),
    "muon_lrs": (0.02,),
  }
  runs = {
    "one noise, one lam": ({}, {"fig1a_muon_vs_dimension", "race_success", "tau_star"}),
    "ablations": (
      {"curvatures": (0.1, 0.01), "noises": ("standard", "student_t")},
      {
        "fig1a_muon_vs_dimension",
        "race_success",
        "tau_star",
        "fig5b_noise_vs_dimension",
        "fig1b_muon_vs_curvature",
        "fig5a_noise_vs_curvature",
      },
    ),
  }
  for extra, expected in runs.values():
    cfg = sd.SaddleConfig(**base, **extra)
    recs = [
      _record(
        "muon",
        "incoherent",
        n,
        0.02,
        s,
        None if (n == 16 and s < 3) else 50 + s,
        None,
        kappa=1.0,
        lam=lam,
        noise=z,
      )
      for z in cfg.noises
      for lam in cfg.curvatures
      for n in cfg.dims
      for s in range(4)
    ]
    figs = figures.figures(_results(cfg, recs))
    assert set(figs) == expected
    # The censored KM median (3 of 4 trapped at n = 16) is drawn hollow at the budget.
    ax = figs["fig1a_muon_vs_dimension"].axes[0]
    hollow = [c for c in ax.collections if c.get_offsets().shape[0]]
    assert any(np.allclose(c.get_offsets()[:, 1], 1000) for c in hollow)
    for fig in figs.values():
      plt.close(fig)


def test_muon_escape_law_is_the_same_in_both_geometries():
  # Muon is equivariant under W -> U W V^T and Gaussian noise is rotation-invariant, so
  # its structural escape time has one law for S = E_11 and S = u v^T: a log-rank test
  # on 200 seeds each does not tell them apart (it would if the incoherent geometry
  # broke the equivariance, e.g. a noise or drift term not rotated with S).
  from lifelines.statistics import logrank_test

  cfg = sd.SaddleConfig(
    dims=(8,),
    kappas=(1.0,),
    optimizers=("muon",),
    signals=("aligned", "incoherent"),
    muon_lrs=(0.02,),
    seeds=200,
    paper_lr_seeds=200,
    steps=2000,
  )
  recs = sd.simulate(cfg, sd.all_cells(cfg))
  tau, hit = {}, {}
  for signal in cfg.signals:
    tau[signal] = [r["tau_structural"] for r in recs if r["signal"] == signal]
    hit[signal] = [r["hit_structural"] for r in recs if r["signal"] == signal]
  assert min(np.mean(h) for h in hit.values()) > 0.8  # mostly escaped: the test has power.
  test = logrank_test(tau["aligned"], tau["incoherent"], hit["aligned"], hit["incoherent"])
  assert test.p_value > 0.05
