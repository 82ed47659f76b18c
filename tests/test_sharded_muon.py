"""Sharded Newton–Schulz: same updates as replicated Muon, FLOP-balanced plan."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import muon_jax as mj
from muon_jax import sharded_muon
from muon_jax.lm import trainer as tr
from muon_jax.newton_schulz import ns_flops

AXIS = "d"
N_DEV = 8
# Mixed shapes: wide, tall, square, a stacked (3, m, n) group, a 1-D bias and
# an embedding (the last two go to AdamW in muon_with_adamw).
SHAPES = {
  "wide": (16, 40),
  "tall": (48, 12),
  "square": (24, 24),
  "stack": (3, 20, 36),
  "bias": (20,),
  "embed": (30, 16),
}


def _tree(shapes, seed):
  key = jax.random.key(seed)
  return {
    n: jax.random.normal(jax.random.fold_in(key, i), s) for i, (n, s) in enumerate(shapes.items())
  }


def _run_steps(tx, params, grads_per_step):
  """Applies `tx` under pmap over N_DEV devices with the same grads on every device."""

  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s, u

  f = jax.pmap(step, axis_name=AXIS, devices=jax.devices()[:N_DEV])
  stack = lambda t: jax.tree.map(lambda x: jnp.broadcast_to(x, (N_DEV,) + x.shape), t)
  p, s = stack(params), stack(tx.init(params))
  updates = []
  for g in grads_per_step:
    p, s, u = f(p, s, stack(g))
    updates.append(jax.tree.map(lambda x: np.asarray(x), u))
  return jax.tree.map(np.asarray, p), updates


def _assert_close(a, b, atol):
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("momentum", ["paper", "optax"])
def test_sharded_equals_replicated_on_mixed_tree(momentum):
  params = _tree(SHAPES, 0)
  grads = [_tree(SHAPES, 100 + t) for t in range(4)]
  kw = {"muon_weight_decay": 0.1, "adam_weight_decay": 0.1, "momentum": momentum}
  p_rep, u_rep = _run_steps(mj.muon_with_adamw(0.02, **kw), params, grads)
  p_sh, u_sh = _run_steps(
    sharded_muon.muon_with_adamw(0.02, axis_name=AXIS, num_devices=N_DEV, **kw), params, grads
  )
  for ur, us in zip(u_rep, u_sh):
    _assert_close(us, ur, 1e-6)
    # Every device ends with the same (all-gathered) update.
    for leaf in jax.tree.leaves(us):
      np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[0], leaf.shape))
  _assert_close(p_sh, p_rep, 1e-6)


def test_sharded_state_tree_equals_replicated():
  params = _tree(SHAPES, 0)
  rep = mj.muon_with_adamw(0.02)
  sh = sharded_muon.muon_with_adamw(0.02, axis_name=AXIS, num_devices=N_DEV)
  assert jax.tree.structure(rep.init(params)) == jax.tree.structure(sh.init(params))


def test_plan_is_flop_balanced_and_complete():
  shapes = [(64, 64)] * 5 + [(4, 32, 128), (256, 64), (16, 16)]
  # The matrices Muon makes of them (a 3-D leaf flattens its leading axes: 4 * 32 x 128).
  matrices = [(64, 64)] * 5 + [(128, 128), (256, 64), (16, 16)]
  plan = sharded_muon.balance(shapes, N_DEV)
  assert sorted(i for p in plan for i in p) == list(range(len(shapes)))  # every leaf once
  flops = sharded_muon.plan_flops(plan, shapes)
  total = sum(ns_flops(m) for m in matrices)
  assert sum(flops) == total
  biggest = max(ns_flops(m) for m in matrices)
  # LPT: no device exceeds the mean share by more than one matrix.
  assert max(flops) <= total / N_DEV + biggest
  with pytest.raises(ValueError, match="^num_devices=0"):
    sharded_muon.balance(shapes, 0)


def test_trainer_step_sharded_equals_replicated():
  """muon_with_adamw on the tiny LLaMA through the trainer's pmapped step, 3 steps."""
  cfg = dataclasses.replace(tr.TrainConfig(), seq_len=16, global_batch=16, steps=3)
  devices = jax.devices()[:N_DEV]
  graphdef, params = tr.init_params(tr.model_config(cfg, 257), jax.random.key(0))
  batches = [
    np.asarray(jax.random.randint(jax.random.key(10 + t), (16, 17), 0, 257), np.int32)
    for t in range(3)
  ]
  out = {}
  for shard in (False, True):
    c = dataclasses.replace(cfg, shard_muon=shard)
    opt = tr.build_optimizer(c, N_DEV)
    step_fn = tr.data_parallel(tr.make_train_step(graphdef, opt, c), devices)
    p, s = tr.replicate(params, devices), tr.replicate(opt.init(params), devices)
    for t, b in enumerate(batches):
      p, s, _ = step_fn(p, s, jnp.int32(t + 1), tr.split_batch(b, N_DEV, 2))
    out[shard] = (tr.unreplicate(p), tr.unreplicate(s))
  _assert_close(out[True][0], out[False][0], 1e-6)
  _assert_close(out[True][1], out[False][1], 1e-6)


def test_wrapper_alone_with_more_devices_than_matrices():
  """scale_by_muon wrapped on its own; 3 matrices over 8 devices leaves 5 idle."""
  shapes = {"a": (8, 16), "s": (2, 12, 20)}
  params = _tree(shapes, 1)
  grads = [_tree(shapes, 200 + t) for t in range(3)]
  _, u_rep = _run_steps(mj.scale_by_muon(), params, grads)
  _, u_sh = _run_steps(
    sharded_muon.shard_across_devices(mj.scale_by_muon(), AXIS, N_DEV), params, grads
  )
  for ur, us in zip(u_rep, u_sh):
    _assert_close(us, ur, 1e-6)
