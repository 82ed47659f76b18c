"""Replicated vs sharded Newton–Schulz on 8 emulated CPU devices (fixed shapes, no flags).

  PYTHONPATH=. python benchmarks/sharded_ns_cpu.py

Times the Muon direction (`scale_by_muon` alone vs wrapped by
`sharded_muon.shard_across_devices`) under pmap on the 14 hidden matrices of
a 2-layer LLaMA block with hidden 256 / MLP 1024, interleaved medians in one
process. The emulated devices share this machine's cores, so the ratio
measures the total NS work saved, not multi-accelerator speed.
"""

import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"


import jax
import jax.numpy as jnp
import numpy as np

from muon_jax.infra import benchmarking
from muon_jax import sharded_muon

from muon_jax import transform as muon_lib

N_DEV = 8


def main():
  shapes = benchmarking.llama_hidden_shapes(256, 1024, 2)
  params = {str(i): jnp.ones(s) for i, s in enumerate(shapes)}
  grads = {
    k: jax.random.normal(jax.random.key(i), v.shape) for i, (k, v) in enumerate(params.items())
  }
  stack = lambda t: jax.tree.map(lambda x: jnp.broadcast_to(x, (N_DEV,) + x.shape), t)
  calls = []
  for tx in (
    muon_lib.scale_by_muon(),
    sharded_muon.shard_across_devices(muon_lib.scale_by_muon(), "d", N_DEV),
  ):
    f = jax.pmap(lambda g, s, tx=tx: tx.update(g, s)[0], axis_name="d")
    g8, s8 = stack(grads), stack(tx.init(params))
    calls.append(lambda f=f, g8=g8, s8=s8: f(g8, s8))
  replicated, sharded = (float(np.median(t)) for t in benchmarking.median_times(calls, 7))
  flops = sharded_muon.plan_flops(sharded_muon.balance(shapes, N_DEV), shapes)
  print(
    f"{len(shapes)} matrices, {N_DEV} emulated devices: replicated {replicated * 1e3:.0f} ms, "
    f"sharded {sharded * 1e3:.0f} ms, time ratio {sharded / replicated:.3f}; "
    f"NS FLOPs per device ratio {max(flops) / sum(flops):.3f}"
  )


if __name__ == "__main__":
  main()
