"""Throughput of the compiled saddle grid vs a per-cell loop and the matmul roofline.

  python -m experiments.bench_saddle --out_dir out/bench_saddle

For each n, in one process and interleaved (muon_jax.benchmarking.median_times):
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

import os

from absl import app, flags, logging

from muon_jax import validate

flags.DEFINE_list("dims", ["32", "128"], "Matrix sides n, each in [2, 4096].")
flags.DEFINE_integer("cells", 16, "Cells in the grid (and batch of the matmul roofline), in [1, 4096].")
flags.DEFINE_integer("steps", 60, "Steps per timed grid call, in [1, 10^6].")
flags.DEFINE_integer("loop_cells", 2, "Cells timed in the per-cell loop, in [1, 4096].")
flags.DEFINE_integer("loop_steps", 20, "Steps per cell in the per-cell loop, in [1, 10^6].")
flags.DEFINE_integer("repeats", 3, "Timed repeats (median), in [1, 100].")
flags.DEFINE_integer("seed", 0, "Seed of every random draw.")
flags.DEFINE_string("out_dir", "out/bench_saddle", "Where bench_saddle.json goes.")
FLAGS = flags.FLAGS


def _validate():
  dims = validate.parse_list("dims", FLAGS.dims, int)
  validate.check_range("dims", dims, low=2, high=4096)
  for name, high in (("cells", 4096), ("steps", 10**6), ("loop_cells", 4096),
                     ("loop_steps", 10**6), ("repeats", 100)):
    validate.check_range(name, getattr(FLAGS, name), low=1, high=high)
  return dims


def bench_one(n: int, cells: int, steps: int, loop_cells: int, loop_steps: int, repeats: int,
              seed: int) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from muon_jax import benchmarking, saddle
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
  loop_args = [(jnp.int32(si), jnp.float32(lam), jnp.float32(k), jnp.float32(lr))
               for lam, k, lr, si in zip(*(a[:loop_cells] for a in grid))]

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

  t_grid, t_loop, t_mm = (np.median(t) for t in benchmarking.median_times(
      [run_grid, run_loop, lambda: matmuls(x)], repeats))
  grid_rate = cells * steps / t_grid
  loop_rate = loop_cells * loop_steps / t_loop
  mm_gflops = mm_iters * cells * 2 * n**3 / t_mm / 1e9
  grid_gflops = grid_rate * ns_flops((n, n)) / 1e9
  return {"n": n, "cells": cells, "grid_cell_steps_per_s": grid_rate,
          "loop_cell_steps_per_s": loop_rate, "speedup_vs_loop": grid_rate / loop_rate,
          "grid_ns_gflops": grid_gflops, "matmul_gflops": mm_gflops,
          "fraction_of_matmul_roofline": grid_gflops / mm_gflops,
          "ns_flops_per_cell_step": ns_flops((n, n))}


def main(argv):
  del argv
  import jax
  from muon_jax import results
  dims = _validate()
  rows = []
  for n in dims:
    row = bench_one(n, FLAGS.cells, FLAGS.steps, FLAGS.loop_cells, FLAGS.loop_steps,
                    FLAGS.repeats, FLAGS.seed)
    rows.append(row)
    logging.info("n=%d: grid %.0f cell-steps/s, loop %.0f (x%.1f), NS %.1f GFLOP/s = %.0f%% of "
                 "batched matmul %.1f GFLOP/s", n, row["grid_cell_steps_per_s"],
                 row["loop_cell_steps_per_s"], row["speedup_vs_loop"], row["grid_ns_gflops"],
                 100 * row["fraction_of_matmul_roofline"], row["matmul_gflops"])
  out = {"benchmark": "bench_saddle", "device": str(jax.devices()[0].device_kind),
         "backend": jax.default_backend(), "steps": FLAGS.steps, "optimizer": "muon",
         "speedup_vs_loop": {str(r["n"]): float(r["speedup_vs_loop"]) for r in rows},
         "fraction_of_matmul_roofline": {str(r["n"]): float(r["fraction_of_matmul_roofline"]) for r in rows},
         "rows": rows}
  path = os.path.join(FLAGS.out_dir, "bench_saddle.json")
  results.atomic_write_json(path, out)
  print(f"wrote {path}: speedup_vs_loop {out['speedup_vs_loop']}, "
        f"fraction_of_matmul_roofline {out['fraction_of_matmul_roofline']}")


if __name__ == "__main__":
  validate.run_or_exit(lambda: app.run(main))
