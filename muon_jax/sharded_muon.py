"""Muon with its Newton–Schulz work split across data-parallel devices.

Under pmap data parallelism every device holds the same averaged gradient, so
a plain `scale_by_muon` repeats all of the Newton–Schulz (NS) work on each of
D devices. `shard_across_devices` wraps a `scale_by_muon` transform so that
each device runs it on a FLOP-balanced 1/D share of the Muon matrices and the
results are all-gathered (as modded-nanogpt and Dion do):

  1. every (m, n) matrix -- each slice of a stacked (..., m, n) leaf is its
     own matrix -- is assigned to a device by longest-processing-time
     greedy on `newton_schulz.ns_flops`, a static plan computed at trace time;
  2. device d runs the wrapped transform on its matrices only (a
     `lax.switch` on the axis index, so only that branch executes);
  3. the orthogonalized updates and the new momenta of every device are
     packed into one flat float32 buffer, all-gathered over the axis and
     unpacked in the original tree layout.

The wrapped transform's update of one leaf must depend on that leaf alone and
its state must be `ScaleByMuonState` (true of `scale_by_muon`), so the
sharded updates equal the replicated ones and the state tree is unchanged: a
checkpoint written with sharding restores without it and vice versa.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

# The package re-exports the functions `muon` and `newton_schulz`; bind the modules.
muon_lib = importlib.import_module("muon_jax.muon")
ns = importlib.import_module("muon_jax.newton_schulz")


class Unit(NamedTuple):
  """One matrix: leaf index, index of the slice in the leaf's leading dims."""
  leaf: int
  index: tuple[int, ...]


def balance(shapes: list[tuple[int, ...]], num_devices: int, ns_steps: int = 5,
            method: str = "auto") -> list[list[Unit]]:
  """Static FLOP-balanced plan: the matrices each device orthogonalizes.

  Args:
    shapes: leaf shapes, each (..., m, n); leading dims are separate matrices.
    num_devices: devices to split over (>= 1).
    ns_steps, method: as in `newton_schulz.ns_flops` (the cost model).

  Returns:
    num_devices lists of `Unit`s; every matrix appears in exactly one list.
    Longest-processing-time greedy: largest matrices first, each to the
    currently least-loaded device (ties to the lowest index).
  """
  if num_devices < 1:
    raise ValueError(f"num_devices={num_devices} must be >= 1")
  units = [(ns.ns_flops(s[-2:], ns_steps, method), Unit(i, idx))
           for i, s in enumerate(shapes) for idx in np.ndindex(*s[:-2])]
  order = sorted(range(len(units)), key=lambda k: -units[k][0])  # stable: ties keep tree order
  plan, load = [[] for _ in range(num_devices)], [0] * num_devices
  for k in order:
    d = min(range(num_devices), key=lambda j: (load[j], j))
    plan[d].append(units[k][1])
    load[d] += units[k][0]
  return [sorted(p) for p in plan]


def plan_flops(plan: list[list[Unit]], shapes: list[tuple[int, ...]], ns_steps: int = 5,
               method: str = "auto") -> list[int]:
  """NS FLOPs each device runs under `plan` (the replicated cost is their sum)."""
  return [sum(ns.ns_flops(shapes[u.leaf][-2:], ns_steps, method) for u in units)
          for units in plan]


def shard_across_devices(inner: optax.GradientTransformation, axis_name: str,
                         num_devices: int, *, ns_steps: int = 5,
                         method: str = "auto") -> optax.GradientTransformation:
  """Runs `inner` (a `scale_by_muon`) on a 1/num_devices share per device.

  Args:
    inner: a `muon.scale_by_muon(...)` transform (per-leaf updates,
      `ScaleByMuonState` state).
    axis_name: the pmap / shard_map axis the update runs under; its size
      must be `num_devices`.
    num_devices: devices along `axis_name`.
    ns_steps, method: the NS settings of `inner`, used only to balance FLOPs.

  Returns:
    An optax.GradientTransformation with `inner`'s init and state; its
    update must be called inside the named axis and returns the same updates
    as `inner` on every device.
  """
  if num_devices < 1:
    raise ValueError(f"num_devices={num_devices} must be >= 1")

  def update_fn(updates, state, params=None):
    del params
    leaves, treedef = jax.tree_util.tree_flatten(updates)
    mu_leaves = treedef.flatten_up_to(state.mu)
    shapes = [tuple(x.shape) for x in leaves]
    plan = balance(shapes, num_devices, ns_steps, method)
    sizes = [math.prod(s[-2:]) for s in shapes]
    # Each device's buffer: its updates then its momenta, padded to the longest.
    lengths = [2 * sum(sizes[u.leaf] for u in units) for units in plan]
    width = max(max(lengths), 1)

    def branch(units):
      def run(leaves, mu_leaves, count):
        if not units:
          return jnp.zeros((width,), jnp.float32), optax.safe_increment(count)
        mine = {str(k): leaves[u.leaf][u.index] for k, u in enumerate(units)}
        mine_mu = {str(k): mu_leaves[u.leaf][u.index] for k, u in enumerate(units)}
        out, new_state = inner.update(mine, muon_lib.ScaleByMuonState(count=count, mu=mine_mu))
        keys = [str(k) for k in range(len(units))]
        flat = [out[k].astype(jnp.float32).ravel() for k in keys]
        flat += [new_state.mu[k].astype(jnp.float32).ravel() for k in keys]
        buf = jnp.concatenate(flat)
        return jnp.pad(buf, (0, width - buf.shape[0])), new_state.count
      return run

    buf, count = jax.lax.switch(jax.lax.axis_index(axis_name), [branch(u) for u in plan],
                                leaves, mu_leaves, state.count)
    gathered_DxW = jax.lax.all_gather(buf, axis_name)
    pieces = {}  # (kind, leaf, index) -> flat slice of the gathered buffer
    for d, units in enumerate(plan):
      offset = 0
      for kind in ("update", "mu"):
        for u in units:
          pieces[(kind, u.leaf, u.index)] = gathered_DxW[d, offset:offset + sizes[u.leaf]]
          offset += sizes[u.leaf]

    def assemble(kind, leaf, dtype):
      shape = shapes[leaf]
      mats = [pieces[(kind, leaf, idx)].reshape(shape[-2:]).astype(dtype)
              for idx in np.ndindex(*shape[:-2])]
      return jnp.stack(mats).reshape(shape) if len(shape) > 2 else mats[0]

    new_updates = [assemble("update", i, x.dtype) for i, x in enumerate(leaves)]
    new_mu_leaves = [assemble("mu", i, m.dtype) for i, m in enumerate(mu_leaves)]
    return (jax.tree_util.tree_unflatten(treedef, new_updates),
            muon_lib.ScaleByMuonState(count=count,
                                      mu=jax.tree_util.tree_unflatten(treedef, new_mu_leaves)))

  return optax.GradientTransformation(inner.init, update_fn)


def muon_with_adamw(learning_rate: optax.ScalarOrSchedule, *, axis_name: str, num_devices: int,
                    adam_learning_rate: optax.ScalarOrSchedule | None = None,
                    adam_b1: float = 0.9, adam_b2: float = 0.999, adam_eps: float = 1e-8,
                    adam_weight_decay: float = 0.0, muon_weight_decay: float = 0.0,
                    muon_mask: Callable[[Any, Any], bool] | None = None,
                    **muon_kwargs) -> optax.GradientTransformation:
  """`muon.muon_with_adamw` with the Muon group's NS sharded over `axis_name`.

  Same arguments, state tree and updates as `muon.muon_with_adamw`, plus
  `axis_name` / `num_devices` of `shard_across_devices`; the update must run
  inside that axis.
  """
  predicate = muon_mask or muon_lib.is_hidden_matrix
  if adam_learning_rate is None:
    adam_learning_rate = learning_rate
  steps = len(ns.resolve_coeffs(muon_kwargs.get("coeffs", "kimi"), muon_kwargs.get("steps")))
  sharded = shard_across_devices(muon_lib.scale_by_muon(**muon_kwargs), axis_name, num_devices,
                                 ns_steps=steps, method=muon_kwargs.get("method", "auto"))
  partition = getattr(optax, "partition", None) or optax.multi_transform
  return partition(
      {
          "muon": optax.chain(sharded, optax.add_decayed_weights(muon_weight_decay),
                              optax.scale_by_learning_rate(learning_rate)),
          "adamw": optax.adamw(adam_learning_rate, b1=adam_b1, b2=adam_b2, eps=adam_eps,
                               weight_decay=adam_weight_decay),
      },
      lambda params: muon_lib.muon_labels(params, predicate),
  )
