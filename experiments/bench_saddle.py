"""Throughput of the compiled saddle grid vs a per-cell loop and the matmul roofline.

  python -m experiments.bench_saddle --out_dir out/bench_saddle

For each n, in one process and interleaved (muon_jax.infra.benchmarking.median_times):
  grid:    `saddle.build_grid_fn` (Muon, every cell of a C-cell grid, `steps`
           steps, radius = inf so no cell exits early) -> cell-steps/s;
  loop:    the same cells one at a time, one jitted step per Python call
           (`saddle.make_cell_step`) -> cell-steps/s;
  matmul:  a jitted chain of batched (C, n, n) @ (C, n, n) products, the
           FLOP rate this machine reaches on the grid's shapes.
Writes bench_saddle.json with speedup_vs_loop (grid / loop) and
fraction_of_matmul_roofline (grid's Newton-Schulz FLOP rate, counted with
`newton_schulz.ns_flops`, over the matmul rate) per n.
"""

import dataclasses
import os

from absl import logging

from experiments import cli
from muon_jax.infra.config import field


@dataclasses.dataclass(frozen=True)
class BenchSaddleConfig:
  """What bench_saddle times."""

  dims: tuple[int, ...] = field((32, 128), "matrix sides n", low=2, high=4096)
  cells: int = field(16, "cells in the grid (and batch of the matmul roofline)", low=1, high=4096)
  steps: int = field(60, "steps per timed grid call", low=1, high=10**6)
  loop_cells: int = field(2, "cells timed in the per-cell loop", low=1, high=4096)
  loop_steps: int = field(20, "steps per cell in the per-cell loop", low=1, high=10**6)
  repeats: int = field(3, "timed repeats (median)", low=1, high=100)
  seed: int = field(0, "seed of every random draw")
  out_dir: str = field("out/bench_saddle", "where bench_saddle.json goes")


FLAGS = cli.define_flags(BenchSaddleConfig)


def bench_one(
  n: int, cells: int, steps: int, loop_cells: int, loop_steps: int, repeats: int, seed: int
) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from muon_jax.infra import benchmarking
  from muon_jax.paper import saddle
  from muon_jax.newton_schulz import ns_flops

  fn = saddle.make_optimizer("muon")
  cfg = saddle.SimConfig(n=n, steps=steps, chunk=steps, radius=float("inf"))
  devices = jax.local_devices()[:1]
  grid = saddle.make_grid([0.1, 0.01], [1.0, 100.0], [0.02], range(max(1, cells // 4)))
  grid = saddle.Grid(*(np.resize(a, cells) for a in grid))
  grid_fn = saddle.build_grid_fn(fn, cfg, seed=seed, devices=devices)
  args = [jnp.asarray(a) for a in grid]
  run_grid = lambda: grid_fn(*args)[0].w

  init, step = saddle.make_cell_step(fn, cfg, seed=seed)
  loop_args = [
    (jnp.int32(si), jnp.float32(lam), jnp.float32(k), jnp.float32(lr))
    for lam, k, lr, si in zip(*(a[:loop_cells] for a in grid))
  ]

  def run_loop():
    last = None
    for si, lam, k, lr in loop_args:
      state = init(si, lr)
      for t in range(loop_steps):
        state = step(state, jnp.int32(t), si, lam, k, lr)
      last = state.w
    return last

  x = jax.random.normal(jax.random.key(seed), (cells, n, n)) / np.sqrt(n)
  mm_iters = 30

  @jax.jit
  def matmuls(x):
    return jax.lax.fori_loop(0, mm_iters, lambda _, y: y @ x, x)

  t_grid, t_loop, t_mm = (
    np.median(t)
    for t in benchmarking.median_times([run_grid, run_loop, lambda: matmuls(x)], repeats)
  )
  grid_rate = cells * steps / t_grid
  loop_rate = loop_cells * loop_steps / t_loop
  mm_gflops = mm_iters * cells * 2 * n**3 / t_mm / 1e9
  grid_gflops = grid_rate * ns_flops((n, n)) / 1e9
  return {
    "n": n,
    "cells": cells,
    "grid_cell_steps_per_s": grid_rate,
    "loop_cell_steps_per_s": loop_rate,
    "speedup_vs_loop": grid_rate / loop_rate,
    "grid_ns_gflops": grid_gflops,
    "matmul_gflops": mm_gflops,
    "fraction_of_matmul_roofline": grid_gflops / mm_gflops,
    "ns_flops_per_cell_step": ns_flops((n, n)),
  }


def main(argv):
  del argv
  import jax
  from muon_jax.infra import results

  with cli.flag_errors():
    cfg = cli.config_from_flags(BenchSaddleConfig)
    cli.claim_out_dir(cfg.out_dir)
  rows = []
  for n in cfg.dims:
    row = bench_one(n, cfg.cells, cfg.steps, cfg.loop_cells, cfg.loop_steps, cfg.repeats, cfg.seed)
    rows.append(row)
    logging.info(
      "n=%d: grid %.0f cell-steps/s, loop %.0f (x%.1f), NS %.1f GFLOP/s = %.0f%% of "
      "batched matmul %.1f GFLOP/s",
      n,
      row["grid_cell_steps_per_s"],
      row["loop_cell_steps_per_s"],
      row["speedup_vs_loop"],
      row["grid_ns_gflops"],
      100 * row["fraction_of_matmul_roofline"],
      row["matmul_gflops"],
    )
  out = {
    "benchmark": "bench_saddle",
    "device": str(jax.devices()[0].device_kind),
    "backend": jax.default_backend(),
    "steps": cfg.steps,
    "optimizer": "muon",
    "speedup_vs_loop": {str(r["n"]): float(r["speedup_vs_loop"]) for r in rows},
    "fraction_of_matmul_roofline": {
      str(r["n"]): float(r["fraction_of_matmul_roofline"]) for r in rows
    },
    "rows": rows,
  }
  path = os.path.join(cfg.out_dir, "bench_saddle.json")
  results.atomic_write_json(path, out)
  print(
    f"wrote {path}: speedup_vs_loop {out['speedup_vs_loop']}, "
    f"fraction_of_matmul_roofline {out['fraction_of_matmul_roofline']}"
  )


if __name__ == "__main__":
  cli.run(main)
