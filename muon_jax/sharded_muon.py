"""Muon with its Newton–Schulz work split across data-parallel devices.

Under pmap data parallelism every device holds the same averaged gradient, so
a plain `scale_by_muon` repeats all of the Newton–Schulz (NS) work on each of
D devices. `shard_across_devices` wraps a `scale_by_muon` transform so that
each device runs it on a FLOP-balanced 1/D share of the Muon matrices and the
results are all-gathered (as modded-nanogpt and Dion do):

  1. every leaf is assigned to a device by longest-processing-time greedy on
     the `newton_schulz.ns_flops` of the matrix the transform makes of it
     (`transform.matrix_shape`; a leaf is never split, since its dimension
     numbers may flatten all of its axes into one matrix), a static plan
     computed at trace time;
  2. device d runs the wrapped transform on its matrices only (a
     `lax.switch` on the axis index, so only that branch executes);
  3. the orthogonalized updates and the new momenta of every device are
     packed into one flat float32 buffer, all-gathered over the axis and
     unpacked in the original tree layout.

The wrapped transform's update of one leaf must depend on that leaf alone
(true of `scale_by_muon` with default dimension numbers or one
`MuonDimensionNumbers` for every leaf; a pytree or callable of dimension
numbers is not supported) and its state must be `ScaleByMuonState`, so the
sharded updates equal the replicated ones and the state tree is unchanged: a
checkpoint written with sharding restores without it and vice versa.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from muon_jax import newton_schulz as ns
from muon_jax import transform as muon_lib


def leaf_flops(shape: tuple[int, ...], ns_steps: int = 5, method: str = "auto") -> int:
  """NS FLOPs of one leaf: its matrix under the default dimension numbers."""
  return ns.ns_flops(muon_lib.matrix_shape(shape), ns_steps, method)


def balance(
  shapes: list[tuple[int, ...]], num_devices: int, ns_steps: int = 5, method: str = "auto"
) -> list[list[int]]:
  """Static FLOP-balanced plan: the leaves each device orthogonalizes.

  Args:
    shapes: leaf shapes (>= 2-D).
    num_devices: devices to split over (>= 1).
    ns_steps, method: as in `newton_schulz.ns_flops` (the cost model).

  Returns:
    num_devices sorted lists of leaf indices; every leaf is in exactly one.
    Longest-processing-time greedy: largest matrices first, each to the
    currently least-loaded device (ties to the lowest index).
  """
  if num_devices < 1:
    raise ValueError(f"num_devices={num_devices} must be >= 1")
  units = [(leaf_flops(s, ns_steps, method), i) for i, s in enumerate(shapes)]
  order = sorted(range(len(units)), key=lambda k: -units[k][0])  # stable: ties keep tree order
  plan, load = [[] for _ in range(num_devices)], [0] * num_devices
  for k in order:
    d = min(range(num_devices), key=lambda j: (load[j], j))
    plan[d].append(units[k][1])
    load[d] += units[k][0]
  return [sorted(p) for p in plan]


def plan_flops(
  plan: list[list[int]], shapes: list[tuple[int, ...]], ns_steps: int = 5, method: str = "auto"
) -> list[int]:
  """NS FLOPs each device runs under `plan` (the replicated cost is their sum)."""
  return [sum(leaf_flops(shapes[i], ns_steps, method) for i in units) for units in plan]


def shard_across_devices(
  inner: optax.GradientTransformation,
  axis_name: str,
  num_devices: int,
  *,
  ns_steps: int = 5,
  method: str = "auto",
) -> optax.GradientTransformation:
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
    sizes = [math.prod(s) for s in shapes]
    # Each device's buffer: its updates then its momenta, padded to the longest.
    lengths = [2 * sum(sizes[i] for i in units) for units in plan]
    width = max(max(lengths), 1)

    def branch(units):
      def run(leaves, mu_leaves, count):
        if not units:
          return jnp.zeros((width,), jnp.float32), optax.safe_increment(count)
        mine = {str(k): leaves[i] for k, i in enumerate(units)}
        mine_mu = {str(k): mu_leaves[i] for k, i in enumerate(units)}
        out, new_state = inner.update(mine, muon_lib.ScaleByMuonState(count=count, mu=mine_mu))
        keys = [str(k) for k in range(len(units))]
        flat = [out[k].astype(jnp.float32).ravel() for k in keys]
        flat += [new_state.mu[k].astype(jnp.float32).ravel() for k in keys]
        buf = jnp.concatenate(flat)
        return jnp.pad(buf, (0, width - buf.shape[0])), new_state.count

      return run

    buf, count = jax.lax.switch(
      jax.lax.axis_index(axis_name), [branch(u) for u in plan], leaves, mu_leaves, state.count
    )
    gathered_DxW = jax.lax.all_gather(buf, axis_name)
    pieces = {}  # (kind, leaf) -> flat slice of the gathered buffer
    for d, units in enumerate(plan):
      offset = 0
      for kind in ("update", "mu"):
        for i in units:
          pieces[(kind, i)] = gathered_DxW[d, offset : offset + sizes[i]]
          offset += sizes[i]

    def assemble(kind, leaf, dtype):
      return pieces[(kind, leaf)].reshape(shapes[leaf]).astype(dtype)

    new_updates = [assemble("update", i, x.dtype) for i, x in enumerate(leaves)]
    new_mu_leaves = [assemble("mu", i, m.dtype) for i, m in enumerate(mu_leaves)]
    return (
      jax.tree_util.tree_unflatten(treedef, new_updates),
      muon_lib.ScaleByMuonState(
        count=count, mu=jax.tree_util.tree_unflatten(treedef, new_mu_leaves)
      ),
    )

  return optax.GradientTransformation(inner.init, update_fn)


def muon_with_adamw(
  learning_rate: optax.ScalarOrSchedule,
  *,
  axis_name: str,
  num_devices: int,
  adam_learning_rate: optax.ScalarOrSchedule | None = None,
  adam_b1: float = 0.9,
  adam_b2: float = 0.999,
  adam_eps: float = 1e-8,
  adam_weight_decay: float = 0.0,
  muon_weight_decay: float = 0.0,
  muon_mask: Callable[[Any, Any], bool] | None = None,
  **muon_kwargs,
) -> optax.GradientTransformation:
  """`muon.muon_with_adamw` with the Muon group's NS sharded over `axis_name`.

  Same arguments, state tree and updates as `muon.muon_with_adamw`, plus
  `axis_name` / `num_devices` of `shard_across_devices`; the update must run
  inside that axis.
  """
  predicate = muon_mask or muon_lib.is_hidden_matrix
  if adam_learning_rate is None:
    adam_learning_rate = learning_rate
  steps = len(ns.resolve_coeffs(muon_kwargs.get("coeffs", "kimi"), muon_kwargs.get("steps")))
  sharded = shard_across_devices(
    muon_lib.scale_by_muon(**muon_kwargs),
    axis_name,
    num_devices,
    ns_steps=steps,
    method=muon_kwargs.get("method", "auto"),
  )
  partition = getattr(optax, "partition", None) or optax.multi_transform
  return partition(
    {
      "muon": optax.chain(
        sharded,
        optax.add_decayed_weights(muon_weight_decay),
        optax.scale_by_learning_rate(learning_rate),
      ),
      "adamw": optax.adamw(
        adam_learning_rate, b1=adam_b1, b2=adam_b2, eps=adam_eps, weight_decay=adam_weight_decay
      ),
    },
    lambda params: muon_lib.muon_labels(params, predicate),
  )
