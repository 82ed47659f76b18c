"""Muon optax transforms against a NumPy Algorithm 1, optax.contrib.muon and invariants."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax import contrib

import muon_jax as mj

SHAPES = {"a": (16, 40), "b": (40, 16), "c": (24, 24), "d": (32, 100), "e": (24, 24)}
KIMI = (3.4445, -4.7750, 2.0315)


def _params(shapes=SHAPES, seed=0):
  key = jax.random.PRNGKey(seed)
  return {
    n: jax.random.normal(jax.random.fold_in(key, i), s) for i, (n, s) in enumerate(shapes.items())
  }


def _grads(t, shapes=SHAPES):
  return _params(shapes, seed=1000 + t)


def _np_newton_schulz(x, steps=5, eps=1e-7):
  x = np.asarray(x, np.float64)
  transposed = x.shape[0] > x.shape[1]
  if transposed:
    x = x.T
  x = x / (np.linalg.norm(x) + eps)
  a, b, c = KIMI
  for _ in range(steps):
    g = x @ x.T
    x = a * x + (b * g + c * g @ g) @ x
  return x.T if transposed else x


def _rel(u, ref):
  return float(np.linalg.norm(np.asarray(u, np.float64) - ref) / np.linalg.norm(ref))


def test_default_matches_numpy_algorithm1_kimi():
  """Paper's Algorithm 1 (Kimi variant), re-implemented in float64 NumPy."""
  lr, wd, beta = 0.02, 0.1, 0.95
  params = _params()
  opt = mj.muon(lr, weight_decay=wd)
  state = opt.init(params)
  mom = {n: np.zeros(s) for n, s in SHAPES.items()}
  for t in range(10):
    g = _grads(t)
    updates, state = opt.update(g, state, params)
    for n, (m, k) in SHAPES.items():
      gn = np.asarray(g[n], np.float64)
      mom[n] = beta * mom[n] + gn
      ortho = _np_newton_schulz(gn + beta * mom[n])
      ref = -lr * (0.2 * np.sqrt(max(m, k)) * ortho + wd * np.asarray(params[n], np.float64))
      assert _rel(updates[n], ref) <= 1e-5, (t, n)


def test_optax_momentum_matches_optax_contrib_muon():
  params = _params()
  ours = mj.muon(0.1, momentum="optax", eps=1e-8, coeffs=KIMI, steps=5)
  ref = contrib.muon(0.1, ns_coeffs=KIMI, ns_steps=5, eps=1e-8, nesterov=True, consistent_rms=0.2)
  s1, s2 = ours.init(params), ref.init(params)
  step1, step2 = jax.jit(ours.update), jax.jit(ref.update)
  for t in range(10):
    g = _grads(t)
    u1, s1 = step1(g, s1, params)
    u2, s2 = step2(g, s2, params)
    for n in SHAPES:
      assert _rel(u1[n], np.asarray(u2[n], np.float64)) <= 1e-5, (t, n)


def test_paper_and_optax_momentum_differ_early():
  """Guards the reason both forms exist: they are not the same direction."""
  params = _params()
  a = mj.scale_by_muon(momentum="paper")
  b = mj.scale_by_muon(momentum="optax")
  sa, sb = a.init(params), b.init(params)
  u_a, sa = a.update(_grads(0), sa)
  u_b, sb = b.update(_grads(0), sb)
  diffs = []
  for t in range(1, 3):
    u_a, sa = a.update(_grads(t), sa)
    u_b, sb = b.update(_grads(t), sb)
    diffs.append(_rel(u_a["c"], np.asarray(u_b["c"], np.float64)))
  assert max(diffs) > 0.05


def test_stack_equals_loop_and_one_ns_call_per_shape_group():
  params = _params()
  g = _grads(0)
  stack = mj.scale_by_muon(batching="stack")
  loop = mj.scale_by_muon(batching="loop")
  u_s, _ = stack.update(g, stack.init(params))
  u_l, _ = loop.update(g, loop.init(params))
  for n in SHAPES:
    np.testing.assert_allclose(u_s[n], u_l[n], atol=1e-6)

  def count_ns_calls(tx):
    jaxpr = jax.make_jaxpr(lambda gr, st: tx.update(gr, st))(g, tx.init(params))
    return sum(1 for eqn in jaxpr.eqns if eqn.params.get("name") == "_newton_schulz")

  n_groups = len({(s, "float32") for s in SHAPES.values()})
  assert count_ns_calls(stack) == n_groups == 4
  assert count_ns_calls(loop) == len(SHAPES)


def test_explicit_batch_dims_orthogonalize_each_slice():
  params = {"w": jax.random.normal(jax.random.PRNGKey(0), (3, 8, 20))}
  tx = mj.scale_by_muon(dimension_numbers=mj.MuonDimensionNumbers(-2, -1))
  u, _ = tx.update(params, tx.init(params))
  for i in range(3):
    single = {"w": params["w"][i]}
    ui, _ = mj.scale_by_muon().update(single, mj.scale_by_muon().init(single))
    np.testing.assert_allclose(u["w"][i], ui["w"], atol=1e-6)


def test_under_jit_and_in_chain_with_clipping():
  params = _params()
  tx = optax.chain(optax.clip_by_global_norm(1.0), mj.muon(0.02))
  state = tx.init(params)
  step = jax.jit(tx.update)
  u_jit, _ = step(_grads(0), state, params)
  u_eager, _ = tx.update(_grads(0), state, params)
  for n in SHAPES:
    np.testing.assert_allclose(u_jit[n], u_eager[n], atol=1e-6)


def test_under_pmap_with_pmean_of_grads():
  n_dev = jax.local_device_count()
  assert n_dev == 8, "conftest should emulate 8 CPU devices"
  params = _params()
  tx = mj.muon(0.02)
  state = tx.init(params)
  g_per_dev = {
    n: jax.random.normal(jax.random.PRNGKey(i), (n_dev, *s))
    for i, (n, s) in enumerate(SHAPES.items())
  }

  def step(g, st, p):
    g = jax.lax.pmean(g, "d")
    return tx.update(g, st, p)

  rep = lambda t: jax.tree.map(lambda x: jnp.broadcast_to(x, (n_dev, *x.shape)), t)
  u, _ = jax.pmap(step, axis_name="d")(g_per_dev, rep(state), rep(params))
  mean_g = jax.tree.map(lambda x: x.mean(0), g_per_dev)
  u_ref, _ = tx.update(mean_g, state, params)
  for n in SHAPES:
    np.testing.assert_allclose(u[n][0], u_ref[n], atol=2e-6)
    np.testing.assert_allclose(u[n][7], u[n][0], atol=0)


def test_inject_hyperparams_and_schedule():
  params = _params()
  tx = optax.inject_hyperparams(mj.muon)(learning_rate=0.02)
  state = tx.init(params)
  u, state = jax.jit(tx.update)(_grads(0), state, params)
  assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.02)
  ref, _ = mj.muon(0.02).update(_grads(0), mj.muon(0.02).init(params), params)
  for n in SHAPES:
    np.testing.assert_allclose(u[n], ref[n], atol=1e-6)
  sched = optax.linear_schedule(0.02, 0.0, 10)
  tx = mj.muon(sched)
  u, _ = tx.update(_grads(0), tx.init(params), params)
  for n in SHAPES:
    np.testing.assert_allclose(u[n], ref[n], atol=1e-7)


def test_scalings_and_dtypes():
  assert mj.muon.__module__ == "muon_jax.transform"
  from muon_jax.transform import shape_scale

  assert shape_scale((768, 3072), "kimi") == pytest.approx(0.2 * np.sqrt(3072))
  # JAX layout (fan_in, fan_out): Keller's sqrt(rows/cols) on PyTorch's (out, in).
  assert shape_scale((768, 3072), "keller") == pytest.approx(2.0)
  assert shape_scale((3072, 768), "keller") == 1.0
  assert shape_scale((3, 3, 16, 576), "keller") == pytest.approx(2.0)
  params = {"w": jnp.ones((8, 16), jnp.bfloat16) * jnp.arange(16, dtype=jnp.bfloat16)}
  tx = mj.scale_by_muon(mu_dtype=jnp.float32, ns_dtype=jnp.bfloat16)
  state = tx.init(params)
  assert state.mu["w"].dtype == jnp.float32
  u, state = tx.update(params, state)
  assert u["w"].dtype == jnp.bfloat16 and state.mu["w"].dtype == jnp.float32


def test_muon_with_adamw_routes_by_path():
  params = {
    "embed": {"embedding": jnp.ones((50, 8))},
    "layers": [
      {"attn": {"q_proj": {"kernel": jnp.ones((8, 8))}}, "norm": {"scale": jnp.ones((8,))}}
    ],
    "lm_head": {"kernel": jnp.ones((8, 50))},
  }
  labels = mj.muon_labels(params)
  assert labels["embed"]["embedding"] == "adamw"
  assert labels["layers"][0]["attn"]["q_proj"]["kernel"] == "muon"
  assert labels["layers"][0]["norm"]["scale"] == "adamw"
  assert labels["lm_head"]["kernel"] == "adamw"
  tx = mj.muon_with_adamw(0.02, adam_learning_rate=1e-3)
  state = tx.init(params)
  grads = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(0), p.shape), params)
  u, _ = tx.update(grads, state, params)
  ref_adam, _ = optax.adamw(1e-3, weight_decay=0.0).update(
    grads["lm_head"], optax.adamw(1e-3, weight_decay=0.0).init(params["lm_head"]), params["lm_head"]
  )
  np.testing.assert_allclose(u["lm_head"]["kernel"], ref_adam["kernel"], atol=1e-7)
  q = {"w": params["layers"][0]["attn"]["q_proj"]["kernel"]}
  g_q = {"w": grads["layers"][0]["attn"]["q_proj"]["kernel"]}
  ref_muon, _ = mj.muon(0.02).update(g_q, mj.muon(0.02).init(q), q)
  np.testing.assert_allclose(u["layers"][0]["attn"]["q_proj"]["kernel"], ref_muon["w"], atol=1e-7)


@pytest.mark.parametrize(
  "make, match",
  [
    (lambda: mj.muon(0.1).init({}), "empty pytree"),
    (
      lambda: mj.muon(0.1).init({"w": jnp.ones((4, 4)), "b": jnp.ones(4)}),
      "leaf 'b'.*muon_with_adamw",
    ),
    (lambda: mj.muon(0.1, coeffs="bogus"), "coeffs: unknown preset"),
    (lambda: mj.muon(0.1, steps=0), "steps must be an integer >= 1"),
    (lambda: mj.muon(0.1, beta=1.0), r"beta=1.0 is out of range; allowed \[0.0, 1.0\)"),
    (lambda: mj.muon(0.1, beta=-0.1), "beta=-0.1 is out of range"),
    (lambda: mj.muon(-0.1), "learning_rate=-0.1 is out of range"),
    (lambda: mj.muon(0.1, scaling="huge"), "scaling must be one of"),
    (lambda: mj.muon(0.1, momentum="adam"), "momentum must be one of"),
  ],
)
def test_bad_input_raises_clear_errors(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_import_alone_without_models_or_data():
  """Other people's loops import the optimizer alone: no flax/data imports pulled in."""
  code = textwrap.dedent("""
      import sys, muon_jax
      bad = [m for m in ("flax", "datasets", "muon_jax.paper.saddle", "muon_jax.models") if m in sys.modules]
      assert not bad, bad
  """)
  subprocess.run([sys.executable, "-c", code], check=True)


def _run(tx, grads_seq, params):
  state = tx.init(params)
  step = jax.jit(tx.update)
  out = []
  for g in grads_seq:
    u, state = step(g, state, params)
    out.append(u)
  return out, state


def _assert_same_updates(ours, ref, tol=1e-5):
  for t, (a, b) in enumerate(zip(ours, ref)):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
      assert _rel(x, np.asarray(y, np.complex128 if np.iscomplexobj(y) else np.float64)) <= tol, (
        t,
        path,
      )


def test_keller_scaling_uses_jax_in_out_layout_like_optax_default():
  # Non-square kernels both ways: optax's default width scaling is
  # sqrt(max(1, fan_out / fan_in)) on (fan_in, fan_out) kernels.
  shapes = {"wide": (16, 64), "tall": (64, 16)}
  params = _params(shapes)
  grads = [_grads(t, shapes) for t in range(3)]
  ours, _ = _run(mj.muon(0.1, scaling="keller", momentum="optax", eps=1e-8), grads, params)
  ref, _ = _run(contrib.muon(0.1), grads, params)
  _assert_same_updates(ours, ref)
  # wide (16 -> 64) gets sqrt(64/16) = 2 on top of the orthogonal factor.
  assert float(jnp.linalg.norm(ours[0]["wide"], ord=2)) == pytest.approx(0.2, rel=0.25)


PARITY_SHAPES = {"a": (16, 40), "b": (40, 16), "c": (24, 24)}


@pytest.mark.parametrize(
  "preconditioning, adaptive, nesterov",
  [
    ("frobenius", True, False),
    ("spectral", False, True),
    ("aol", True, True),
    ("schatten", False, False),
  ],
)
def test_preconditioning_and_adaptive_match_optax(preconditioning, adaptive, nesterov):
  params = _params(PARITY_SHAPES)
  grads = [_grads(t, PARITY_SHAPES) for t in range(3)]
  ours, _ = _run(
    mj.muon(
      0.1,
      scaling="kimi",
      kimi_rms=0.3,
      momentum="optax",
      eps=1e-8,
      preconditioning=preconditioning,
      adaptive=adaptive,
      nesterov=nesterov,
      coeffs="dion",
    ),
    grads,
    params,
  )
  ref, _ = _run(
    contrib.muon(
      0.1,
      consistent_rms=0.3,
      preconditioning=preconditioning,
      adaptive=adaptive,
      nesterov=nesterov,
      ns_coeffs="dion",
    ),
    grads,
    params,
  )
  _assert_same_updates(ours, ref)


def test_conv_kernel_default_flattens_spatial_axes_into_fan_in():
  shapes = {"conv": (3, 3, 16, 32)}
  params = _params(shapes)
  grads = [_grads(t, shapes) for t in range(2)]
  ours, _ = _run(mj.muon(0.1, scaling="keller", momentum="optax", eps=1e-8), grads, params)
  dims = contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)
  ref, _ = _run(contrib.muon(0.1, muon_weight_dimension_numbers={"conv": dims}), grads, params)
  _assert_same_updates(ours, ref)
  # The flattened 144x32 update is orthogonal up to the kimi band, unlike
  # nine separately orthogonalized 16x32 slices.
  sv = np.linalg.svd(np.asarray(ours[0]["conv"]).reshape(144, 32), compute_uv=False)
  assert sv.max() / sv.min() < 1.7


def test_dimension_numbers_tree_callable_and_optax_class_agree():
  shapes = {"stack": (4, 12, 20), "mat": (20, 12)}
  params = _params(shapes)
  g = _grads(0, shapes)
  batch = mj.MuonDimensionNumbers(reduction_axis=1, output_axis=2)
  as_tree = mj.scale_by_muon(dimension_numbers={"stack": batch, "mat": mj.MuonDimensionNumbers()})
  as_fn = mj.scale_by_muon(dimension_numbers=lambda p: {"stack": batch, "mat": None})
  as_optax = mj.scale_by_muon(
    dimension_numbers={
      "stack": contrib.MuonDimensionNumbers(1, 2),
      "mat": contrib.MuonDimensionNumbers(0, 1),
    }
  )
  outs = [tx.update(g, tx.init(params))[0] for tx in (as_tree, as_fn, as_optax)]
  for other in outs[1:]:
    for n in shapes:
      np.testing.assert_allclose(other[n], outs[0][n], atol=1e-7)
  # Batch axis 0: slice i is the 12x20 update of slice i alone.
  tx = mj.scale_by_muon()
  single = {"w": g["stack"][2]}
  np.testing.assert_allclose(
    outs[0]["stack"][2], tx.update(single, tx.init(single))[0]["w"], atol=1e-6
  )
  with pytest.raises(ValueError, match="dimension_numbers: reduction"):
    mj.scale_by_muon(dimension_numbers=mj.MuonDimensionNumbers(1, 1)).init(params)


def test_complex_leaf_gives_unitary_polar_factor_and_nan_shows():
  kr, ki = jax.random.split(jax.random.PRNGKey(3))
  g = {
    "w": (jax.random.normal(kr, (12, 20)) + 1j * jax.random.normal(ki, (12, 20))).astype(
      jnp.complex64
    )
  }
  tx = mj.scale_by_muon(coeffs="polar_express", steps=10, scaling="none")
  u, state = tx.update(g, tx.init(g))
  assert u["w"].dtype == jnp.complex64 and state.mu["w"].dtype == jnp.complex64
  np.testing.assert_allclose(u["w"], np.asarray(mj.polar_svd(g["w"])), atol=5e-3)
  bad = {"w": g["w"].at[0, 0].set(jnp.nan)}
  u_bad, _ = tx.update(bad, tx.init(bad))
  assert bool(jnp.all(jnp.isnan(u_bad["w"])))


def _np_keller_muon(grads_seq, beta=0.95, eps=1e-7):
  """Jordan's Muon `muon_update` (KellerJordan/Muon) in float64, on (out, in) arrays."""
  mom, out = None, []
  for g in grads_seq:
    g = np.asarray(g, np.float64)
    mom = (1 - beta) * g if mom is None else mom + (1 - beta) * (g - mom)  # lerp_(grad, 1-beta)
    x = g + beta * (mom - g)  # grad.lerp_(mom, beta)
    transposed = x.shape[0] > x.shape[1]
    x = x.T if transposed else x
    x = x / (np.linalg.norm(x) + eps)
    for _ in range(5):
      a = x @ x.T
      x = KIMI[0] * x + (KIMI[1] * a + KIMI[2] * a @ a) @ x
    x = x.T if transposed else x
    out.append(x * max(1, x.shape[0] / x.shape[1]) ** 0.5)
  return out


def test_keller_momentum_reaches_reference_with_tiny_gradients():
  # Gradients of size 1e-6: eps = 1e-7 on the NS input's norm is no longer
  # negligible, so the momentum form's scale shows.
  shape_in_out = (16, 40)
  grads = [{"w": 1e-6 * jax.random.normal(jax.random.PRNGKey(t), shape_in_out)} for t in range(4)]
  ref = _np_keller_muon([np.asarray(g["w"]).T for g in grads])  # PyTorch weight = kernel.T
  params = {"w": jnp.zeros(shape_in_out)}
  keller, _ = _run(mj.scale_by_muon(momentum="keller", scaling="keller"), grads, params)
  paper, _ = _run(mj.scale_by_muon(momentum="paper", scaling="keller"), grads, params)
  for t in range(4):
    assert _rel(keller[t]["w"], ref[t].T) <= 1e-5, t
  assert _rel(paper[0]["w"], ref[0].T) > 1e-2


def test_inject_hyperparams_muon_with_adamw():
  params = {"w": jax.random.normal(jax.random.PRNGKey(0), (8, 12)), "b": jnp.arange(12.0)}
  g = jax.tree.map(lambda p: jnp.cos(p + 1.0), params)
  tx = optax.inject_hyperparams(mj.muon_with_adamw)(learning_rate=0.02, adam_learning_rate=1e-3)
  state = tx.init(params)
  u, state = jax.jit(tx.update)(g, state, params)
  assert float(state.hyperparams["adam_learning_rate"]) == pytest.approx(1e-3)
  plain = mj.muon_with_adamw(0.02, adam_learning_rate=1e-3)
  ref, _ = plain.update(g, plain.init(params), params)
  for n in params:
    np.testing.assert_allclose(u[n], ref[n], rtol=1e-5, atol=1e-8)


def test_muon_with_adamw_passes_adam_options():
  params = {"w": jnp.ones((8, 12)), "b": jnp.linspace(-1.0, 1.0, 12)}
  grads = [jax.tree.map(lambda p, t=t: jnp.sin(p * (t + 1.0)), params) for t in range(3)]
  kw = {
    "b1": 0.8,
    "b2": 0.99,
    "eps": 1e-6,
    "eps_root": 1e-3,
    "mu_dtype": jnp.bfloat16,
    "nesterov": True,
  }
  tx = mj.muon_with_adamw(
    0.02,
    adam_learning_rate=1e-2,
    adam_b1=0.8,
    adam_b2=0.99,
    adam_eps=1e-6,
    adam_eps_root=1e-3,
    adam_mu_dtype=jnp.bfloat16,
    adam_nesterov=True,
  )
  ours, state = _run(tx, grads, params)
  ref, _ = _run(
    optax.adamw(1e-2, weight_decay=0.0, **kw), [{"b": g["b"]} for g in grads], {"b": params["b"]}
  )
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a["b"], b["b"], rtol=1e-6)
  adam_mu = [x for x in jax.tree.leaves(state) if x.shape == (12,) and x.dtype == jnp.bfloat16]
  assert adam_mu, "adam_mu_dtype did not reach AdamW's first moment"


def test_routing_of_conv_models_is_visible_and_steerable():
  cnn = {
    "Conv_0": {"kernel": jnp.ones((3, 3, 3, 16)), "bias": jnp.zeros(16)},
    "Conv_1": {"kernel": jnp.ones((3, 3, 16, 32)), "bias": jnp.zeros(32)},
  }
  tx = mj.muon_with_adamw(0.02)
  state = tx.init(cnn)
  labels = mj.muon_labels(cnn)
  assert labels["Conv_1"]["kernel"] == "muon" and labels["Conv_1"]["bias"] == "adamw"
  u, _ = tx.update(cnn, state, cnn)
  assert u["Conv_1"]["kernel"].shape == (3, 3, 16, 32)
  table = mj.describe_routing(cnn).splitlines()
  assert len(table) == 1 + 4
  assert table[1].split() == ["Conv_0/bias", "(16,)", "adamw"]
  assert table[2].split() == ["Conv_0/kernel", "(3,", "3,", "3,", "16)", "muon", "27x16"]
  # Kernels under names without "conv" are not guessed: the error names them.
  unnamed = {"c1": {"kernel": jnp.ones((3, 3, 3, 16))}, "norm": {"scale": jnp.ones(16)}}
  with pytest.raises(
    ValueError, match=r"muon_mask: no leaf was routed to Muon.*'c1/kernel' \(3, 3, 3, 16\)"
  ):
    mj.muon_with_adamw(0.02).init(unnamed)
  steered = mj.muon_with_adamw(0.02, muon_mask=lambda path, leaf: jnp.ndim(leaf) >= 2)
  assert "muon" in mj.describe_routing(unnamed, lambda path, leaf: jnp.ndim(leaf) >= 2)
  steered.init(unnamed)


def test_linen_cnn_under_muon_with_adamw():
  nn = pytest.importorskip("flax.linen")

  class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Conv(8, (3, 3))(x))
      return nn.Conv(16, (3, 3))(x).mean(axis=(1, 2))

  params = CNN().init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 3)))
  tx = mj.muon_with_adamw(0.02)
  u, _ = jax.jit(tx.update)(params, tx.init(params), params)
  labels = mj.muon_labels(params)["params"]
  assert labels["Conv_1"]["kernel"] == "muon" and labels["Conv_1"]["bias"] == "adamw"
  # The 4-D kernel's update is one orthogonal (3*3*8, 16) matrix, up to the kimi band.
  sv = np.linalg.svd(np.asarray(u["params"]["Conv_1"]["kernel"]).reshape(72, 16), compute_uv=False)
  assert sv.max() / sv.min() < 1.7
