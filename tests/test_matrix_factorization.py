"""Tests for muon_jax.paper.matrix_factorization against NumPy references."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muon_jax.paper import matrix_factorization as mf
from muon_jax import stats
from muon_jax.infra import results


def test_target_spectrum_and_orthogonality():
  n, kappa = 12, 100.0
  t, u_star, v_star, s = (
    np.asarray(a, np.float64) for a in mf.make_target(jax.random.PRNGKey(3), n, kappa)
  )
  np.testing.assert_allclose(s, kappa ** (-np.arange(n) / (n - 1)), rtol=1e-6)
  assert s[0] == pytest.approx(1.0) and s[-1] == pytest.approx(1 / kappa, rel=1e-5)
  np.testing.assert_allclose(u_star.T @ u_star, np.eye(n), atol=2e-6)
  np.testing.assert_allclose(v_star.T @ v_star, np.eye(n), atol=2e-6)
  np.testing.assert_allclose(np.linalg.svd(t, compute_uv=False), s, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(t, u_star @ np.diag(s) @ v_star.T, atol=1e-6)


def test_mask_survival_frequencies_follow_decay_law():
  n, decay, batch, draws = 20, 3.0, 64, 200
  p = np.asarray(mf.survival_probs(n, decay))
  np.testing.assert_allclose(p, np.exp(-decay * np.arange(n) / n), rtol=1e-6)
  keys = jax.random.split(jax.random.PRNGKey(0), draws)
  x = np.asarray(jax.vmap(lambda k: mf.sample_batch(k, batch, jnp.asarray(p)))(keys)).reshape(-1, n)
  m = x.shape[0]
  freq = np.mean(x != 0, axis=0)
  # Binomial(m, p_i) frequencies within 5 standard errors of the decay law.
  assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / m) + 1e-12)
  survivors = x[:, 0]  # p_0 = 1: the unmasked input is N(0, 1).
  assert abs(survivors.mean()) < 5 / np.sqrt(m) and abs(survivors.var() - 1) < 5 * np.sqrt(2 / m)


def test_init_is_asymmetric():
  n, r = 400, 6
  params = mf.init_factors(jax.random.PRNGKey(1), n, r, 2, 1e-2, 1e-5)
  for name in ("u", "v"):
    std = np.asarray(params[name]).std(axis=0)
    np.testing.assert_allclose(std[:2], 1e-2, rtol=0.15)
    np.testing.assert_allclose(std[2:], 1e-5, rtol=0.15)
  assert not np.allclose(params["u"], params["v"])


def test_estimator_singular_values_and_effective_rank_of_known_spectra():
  n, r = 10, 6
  eye = {"u": jnp.eye(n, r), "v": jnp.eye(n, r)}
  np.testing.assert_allclose(mf.estimator_singular_values(eye), np.ones(r), atol=1e-6)
  erank = float(stats.effective_rank(mf.estimator_singular_values(eye)))
  assert erank == pytest.approx(r, rel=1e-5)
  e1 = np.zeros((n, r), np.float32)
  e1[:, 0] = np.arange(1, n + 1)
  rank1 = {"u": jnp.asarray(e1), "v": jnp.asarray(e1[::-1].copy())}
  erank = float(stats.effective_rank(mf.estimator_singular_values(rank1)))
  assert erank == pytest.approx(1, abs=1e-4)
  # Graded factors like the asymmetric init: QR-core singular values match the
  # float64 SVD of the n x n product.
  params = mf.init_factors(jax.random.PRNGKey(2), n, r, 2, 1e-1, 1e-3)
  w = np.asarray(params["u"], np.float64) @ np.asarray(params["v"], np.float64).T
  np.testing.assert_allclose(
    mf.estimator_singular_values(params), np.linalg.svd(w, compute_uv=False)[:r], rtol=1e-3
  )


def _numpy_loss(u, v, x, t):
  resid = x @ v @ u.T - x @ t.T
  return np.mean(np.sum(resid**2, axis=-1))


def test_loss_gradient_matches_numpy_and_finite_differences():
  rng = np.random.default_rng(0)
  n, r, b = 5, 3, 4
  u, v, t = rng.normal(size=(n, r)), rng.normal(size=(n, r)), rng.normal(size=(n, n))
  x = rng.normal(size=(b, n)) * (rng.random((b, n)) < 0.6)
  # Analytic: E = U V^T - T, L = ||X E^T||^2 / b; dL/dU = 2/b E X^T X V, dL/dV = 2/b X^T X E^T U.
  e, xtx = u @ v.T - t, x.T @ x
  grad_u, grad_v = 2 / b * e @ xtx @ v, 2 / b * xtx @ e.T @ u
  for ref, p in ((grad_u, u), (grad_v, v)):
    fd = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
      d = np.zeros_like(p)
      d[idx] = 1e-6
      plus = _numpy_loss(u + d, v, x, t) if p is u else _numpy_loss(u, v + d, x, t)
      minus = _numpy_loss(u - d, v, x, t) if p is u else _numpy_loss(u, v - d, x, t)
      fd[idx] = (plus - minus) / 2e-6
    np.testing.assert_allclose(fd, ref, rtol=1e-5, atol=1e-6)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  loss, grads = jax.value_and_grad(mf.loss_fn)({"u": f32(u), "v": f32(v)}, f32(x), f32(t))
  assert float(loss) == pytest.approx(_numpy_loss(u, v, x, t), rel=1e-5)
  np.testing.assert_allclose(grads["u"], grad_u, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(grads["v"], grad_v, rtol=1e-4, atol=1e-4)


def test_expected_loss_is_the_mean_of_the_batch_loss():
  n, r, batch, draws = 8, 3, 64, 200
  t = mf.make_target(jax.random.PRNGKey(0), n, 10.0)[0]
  p = mf.survival_probs(n, 4.0)
  params = mf.init_factors(jax.random.PRNGKey(1), n, r, 2, 0.3, 0.1)
  keys = jax.random.split(jax.random.PRNGKey(2), draws)
  losses = np.asarray(jax.vmap(lambda k: mf.loss_fn(params, mf.sample_batch(k, batch, p), t))(keys))
  exact = float(mf.expected_loss(params, t, p))
  # Closed form by NumPy: sum_i p_i ||(W - T)[:, i]||^2.
  w = np.asarray(params["u"]) @ np.asarray(params["v"]).T
  assert exact == pytest.approx(
    np.sum(np.asarray(p) * np.sum((w - np.asarray(t)) ** 2, 0)), rel=1e-5
  )
  assert abs(losses.mean() - exact) < 5 * losses.std() / np.sqrt(draws)


def test_optimizers_weight_decay_and_kimi_scale():
  n, r = 16, 4
  params = {"u": jnp.ones((n, r)), "v": jnp.ones((n, r))}
  zero = jax.tree.map(jnp.zeros_like, params)
  cfg = mf.MatrixFactorizationConfig(rank=r, steps=10, adamw_lr=0.1, adamw_weight_decay=0.5)
  opt = mf.make_optimizer(cfg, "adamw")
  upd, _ = opt.update(zero, opt.init(params), params)
  # Zero gradient: AdamW's only move is decoupled decay lr * wd * p at the peak lr.
  np.testing.assert_allclose(upd["u"], -0.1 * 0.5 * np.ones((n, r)), rtol=1e-6)
  cfg = dataclasses.replace(cfg, muon_lr=0.1)
  opt = mf.make_optimizer(cfg, "muon")
  g = jax.random.normal(jax.random.PRNGKey(0), (n, r))
  upd, _ = opt.update({"u": g, "v": g}, opt.init(params), params)
  # No weight decay; update = lr * 0.2 sqrt(max(n, r)) * (near-)orthogonal: singular values
  # inside the kimi Newton-Schulz band (~0.68..1.13) times lr * 0.2 * sqrt(16).
  s = np.linalg.svd(np.asarray(upd["u"]), compute_uv=False) / (0.1 * 0.2 * 4)
  assert np.all((s > 0.6) & (s < 1.2))
  with pytest.raises(ValueError, match="optimizer"):
    mf.make_optimizer(cfg, "sgd")


def test_record_steps_and_trace_layout():
  cfg = mf.MatrixFactorizationConfig(rank=4, steps=37, dense_steps=10, log_every=5)
  rec = mf.record_steps(cfg)
  np.testing.assert_array_equal(rec, list(range(11)) + [15, 20, 25, 30, 35, 37])
  out = jax.jit(lambda: mf.run_single(cfg, 8, "muon", 0, 10.0))()
  assert out["erank_R"].shape == rec.shape
  # Step-0 record is the init: same keys as run_keys -> same effective rank.
  _, k_init, _ = mf.run_keys(0, 0, 8)
  init = mf.init_factors(k_init, 8, 4, cfg.active_rank, cfg.active_std, cfg.dormant_std)
  assert float(out["erank_R"][0]) == pytest.approx(
    float(stats.effective_rank(mf.estimator_singular_values(init))), rel=1e-5
  )
  assert np.isnan(out["batch_loss_R"][0]) and np.all(np.isfinite(out["batch_loss_R"][1:]))
  assert float(out["rel_loss_R"][-1]) < float(out["rel_loss_R"][0])


@pytest.mark.parametrize("optimizer", mf.OPTIMIZERS)
def test_batched_grid_equals_single_runs(optimizer):
  kappas = (10.0, 1000.0)
  cfg = mf.MatrixFactorizationConfig(
    rank=6, steps=24, dense_steps=10, log_every=7, seed=5, seeds=2, kappas=kappas
  )
  grid = mf.run_grid(cfg, 12, optimizer)
  single = jax.jit(lambda s, k: mf.run_single(cfg, 12, optimizer, s, k))
  for s in range(2):
    for k, kappa in enumerate(kappas):
      one = single(s, kappa)
      for name in mf.TRACES[:1] + mf.TRACES[2:]:
        np.testing.assert_allclose(grid[name][s, k], one[name], rtol=2e-4, atol=1e-6, err_msg=name)
  # Seeds and kappas really differ.
  assert not np.allclose(grid["erank_R"][0, 0], grid["erank_R"][1, 0])
  assert not np.allclose(grid["rel_loss_R"][0, 0], grid["rel_loss_R"][0, 1])


def test_rank_expansion_steps():
  steps = np.array([0, 1, 2, 3, 5, 10])
  erank = np.array(
    [
      [
        [2.0, 2.5, 4.0, 6.0, 6.0, 6.0],
        [1.5, 1.6, 1.7, 2.0, 3.1, 3.0],
        [2.0, 2.0, 2.0, 2.0, 2.0, 3.9],
      ]
    ]
  )
  step, crossed = mf.rank_expansion_steps(erank, steps, 2.0)
  np.testing.assert_array_equal(crossed, [[True, True, False]])
  np.testing.assert_array_equal(step[0, :2], [2, 5])
  assert np.isnan(step[0, 2])


def _synthetic_units(step_of_n, dims, seeds=3, kappas=(10.0, 100.0), steps=100):
  """Units whose effective rank jumps 2 -> 5 at step_of_n(n) + seed index."""
  steps_R = np.arange(0, steps + 1)
  units = {}
  for n in dims:
    erank = np.full((seeds, len(kappas), steps_R.size), 2.0)
    for s in range(seeds):
      erank[s, :, step_of_n(n) + s :] = 5.0
    units[("muon", n)] = {
      "erank_R": erank,
      "rel_loss_R": np.ones_like(erank),
      "target_erank": np.full((seeds, len(kappas)), 9.0),
    }
  cfg = mf.MatrixFactorizationConfig(
    dims=tuple(dims),
    kappas=tuple(kappas),
    optimizers=("muon",),
    seeds=seeds,
    steps=steps,
    dense_steps=steps,
  )
  return units, cfg


def test_summary_exponents_and_claims_follow_the_crossing_steps():
  dims = (16, 64, 256)
  units, cfg = _synthetic_units(lambda n: 5, dims)
  s = mf.summarize(units, cfg)["muon"]
  assert s["per_n"]["64"]["expansion_step"] == [[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]]
  assert abs(s["exponent_vs_n"]["exponent"]) < 1e-9
  assert s["exponent_vs_n"]["verdict"] == "dimension-free"
  assert s["exponent_vs_n"]["censored"] == 0 and s["exponent_vs_n"]["step_granularity"] == 1
  # One step at the smallest median step (6) over a 16x range of n.
  assert s["exponent_vs_n"]["exponent_resolution"] == pytest.approx(np.log(7 / 6) / np.log(16))
  by_id = {
    c["id"]: c for c in mf.claims({"config": dataclasses.asdict(cfg), "summary": {"muon": s}})
  }
  assert by_id["fig2b"]["verdict"] == "dimension-free" and by_id["fig2b"]["reproduces"] is True
  # Crossing at steps 1-3: one step moves the exponent by log(3/2)/log(16) = 0.15 > delta, so
  # no verdict on this grid can count as reproduced.
  units, cfg = _synthetic_units(lambda n: 1, dims)
  s1 = mf.summarize(units, cfg)["muon"]
  assert s1["exponent_vs_n"]["exponent_resolution"] == pytest.approx(np.log(3 / 2) / np.log(16))
  claim = {
    c["id"]: c for c in mf.claims({"config": dataclasses.asdict(cfg), "summary": {"muon": s1}})
  }["fig2b"]
  fit = s1["exponent_vs_n"]
  assert claim["verdict"] == stats.exponent_verdict(fit["ci_low"], fit["ci_high"])
  assert claim["reproduces"] is None
  assert by_id["fig2c"]["verdict"] == "holds"  # latest crossing step 7 <= 20
  assert by_id["fig2d"]["verdict"] == "dimension-free"

  # Crossing step n / 4 (4, 16, 64): exponent ~1, grows; beyond 20 steps.
  units, cfg = _synthetic_units(lambda n: n // 4, dims)
  s = mf.summarize(units, cfg)["muon"]
  assert s["exponent_vs_n"]["exponent"] > 0.8 and s["exponent_vs_n"]["verdict"] == "grows"
  by_id = {
    c["id"]: c for c in mf.claims({"config": dataclasses.asdict(cfg), "summary": {"muon": s}})
  }
  assert by_id["fig2b"]["reproduces"] is False
  assert by_id["fig2c"]["verdict"] == "does not hold" and by_id["fig2c"]["reproduces"] is False


def test_never_crossed_runs_are_censored_not_dropped_silently():
  dims = (16, 64, 256)
  # At n = 256 the rank never expands within the 100 steps.
  units, cfg = _synthetic_units(lambda n: 5 if n < 256 else 500, dims)
  s = mf.summarize(units, cfg)["muon"]
  fit = s["exponent_vs_n"]
  assert (
    fit["censored"] == 6 and fit["n"] == 18 and fit["censored_at"] == 100
  )  # censored runs enter the fit
  assert s["per_n"]["256"]["expansion_step"] == [[None, None]] * 3
  assert s["per_n"]["256"]["crossed_fraction"] == 0.0
  claim = {
    c["id"]: c for c in mf.claims({"config": dataclasses.asdict(cfg), "summary": {"muon": s}})
  }["fig2b"]
  assert "6 censored" in claim["measured"] and claim["reproduces"] is None


def test_loss_gap_claim_is_paired_over_runs():
  dims = (16, 32)
  units, cfg = _synthetic_units(lambda n: 5, dims)
  rng = np.random.default_rng(0)
  for n in dims:
    adamw = {k: v.copy() for k, v in units[("muon", n)].items()}
    # AdamW's final loss 10x Muon's, with per-run noise.
    adamw["rel_loss_R"][..., -1] = 10 ** (1 + 0.1 * rng.normal(size=adamw["rel_loss_R"].shape[:2]))
    units[("adamw", n)] = adamw
  cfg = dataclasses.replace(cfg, optimizers=("muon", "adamw"))
  summary = mf.summarize(units, cfg)
  gap = summary["muon_minus_adamw_log10_final_loss"]
  assert gap["n"] == 12 and gap["ci_high"] < 0 < gap["ci_high"] + 2
  assert gap["mean"] == pytest.approx(-1, abs=0.1) and gap["verdict"] == "holds"
  # Same ranks for both optimizers: the step-20 rank contrast is exactly zero.
  contrast = summary["muon_minus_adamw_log10_erank_at_step_20"]
  assert contrast["mean"] == 0 and contrast["n"] == 6 and contrast["verdict"] == "inconclusive"


def test_run_is_resumable_and_refuses_other_settings(tmp_path):
  cfg = mf.MatrixFactorizationConfig(
    dims=(6, 8),
    kappas=(10.0,),
    optimizers=("muon",),
    seeds=1,
    rank=4,
    batch=4,
    steps=6,
    dense_steps=6,
  )
  state = str(tmp_path / "units.json")
  first = mf.run(cfg, state_path=state)
  assert set(first["units"]) == {"muon/n6", "muon/n8"}
  grown = dataclasses.replace(cfg, optimizers=("muon", "adamw"))
  second = mf.run(grown, state_path=state, resume=True)
  assert second["units"]["muon/n6"] == first["units"]["muon/n6"]
  assert second["nonfinite"].keys() == {"adamw/n6", "adamw/n8"}  # only these were computed
  # The summary recomputed from the stored (JSON) traces equals the one run made.
  assert mf.resummarize(results.to_json(second))["summary"] == second["summary"]
  with pytest.raises(ValueError, match=r"^resume: .* other settings"):
    mf.run(dataclasses.replace(cfg, seeds=2), state_path=state, resume=True)


def test_figures_draw_every_unit():
  from muon_jax.paper.figures import matrix_factorization as mf_figures

  cfg = mf.MatrixFactorizationConfig(
    dims=(6, 8), kappas=(10.0, 100.0), seeds=2, rank=4, batch=4, steps=6, dense_steps=6
  )
  res = mf.run(cfg)
  figs = mf_figures.figures(res)
  assert set(figs) == {"fig2a", "fig2b", "fig2c", "fig2d"}
  # 2a: one median line per (optimizer, n) in each kappa panel.
  for ax in figs["fig2a"].axes:
    assert len(ax.get_lines()) == 2 * 2
  ax_loss, ax_step = figs["fig2b"].axes
  assert ax_step.get_xlabel() == "n" and "rank-expansion step" in ax_step.get_ylabel()
  # Final loss vs n: one line per (optimizer, kappa), each through both n.
  assert len(ax_loss.get_lines()) == 4
  np.testing.assert_array_equal(ax_loss.get_lines()[0].get_xdata(), [6, 8])
  # The plotted final loss is the seed median of the stored trace.
  u = mf.units_from_results(res)
  np.testing.assert_allclose(
    ax_loss.get_lines()[0].get_ydata(),
    [np.median(u[("muon", n)]["rel_loss_R"][:, 0, -1]) for n in (6, 8)],
  )


@pytest.mark.parametrize(
  "change, match",
  [
    (dict(dims=(2,)), r"^dims=2 is out of range"),
    (dict(dims=(16, 16)), r"^dims has duplicate values"),
    (dict(kappas=(0.5,)), r"^kappas=0.5 is out of range"),
    (dict(optimizers=("sgd",)), r"^optimizers='sgd' is not allowed"),
    (dict(seeds=0), r"^seeds=0 is out of range"),
    (dict(threshold_factor=1.0), r"^threshold_factor=1.0 is out of range"),
    (dict(muon_beta=1.0), r"^muon_beta=1.0 is out of range"),
    (dict(dormant_std=-1.0), r"^dormant_std=-1.0 is out of range"),
    (dict(log_every=0), r"^log_every=0 is out of range"),
    (dict(dims=(16, 64), rank=2), r"^dims=16: the estimator rank .* must exceed active_rank=2"),
  ],
)
def test_check_config_names_the_field(change, match):
  cfg = mf.MatrixFactorizationConfig(dims=(16, 32), kappas=(10.0,), seeds=2)
  mf.check_config(cfg)  # the unchanged settings pass
  with pytest.raises(ValueError, match=match):
    mf.check_config(dataclasses.replace(cfg, **change))
  with pytest.raises(ValueError, match=match):
    mf.run(dataclasses.replace(cfg, **change))  # checked before anything compiles


def test_single_value_grid_runs_labels_claims_untestable_and_notes_empty_panels():
  import io
  import warnings

  from muon_jax.paper.figures import matrix_factorization as mf_figures

  # One n, one kappa, one seed; a threshold no rank-4 estimator reaches: nothing expands.
  cfg = mf.MatrixFactorizationConfig(
    dims=(6,),
    kappas=(10.0,),
    seeds=1,
    rank=4,
    batch=4,
    steps=6,
    dense_steps=6,
    threshold_factor=100.0,
  )
  assert set(mf.untestable_claims(dataclasses.asdict(cfg))) == {
    "fig2a",
    "fig2b",
    "fig2c (vs AdamW)",
    "fig2d",
  }
  res = mf.run(cfg)
  rows = {c["id"]: c for c in mf.claims(res)}
  # (No step 20 in 6 steps: the fig2c contrast is not drawn up at all.)
  for cid in ("fig2a", "fig2b", "fig2d"):
    assert rows[cid]["verdict"] == "untestable" and rows[cid]["reproduces"] is None
  assert "one n (dims=6)" in rows["fig2b"]["measured"]
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no library warning, no failing log axis
    figs = mf_figures.figures(res)
    for fig in figs.values():
      fig.savefig(io.BytesIO(), format="png")
  for name in ("fig2b", "fig2d"):
    notes = [t.get_text() for t in figs[name].axes[0 if name == "fig2d" else 1].texts]
    assert any(t.startswith("no data: no run's effective rank reached") for t in notes), name
