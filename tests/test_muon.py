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
  return {n: jax.random.normal(jax.random.fold_in(key, i), s) for i, (n, s) in enumerate(shapes.items())}


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
  for t in range(10):
    g = _grads(t)
    u1, s1 = ours.update(g, s1, params)
    u2, s2 = ref.update(g, s2, params)
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


def test_leading_dims_are_batch_dims():
  params = {"w": jax.random.normal(jax.random.PRNGKey(0), (3, 8, 20))}
  tx = mj.scale_by_muon()
  u, _ = tx.update(params, tx.init(params))
  for i in range(3):
    single = {"w": params["w"][i]}
    ui, _ = tx.update(single, tx.init(single))
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
  g_per_dev = {n: jax.random.normal(jax.random.PRNGKey(i), (n_dev, *s)) for i, (n, s) in enumerate(SHAPES.items())}

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
  assert mj.muon.__module__ == "muon_jax.muon"
  from muon_jax.muon import shape_scale
  assert shape_scale((768, 3072), "kimi") == pytest.approx(0.2 * np.sqrt(3072))
  assert shape_scale((3072, 768), "keller") == pytest.approx(2.0)
  assert shape_scale((768, 3072), "keller") == 1.0
  params = {"w": jnp.ones((8, 16), jnp.bfloat16) * jnp.arange(16, dtype=jnp.bfloat16)}
  tx = mj.scale_by_muon(mu_dtype=jnp.float32, ns_dtype=jnp.bfloat16)
  state = tx.init(params)
  assert state.mu["w"].dtype == jnp.float32
  u, state = tx.update(params, state)
  assert u["w"].dtype == jnp.bfloat16 and state.mu["w"].dtype == jnp.float32


def test_muon_with_adamw_routes_by_path():
  params = {
      "embed": {"embedding": jnp.ones((50, 8))},
      "layers": [{"attn": {"q_proj": {"kernel": jnp.ones((8, 8))}},
                  "norm": {"scale": jnp.ones((8,))}}],
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
      grads["lm_head"], optax.adamw(1e-3, weight_decay=0.0).init(params["lm_head"]), params["lm_head"])
  np.testing.assert_allclose(u["lm_head"]["kernel"], ref_adam["kernel"], atol=1e-7)
  q = {"w": params["layers"][0]["attn"]["q_proj"]["kernel"]}
  g_q = {"w": grads["layers"][0]["attn"]["q_proj"]["kernel"]}
  ref_muon, _ = mj.muon(0.02).update(g_q, mj.muon(0.02).init(q), q)
  np.testing.assert_allclose(u["layers"][0]["attn"]["q_proj"]["kernel"], ref_muon["w"], atol=1e-7)


@pytest.mark.parametrize("make, match", [
    (lambda: mj.muon(0.1).init({}), "empty pytree"),
    (lambda: mj.muon(0.1).init({"w": jnp.ones((4, 4)), "b": jnp.ones(4)}), "leaf 'b'.*muon_with_adamw"),
    (lambda: mj.muon(0.1, coeffs="bogus"), "unknown coeffs preset"),
    (lambda: mj.muon(0.1, steps=0), "steps must be an integer >= 1"),
    (lambda: mj.muon(0.1, beta=1.0), r"beta=1.0 is out of range; allowed \[0.0, 1.0\)"),
    (lambda: mj.muon(0.1, beta=-0.1), "beta=-0.1 is out of range"),
    (lambda: mj.muon(-0.1), "learning_rate=-0.1 is out of range"),
    (lambda: mj.muon(0.1, scaling="huge"), "scaling must be one of"),
    (lambda: mj.muon(0.1, momentum="adam"), "momentum must be one of"),
])
def test_bad_input_raises_clear_errors(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_import_alone_without_models_or_data():
  """Other people's loops import the optimizer alone: no flax/data imports pulled in."""
  code = textwrap.dedent("""
      import sys, muon_jax
      bad = [m for m in ("flax", "datasets", "muon_jax.saddle", "muon_jax.models") if m in sys.modules]
      assert not bad, bad
  """)
  subprocess.run([sys.executable, "-c", code], check=True)
