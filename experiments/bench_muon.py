"""Benchmark: compiled Muon update on LLaMA-160M's 84 hidden matrices vs optax.contrib.muon.

  python -m experiments.bench_muon --out_dir out/bench_muon

Both transforms see the same gradients, f32, same NS coefficients/steps and
the same (optax-style) momentum, so their updates must agree to 1e-4; timings
are medians of interleaved runs in this one process. Writes bench_muon.json.
"""

import os

from absl import app, flags, logging

from muon_jax import validate

flags.DEFINE_string("out_dir", "out/bench_muon", "Where bench_muon.json goes.")
flags.DEFINE_integer("repeats", 5, "Timed runs per candidate (median reported), >= 1.")
flags.DEFINE_integer("layers", 12, "LLaMA layers (12 = the 84 matrices of LLaMA-160M), >= 1.")
flags.DEFINE_integer("hidden", 768, "Hidden size, >= 2.")
flags.DEFINE_integer("intermediate", 3072, "MLP size, >= 2.")
flags.DEFINE_boolean("bf16", True, "Also time ns_dtype=bfloat16.")
flags.DEFINE_enum("matmul_precision", "default", ["default", "high", "highest"],
                  "jax_default_matmul_precision; on GPUs 'default' lets f32 matmuls run in TF32 "
                  "(~1e-3 relative error for ours and optax alike), 'highest' keeps true f32.")
FLAGS = flags.FLAGS


def run():
  validate.check_range("repeats", FLAGS.repeats, low=1)
  validate.check_range("layers", FLAGS.layers, low=1)
  validate.check_range("hidden", FLAGS.hidden, low=2)
  validate.check_range("intermediate", FLAGS.intermediate, low=2)

  import jax
  import jax.numpy as jnp
  import numpy as np
  from optax import contrib

  jax.config.update("jax_default_matmul_precision", FLAGS.matmul_precision)

  import muon_jax as mj
  from muon_jax import benchmarking, results
  from muon_jax.muon import default_batching
  from muon_jax.newton_schulz import ns_flops

  shapes = benchmarking.llama_hidden_shapes(FLAGS.hidden, FLAGS.intermediate, FLAGS.layers)
  key = jax.random.PRNGKey(0)
  params = {f"w{i:03d}": jax.random.normal(jax.random.fold_in(key, i), s) * 0.02
            for i, s in enumerate(shapes)}
  grads = {k: jax.random.normal(jax.random.fold_in(key, 10_000 + i), p.shape)
           for i, (k, p) in enumerate(params.items())}

  def compiled(tx):
    state = tx.init(params)
    step = jax.jit(tx.update)
    return lambda: step(grads, state, params)[0]

  same = dict(momentum="optax", eps=1e-8)
  candidates = {
      "ours": compiled(mj.muon(0.02, **same)),
      "optax": compiled(contrib.muon(0.02, eps=1e-8, consistent_rms=0.2)),
      "ours_standard_ns": compiled(mj.muon(0.02, method="standard", **same)),
      "ours_stack": compiled(mj.muon(0.02, batching="stack", **same)),
      "ours_loop": compiled(mj.muon(0.02, batching="loop", **same)),
  }
  if FLAGS.bf16:
    candidates["ours_bf16"] = compiled(mj.muon(0.02, ns_dtype=jnp.bfloat16, **same))

  outs = {name: fn() for name, fn in candidates.items()}
  def rel_err(name, ref):
    num = sum(float(jnp.sum((outs[name][k] - outs[ref][k]) ** 2)) for k in params)
    den = sum(float(jnp.sum(outs[ref][k] ** 2)) for k in params)
    return float(np.sqrt(num / den))

  logging.info("timing %d candidates x %d repeats on %s", len(candidates), FLAGS.repeats,
               jax.devices()[0].device_kind)
  times = benchmarking.median_times(list(candidates.values()), FLAGS.repeats)
  med = {name: float(np.median(t)) for name, t in zip(candidates, times)}
  flops = sum(ns_flops(s) for s in shapes)
  flops_standard = sum(ns_flops(s, method="standard") for s in shapes)
  peak = benchmarking.matmul_peak_gflops()
  result = {
      "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(),
      "matmul_precision": FLAGS.matmul_precision,
      "num_matrices": len(shapes),
      "ours_s": med["ours"],
      "optax_s": med["optax"],
      "speedup_vs_optax": med["optax"] / med["ours"],
      "times_s": med,
      "all_times_s": dict(zip(candidates, times)),
      "rel_err_vs_optax": rel_err("ours", "optax"),
      "rel_err_vs_standard_ns": rel_err("ours", "ours_standard_ns"),
      "rel_err_bf16_vs_f32": rel_err("ours_bf16", "ours") if FLAGS.bf16 else None,
      "ours_bf16_s": med.get("ours_bf16"),
      "ns_gflop_ours": flops / 1e9,
      "ns_gflop_standard": flops_standard / 1e9,
      "achieved_gflops_ours": flops / med["ours"] / 1e9,
      "achieved_gflops_optax": flops_standard / med["optax"] / 1e9,
      "matmul_peak_gflops_measured": peak,
      "default_batching": default_batching(),
  }
  path = os.path.join(FLAGS.out_dir, "bench_muon.json")
  results.atomic_write_json(path, result)
  print(f"ours {med['ours']:.3f}s  optax {med['optax']:.3f}s  speedup {result['speedup_vs_optax']:.2f}x  "
        f"rel_err {result['rel_err_vs_optax']:.2e}  -> {path}")


def main(argv):
  del argv
  validate.run_or_exit(run)


if __name__ == "__main__":
  app.run(main)
