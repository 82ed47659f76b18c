"""Tests for muon_jax.lm.landscape_probe: the App 12 probe against analytic surfaces."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from binaries import run_module
from flax import nnx

from muon_jax.lm import landscape_probe as landscape
from muon_jax.lm.landscape_probe import ProbeConfig

M, N = 6, 4  # target kernel shape (in, out)


class Block(nnx.Module):
  def __init__(self, w0, rngs):
    self.up_proj = nnx.Linear(N, M, use_bias=False, rngs=rngs)
    self.down_proj = nnx.Linear(M, N, use_bias=False, rngs=rngs)
    self.down_proj.kernel[...] = jnp.asarray(w0, jnp.float32)


class Toy(nnx.Module):
  """Target `mlp/down_proj/kernel` (M, N); other params enter the loss only as a constant."""

  def __init__(self, w0, seed=0):
    rngs = nnx.Rngs(seed)
    self.mlp = Block(w0, rngs)
    self.other = nnx.Param(jax.random.normal(rngs.params(), (N, 3)))
    self.scale = nnx.Param(jnp.full((3,), 0.5))
    self.counter = nnx.BatchStat(jnp.arange(3.0))  # non-Param state must survive too


def const_term(model):
  return 0.1 * jnp.sum(model.other[...] ** 2) * jnp.sum(model.scale[...])


def regression_loss(model, batch):
  """0.5 mean_b ||x_b W - y_b||^2 + const: an explicit quadratic in W."""
  x, y = batch[:, :M], batch[:, M:]
  r = x @ model.mlp.down_proj.kernel[...] - y
  return 0.5 * jnp.mean(jnp.sum(r**2, -1)) + const_term(model)


def planted_loss(model, batch):
  """<C, W> * mean(batch): gradient c_b C with C planted below."""
  return jnp.sum(jnp.asarray(PLANTED_C) * model.mlp.down_proj.kernel[...]) * jnp.mean(batch)


def _orthonormal(key, rows, cols):
  return np.linalg.qr(np.asarray(jax.random.normal(key, (rows, cols)), np.float64))[0]


K = jax.random.split(jax.random.key(42), 8)
U_PLANT, V_PLANT = _orthonormal(K[0], M, N), _orthonormal(K[1], N, N)
S_PLANT = np.array([5.0, 3.0, 2.0, 1.0])
PLANTED_C = (U_PLANT * S_PLANT) @ V_PLANT.T


def regression_batches(key, count, b=16):
  keys = jax.random.split(key, count)
  return [np.asarray(jax.random.normal(k, (b, M + N)), np.float32) for k in keys]


def np_grad(w, batch):
  x, y = batch[:, :M].astype(np.float64), batch[:, M:].astype(np.float64)
  return x.T @ (x @ w - y) / len(batch)


def np_loss(w, batch):
  x, y = batch[:, :M].astype(np.float64), batch[:, M:].astype(np.float64)
  return 0.5 * np.mean(np.sum((x @ w - y) ** 2, -1))


def state_snapshot(model):
  flat = jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]
  return {jax.tree_util.keystr(p): (np.array(x), x.dtype) for p, x in flat}


def small_cfg(**kw):
  base = dict(path="mlp/down_proj", grad_batches=5, eval_batches=3, bulk_index=3, grid=5, chunk=3)
  base.update(kw)
  return ProbeConfig(**base)


def test_grid_equals_analytic_quadratic_surface():
  w0 = np.asarray(jax.random.normal(K[2], (M, N)), np.float64)
  model = Toy(w0)
  grads, evals = regression_batches(K[3], 5), regression_batches(K[4], 3)
  cfg = small_cfg()
  res = landscape.probe(model, regression_loss, grads, evals, cfg)

  g = np.mean([np_grad(w0, b) for b in grads], 0)
  np.testing.assert_allclose(res.arrays["gradient"], g, rtol=1e-5, atol=1e-6)
  deltas = [np_grad(w0, b) - g for b in grads]
  np.testing.assert_allclose(
    res.arrays["row_covariance"], np.mean([d @ d.T for d in deltas], 0), rtol=1e-4, atol=1e-5
  )
  np.testing.assert_allclose(
    res.arrays["col_covariance"], np.mean([d.T @ d for d in deltas], 0), rtol=1e-4, atol=1e-5
  )
  u, s, vt = np.linalg.svd(g)
  np.testing.assert_allclose(res["singular_values"]["gradient"], s, rtol=1e-5)
  d1, d2 = np.outer(u[:, 0], vt[0]), np.outer(u[:, 2], vt[2])  # unit normalization, k = 3
  const = float(const_term(model))
  alpha, beta = np.array(res["alpha"]), np.array(res["beta"])
  np.testing.assert_array_equal(alpha, np.linspace(-1, 1, 5))
  expect = np.array(
    [
      [np.mean([np_loss(w0 + a * d1 + bt * d2, e) for e in evals]) + const for bt in beta]
      for a in alpha
    ]
  )
  np.testing.assert_allclose(res["loss_grid"], expect, rtol=2e-5)
  center = np.mean([np_loss(w0, e) for e in evals]) + const
  mt = res["metrics"]
  np.testing.assert_allclose(mt["center_loss"], center, rtol=1e-5)
  np.testing.assert_allclose(mt["spike_range"], np.ptp(expect[:, 2]), rtol=1e-4)
  np.testing.assert_allclose(mt["spike_range_rel"], np.ptp(expect[:, 2]) / center, rtol=1e-4)
  np.testing.assert_allclose(mt["bulk_range"], np.ptp(expect[2, :]), rtol=1e-4)
  assert res["path"] == "mlp/down_proj/kernel" and res["shape"] == [M, N]
  json.dumps(res)  # the dict part is plain JSON


def test_spike_and_bulk_are_planted_singular_pairs():
  w0 = np.asarray(jax.random.normal(K[5], (M, N)), np.float64)
  # c_b has mean 1, so the averaged gradient is exactly PLANTED_C.
  c = np.array([0.5, 1.5, 1.0, 2.0, 0.0])
  grads = [np.full((2,), cb, np.float32) for cb in c]
  evals = [np.ones((2,), np.float32)]
  cfg = small_cfg(eval_batches=1, bulk_index=2)
  res = landscape.probe(Toy(w0), planted_loss, grads, evals, cfg)
  np.testing.assert_allclose(res["singular_values"]["gradient"], S_PLANT, rtol=1e-5)
  np.testing.assert_allclose(
    res.arrays["row_covariance"], np.var(c) * PLANTED_C @ PLANTED_C.T, rtol=1e-4, atol=1e-5
  )
  # L is linear: L(alpha, beta) = <C, W0> + alpha s_1 + beta s_k exactly when
  # D_spike = u_1 v_1^T and D_bulk = u_k v_k^T (the only unit rank-1 maximizers).
  alpha, beta = np.array(res["alpha"]), np.array(res["beta"])
  l0 = np.sum(PLANTED_C * w0)
  expect = l0 + S_PLANT[0] * alpha[:, None] + S_PLANT[1] * beta[None, :]
  np.testing.assert_allclose(res["loss_grid"], expect, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(res["metrics"]["spike_range"], 2 * S_PLANT[0], rtol=1e-5)
  np.testing.assert_allclose(res["metrics"]["bulk_range"], 2 * S_PLANT[1], rtol=1e-5)
  assert res["bulk_index_used"] == 2 and not res["bulk_index_fallback"]


def test_bulk_index_beyond_rank_uses_middle_and_normalizations_scale():
  w0 = np.asarray(jax.random.normal(K[6], (M, N)), np.float64)
  grads, evals = [np.ones((2,), np.float32)], [np.ones((2,), np.float32)]
  for norm, scale in (
    ("unit", 1.0),
    ("spectral", np.linalg.norm(w0, 2)),
    ("frobenius", np.linalg.norm(w0)),
  ):
    cfg = small_cfg(grad_batches=1, eval_batches=1, bulk_index=500, normalization=norm)
    res = landscape.probe(Toy(w0), planted_loss, grads, evals, cfg)
    assert res["bulk_index_used"] == N // 2 + 1 and res["bulk_index_fallback"]
    np.testing.assert_allclose(res["metrics"]["spike_range"], 2 * S_PLANT[0] * scale, rtol=1e-5)
    np.testing.assert_allclose(res["metrics"]["bulk_range"], 2 * S_PLANT[N // 2] * scale, rtol=1e-5)


@pytest.mark.parametrize("beta_range", [(-1.0, 0.5), (-1.0, 0.8)])
def test_lines_and_center_when_grid_misses_zero(beta_range):
  w0 = np.asarray(jax.random.normal(K[2], (M, N)), np.float64)
  grads, evals = regression_batches(K[3], 2), regression_batches(K[4], 2)
  cfg = small_cfg(
    grad_batches=2, eval_batches=2, grid=4, alpha_range=(0.25, 1.0), beta_range=beta_range
  )
  model = Toy(w0)
  res = landscape.probe(model, regression_loss, grads, evals, cfg)
  g = np.mean([np_grad(w0, b) for b in grads], 0)
  u, _, vt = np.linalg.svd(g)
  d1, d2 = np.outer(u[:, 0], vt[0]), np.outer(u[:, 2], vt[2])
  const = float(const_term(model))
  loss = lambda w: np.mean([np_loss(w, e) for e in evals]) + const
  alpha, beta = np.array(res["alpha"]), np.array(res["beta"])
  assert 0.0 not in alpha and (0.0 in beta) == (beta_range[1] == 0.5)
  np.testing.assert_allclose(res["alpha_line"], [loss(w0 + a * d1) for a in alpha], rtol=2e-5)
  np.testing.assert_allclose(res["beta_line"], [loss(w0 + b * d2) for b in beta], rtol=2e-5)
  np.testing.assert_allclose(res["metrics"]["center_loss"], loss(w0), rtol=1e-5)


@pytest.mark.parametrize("n_dev,count", [(8, 5), (3, 7), (1, 2)])
def test_gradient_average_with_uneven_device_split(n_dev, count):
  w0 = np.asarray(jax.random.normal(K[7], (M, N)), np.float64)
  grads = regression_batches(K[3], count)
  cfg = small_cfg(grad_batches=count, eval_batches=1, grid=3)
  res = landscape.probe(
    Toy(w0),
    regression_loss,
    iter(grads + grads),
    grads[:1],
    cfg,
    devices=jax.local_devices()[:n_dev],
  )
  np.testing.assert_allclose(
    res.arrays["gradient"], np.mean([np_grad(w0, b) for b in grads], 0), rtol=1e-5, atol=1e-6
  )
  np.testing.assert_allclose(
    res["metrics"]["grad_batch_loss"],
    np.mean([np_loss(w0, b) for b in grads]) + float(const_term(Toy(w0))),
    rtol=1e-5,
  )
  assert res["num_devices"] == n_dev


def test_model_is_restored_bit_exactly():
  w0 = np.asarray(jax.random.normal(K[2], (M, N)), np.float64)
  model = Toy(w0)
  before = state_snapshot(model)
  kernel_obj = model.mlp.down_proj.kernel.get_value()
  grads, evals = regression_batches(K[3], 3), regression_batches(K[4], 2)
  loss_before = float(regression_loss(model, evals[0]))
  landscape.probe(model, regression_loss, grads, evals, small_cfg(grad_batches=3, eval_batches=2))
  after = state_snapshot(model)
  assert before.keys() == after.keys()
  for key, (x, dtype) in before.items():
    assert after[key][1] == dtype
    np.testing.assert_array_equal(after[key][0], x, err_msg=key)
  assert model.mlp.down_proj.kernel.get_value() is kernel_obj
  assert float(regression_loss(model, evals[0])) == loss_before


@pytest.mark.parametrize(
  "spectrum,expected",
  [
    ([2.0, 1.0, 1.0, 0.0], 0.75),  # p = (1/2, 1/4, 1/4, 0): H = 1.5 ln 2, / ln 4
    ([1.0, 1.0, 1.0, 1.0], 1.0),
    ([3.0, 0.0, 0.0, 0.0], 0.0),
    ([3.0, 1.0, 0.0, 0.0], (-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))) / np.log(4)),
  ],
)
def test_effective_rank_of_target_matches_hand_computed(spectrum, expected):
  w0 = (U_PLANT * np.array(spectrum)) @ V_PLANT.T
  res = landscape.probe(
    Toy(w0),
    planted_loss,
    [np.ones((2,), np.float32)],
    [np.ones((2,), np.float32)],
    small_cfg(grad_batches=1, eval_batches=1, grid=3),
  )
  np.testing.assert_allclose(res["metrics"]["effective_rank"], expected, atol=2e-6)
  np.testing.assert_allclose(res["singular_values"]["weight"], spectrum, atol=2e-6)


def _never_called(model, batch):
  raise AssertionError("loss_fn must not be traced before validation")


@pytest.mark.parametrize(
  "kw,match",
  [
    (dict(bulk_index=0), r"^bulk_index=0 is out of range"),
    (dict(bulk_index=-3), r"^bulk_index=-3 is out of range"),
    (dict(bulk_index=1), r"^bulk_index=1 is out of range"),
    (dict(grid=2), r"^grid=2 is out of range"),
    (dict(grad_batches=0), r"^grad_batches=0 is out of range"),
    (dict(chunk=0), r"^chunk=0 is out of range"),
    (dict(normalization="filter"), r"^normalization='filter' .* unit, spectral, frobenius"),
    (dict(alpha_range=(1.0, -1.0)), r"^alpha_range=1.0,-1.0 must be two finite numbers"),
    (dict(beta_range=(-1.0, 0.0, 1.0)), r"^beta_range=-1.0,0.0,1.0 must be two"),
    (
      dict(path="layers/9/mlp/down_proj"),
      r"^path='layers/9/mlp/down_proj' matches no 2-D .* "
      r"valid paths: mlp/down_proj/kernel \[6, 4\], "
      r"mlp/up_proj/kernel \[4, 6\], other \[4, 3\]",
    ),
    (dict(path="mlp"), r"^path='mlp' is ambiguous \(2 matches\)"),
    (dict(path="scale"), r"^path='scale' matches no"),
    (dict(path="down_pro"), r"^path='down_pro' matches no"),
    (dict(grad_batches=9), r"^grad_batches=9 but only 5 batches"),
  ],
)
def test_bad_configs_fail_before_compiling(kw, match):
  grads = [np.ones((2,), np.float32)] * 5
  with pytest.raises(ValueError, match=match):
    landscape.probe(Toy(np.ones((M, N))), _never_called, grads, grads, small_cfg(**kw))


def test_save_load_and_done(tmp_path):
  w0 = np.asarray(jax.random.normal(K[2], (M, N)), np.float64)
  res = landscape.probe(
    Toy(w0),
    planted_loss,
    [np.ones((2,), np.float32)],
    [np.ones((2,), np.float32)],
    small_cfg(grad_batches=1, eval_batches=1, grid=3),
  )
  out = str(tmp_path)
  assert not landscape.probe_done(out, 100)
  landscape.save_probe(out, 100, res)
  landscape.save_probe(out, 7, res)
  assert landscape.probe_done(out, 100) and landscape.probe_done(out, 7)
  assert sorted(os.listdir(out)) == [
    "probe_step100.json",
    "probe_step100.npz",
    "probe_step7.json",
    "probe_step7.npz",
  ]
  loaded = landscape.load_probes(out)
  assert [r["step"] for r in loaded] == [7, 100]
  assert loaded[1]["metrics"] == res["metrics"]
  np.testing.assert_array_equal(
    np.load(os.path.join(out, "probe_step7.npz"))["gradient"], res.arrays["gradient"]
  )


def _fake_probe(step, er, spike, center, g=3):
  ax = np.linspace(-1, 1, g)
  grid = center + spike / 2 * ax[:, None] + 0.1 * ax[None, :] ** 2
  return {
    "step": step,
    "path": "x/kernel",
    "alpha": ax.tolist(),
    "beta": ax.tolist(),
    "loss_grid": grid.tolist(),
    "bulk_index_used": 3,
    "metrics": {
      "effective_rank": er,
      "spike_range": spike,
      "bulk_range": 0.1,
      "center_loss": center,
    },
  }


def _write_runs(root, per_optimizer):
  """Run folders with probe files and summary.json: {opt: [[probe, ...] per seed]}."""
  from muon_jax.infra import results

  dirs = []
  for opt, seeds in per_optimizer.items():
    for k, probes in enumerate(seeds):
      d = root / opt / f"seed{k}"
      for p in probes:
        results.atomic_write_json(str(d / f"probe_step{p['step']}.json"), p)
      results.atomic_write_json(str(d / "summary.json"), {"optimizer": opt, "final_loss": 1.0})
      dirs.append(str(d))
  return dirs


# Three seeds each; Muon: higher rank, 100x smaller spike range, lower center loss.
SEEDED = {
  "adamw": [
    [_fake_probe(10, 0.5, 1.0, 3.0), _fake_probe(20, 0.60 + e, 0.8 + e, 2.5 + e)]
    for e in (0.0, 0.01, -0.02)
  ],
  "muon": [
    [_fake_probe(10, 0.7, 1.0, 2.9), _fake_probe(20, 0.80 + e, 0.008 + e / 10, 2.0 + e)]
    for e in (0.005, -0.01, 0.0)
  ],
}


def test_comparison_pairs_seeds_and_judges_by_ci(tmp_path):
  from muon_jax.paper import landscape as lx
  from muon_jax import stats

  res = lx.collect(_write_runs(tmp_path, SEEDED))
  comp = res["comparison"]
  assert comp["available"] and comp["step"] == 20 and comp["pairs"] == 3
  diffs = [0.80 + m - 0.60 - a for m, a in zip((0.005, -0.01, 0.0), (0.0, 0.01, -0.02))]
  expected = stats.mean_difference_ci(diffs)
  for key in ("mean", "ci_low", "ci_high"):
    assert comp["effective_rank"][key] == pytest.approx(expected[key])
  spike = np.log10([0.008 + m / 10 for m in (0.005, -0.01, 0.0)]) - np.log10(
    [0.8 + a for a in (0.0, 0.01, -0.02)]
  )
  assert comp["spike_range"]["mean"] == pytest.approx(np.mean(spike))
  claims = {c["id"]: c for c in lx.claims(res)}
  assert all(c["verdict"] == "holds" and c["reproduces"] for c in claims.values())
  assert lx.recompare(res)["comparison"] == comp
  # Swapping the optimizers' roles makes every claim fail in the paper's direction.
  swapped = lx.collect(
    _write_runs(tmp_path / "swap", {"adamw": SEEDED["muon"], "muon": SEEDED["adamw"]})
  )
  assert all(c["verdict"] == "does not hold" for c in lx.claims(swapped))
  # One seed each: no CI, so nothing can be claimed: untestable with this config, and why.
  single = lx.collect(_write_runs(tmp_path / "one", {k: v[:1] for k, v in SEEDED.items()}))
  for c in lx.claims(single):
    assert c["verdict"] == "untestable" and c["reproduces"] is None
    assert "a paired t CI needs two seeds" in c["measured"]


def test_claims_untestable_without_both_optimizers(tmp_path):
  from muon_jax.paper import landscape as lx

  res = lx.collect(_write_runs(tmp_path, {"adamw": SEEDED["adamw"]}))
  assert not res["comparison"]["available"]
  assert {c["verdict"] for c in lx.claims(res)} == {"untestable"}


def test_figures_plot_the_probe_numbers(tmp_path):
  from muon_jax.paper import landscape as lx
  from muon_jax.paper.figures import landscape as figures

  res = lx.collect(_write_runs(tmp_path, SEEDED))
  figs = figures.figures(res)
  er, spike, center = figs["fig3_kinematics"].axes[:3]
  assert center.get_ylabel() == "eval loss" and er.get_xlabel() == "training step"
  # Per optimizer: 3 thin seed lines, then the bold mean line.
  for i, (label, seeds) in enumerate(SEEDED.items()):
    lines = center.lines[4 * i : 4 * i + 4]
    for line, probes in zip(lines[:3], seeds):
      np.testing.assert_array_equal(line.get_ydata(), [p["metrics"]["center_loss"] for p in probes])
    np.testing.assert_allclose(
      lines[3].get_ydata(),
      np.mean([[p["metrics"]["center_loss"] for p in probes] for probes in seeds], axis=0),
    )
  surfaces = [ax for ax in figs["fig4_surfaces"].axes if ax.name == "3d"]
  assert len(surfaces) == 4  # 2 optimizers x 2 milestones
  lo = min(np.min(seeds[0][0]["loss_grid"]) for seeds in SEEDED.values())
  assert surfaces[0].get_zlim()[0] == pytest.approx(lo)


def test_training_with_and_without_probe_gives_identical_losses(tmp_path):
  from muon_jax.lm import trainer as train_lib

  probe_cfg = ProbeConfig(
    path="layers/1/mlp/down_proj", grad_batches=3, eval_batches=2, grid=3, chunk=4
  )
  base = dict(
    model="tiny",
    optimizer="muon",
    steps=4,
    global_batch=4,
    seq_len=16,
    num_devices=2,
    log_every=1,
    ckpt_every=0,
    probe_batch=2,
  )
  runs = {}
  for name, kw in (("plain", {}), ("probed", dict(probe_steps=(2,), probe=probe_cfg))):
    out = str(tmp_path / name)
    train_lib.run(train_lib.TrainConfig(out_dir=out, **base, **kw))
    runs[name] = out
  assert landscape.probe_done(runs["probed"], 2) and not landscape.probe_done(runs["plain"], 2)
  plain, probed = (train_lib.read_metrics(runs[n]) for n in ("plain", "probed"))
  assert [r["step"] for r in probed] == [1, 2, 3, 4]
  assert [r["loss"] for r in probed] == [r["loss"] for r in plain]  # bit-exact
  assert [r["grad_norm"] for r in probed] == [r["grad_norm"] for r in plain]
  res = landscape.load_probes(runs["probed"])[0]
  assert res["path"] == "layers/1/mlp/down_proj/kernel" and res["num_devices"] == 2


def _run_binary(*args):
  return run_module("experiments.landscape", *args, timeout=300)


def test_binary_draws_from_existing_runs(tmp_path):
  from muon_jax.infra import results

  dirs = _write_runs(tmp_path / "runs", SEEDED)
  out = tmp_path / "figs"
  proc = _run_binary(f"--run_dirs={','.join(dirs)}", f"--out_dir={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert {"fig3_kinematics.png", "fig4_surfaces.png", "landscape.json"} <= set(os.listdir(out))
  summary = results.load_json(str(out / "landscape.json"))
  assert [p["step"] for p in summary["runs"]["muon"][0]["probes"]] == [10, 20]
  assert [c["verdict"] for c in summary["claims"]] == ["holds"] * 3
  assert summary["runs"]["adamw"][0]["probes"][1]["center_loss"] == 2.5


@pytest.mark.parametrize(
  "args,expect",
  [
    (
      ["--probe_path=layers/9/mlp/down_proj"],
      "error: --probe_path='layers/9/mlp/down_proj' matches no 2-D parameters; valid paths: ",
    ),
    (["--probe_alpha_range=1"], "error: --probe_alpha_range=1.0 must be two finite numbers"),
    (["--probe_steps=10,400"], "error: --probe_steps=400 is after the last step steps=200"),
    (["--optimizers=lion"], "error: --optimizers='lion' is not allowed"),
  ],
)
def test_binary_bad_flags_exit_before_training(tmp_path, args, expect):
  proc = _run_binary(f"--out_dir={tmp_path}", *args)
  assert proc.returncode == 2 and proc.stderr.strip().startswith(expect), proc.stderr[-2000:]
  assert not os.path.exists(tmp_path / "adamw")  # nothing trained


def test_the_gpu_join_pairs_the_runs_of_its_member_slices(tmp_path):
  """The 160M report joins one-run slices: its claims equal a direct collect of their runs."""
  from muon_jax.paper import landscape as lx
  from muon_jax.paper import registry

  members = []
  for opt, seeds in SEEDED.items():
    for k, probes in enumerate(seeds):
      members.append(f"run_{opt}_{k}")
      work = tmp_path / members[-1] / "work"
      _write_runs(work, {opt: [probes]})
      os.rename(work / opt / "seed0", work / opt / f"seed{k}")
  join = registry.landscape_join("join", "Fig 3", {"seeds": 3}, tuple(members))
  res = join.run(registry.experiment_config(join, "gpu"), str(tmp_path / "join" / "work"), False)
  direct = lx.collect(_write_runs(tmp_path / "direct", SEEDED))
  assert res["comparison"] == direct["comparison"]
  assert [(c["id"], c["verdict"]) for c in join.claims(res)] == [
    (c["id"], c["verdict"]) for c in lx.claims(direct)
  ]
