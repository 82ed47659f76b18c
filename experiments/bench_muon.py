"""Benchmark: compiled Muon update on LLaMA-160M's 84 hidden matrices vs optax.contrib.muon.

  python -m experiments.bench_muon --out_dir out/bench_muon

Both transforms see the same gradients, f32, same NS coefficients/steps and
the same (optax-style) momentum, so their updates must agree to 1e-4; timings
are medians of interleaved runs in this one process. Also timed:
muon_jax.compat.muon against optax.contrib.muon, both with optax's defaults,
and (--conv) a ResNet-18-like set of conv kernels, orthogonalized as
(kh*kw*c_in, c_out) matrices by both. Writes bench_muon.json.
"""

import dataclasses
import os
import sys

from absl import logging

from experiments import cli
from muon_jax.infra.config import field


@dataclasses.dataclass(frozen=True)
class BenchMuonConfig:
  """What bench_muon times."""

  out_dir: str = field("out/bench_muon", "where bench_muon.json goes")
  repeats: int = field(5, "timed runs per candidate (median reported)", low=1)
  layers: int = field(12, "LLaMA layers (12 = the 84 matrices of LLaMA-160M)", low=1)
  hidden: int = field(768, "hidden size", low=2)
  intermediate: int = field(3072, "MLP size", low=2)
  bf16: bool = field(True, "also time ns_dtype=bfloat16")
  conv: bool = field(True, "also time a ResNet-18-like conv-kernel model")
  conv_width: int = field(64, "base channel count of the conv model (ResNet-18: 64)", low=1)
  matmul_precision: str = field(
    "default",
    "jax_default_matmul_precision; on GPUs 'default' lets f32 matmuls run in TF32 "
    "(~1e-3 relative error for ours and optax alike), 'highest' keeps true f32",
    choices=("default", "high", "highest"),
  )


FLAGS = cli.define_flags(BenchMuonConfig)


def resnet18_conv_shapes(width: int) -> list[tuple[int, int, int, int]]:
  """(kh, kw, c_in, c_out) kernels of ResNet-18's residual stages (stem left out)."""
  shapes = [(3, 3, width, width)] * 4
  for stage in range(1, 4):
    c_in, c_out = width * 2 ** (stage - 1), width * 2**stage
    shapes += [(3, 3, c_in, c_out), (1, 1, c_in, c_out)] + [(3, 3, c_out, c_out)] * 3
  return shapes


def run(cfg: BenchMuonConfig):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from optax import contrib

  jax.config.update("jax_default_matmul_precision", cfg.matmul_precision)

  import muon_jax as mj
  from muon_jax.infra import benchmarking
  from muon_jax import compat
  from muon_jax.infra import results
  from muon_jax.transform import default_batching
  from muon_jax.newton_schulz import ns_flops

  # Taken before anything runs: the tree as it was when the timing started.
  provenance = results.provenance(["python", "-m", "experiments.bench_muon", *sys.argv[1:]])

  shapes = benchmarking.llama_hidden_shapes(cfg.hidden, cfg.intermediate, cfg.layers)
  key = jax.random.PRNGKey(0)

  def tree(shape_list, offset):
    return {
      f"w{i:03d}": jax.random.normal(jax.random.fold_in(key, offset + i), s)
      for i, s in enumerate(shape_list)
    }

  params = jax.tree.map(lambda p: p * 0.02, tree(shapes, 0))
  grads = tree(shapes, 10_000)

  def compiled(tx, p=params, g=grads):
    state = tx.init(p)
    step = jax.jit(tx.update)
    return lambda: step(g, state, p)[0]

  same = {"momentum": "optax", "eps": 1e-8}
  candidates = {
    "ours": compiled(mj.muon(0.02, **same)),
    "optax": compiled(contrib.muon(0.02, eps=1e-8, consistent_rms=0.2)),
    "compat_defaults": compiled(compat.muon(0.02)),
    "optax_defaults": compiled(contrib.muon(0.02)),
    "ours_standard_ns": compiled(mj.muon(0.02, method="standard", **same)),
    "ours_stack": compiled(mj.muon(0.02, batching="stack", **same)),
    "ours_loop": compiled(mj.muon(0.02, batching="loop", **same)),
  }
  if cfg.bf16:
    candidates["ours_bf16"] = compiled(mj.muon(0.02, ns_dtype=jnp.bfloat16, **same))
  conv_shapes = resnet18_conv_shapes(cfg.conv_width) if cfg.conv else []
  if conv_shapes:
    conv_params = jax.tree.map(lambda p: p * 0.02, tree(conv_shapes, 20_000))
    conv_grads = tree(conv_shapes, 30_000)
    flattened = lambda p: jax.tree.map(
      lambda x: contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3), p
    )
    conv = {"p": conv_params, "g": conv_grads}
    # Our default for a 4-D kernel is the same flattening; "keller" scaling
    # is optax's default width scaling.
    candidates["conv_ours"] = compiled(mj.muon(0.02, scaling="keller", **same), **conv)
    candidates["conv_optax"] = compiled(
      contrib.muon(0.02, muon_weight_dimension_numbers=flattened), **conv
    )
    candidates["conv_compat"] = compiled(
      compat.muon(0.02, muon_weight_dimension_numbers=flattened), **conv
    )

  outs = {name: fn() for name, fn in candidates.items()}

  def rel_err(name, ref):
    num = sum(float(jnp.sum((outs[name][k] - outs[ref][k]) ** 2)) for k in outs[ref])
    den = sum(float(jnp.sum(outs[ref][k] ** 2)) for k in outs[ref])
    return float(np.sqrt(num / den))

  logging.info(
    "timing %d candidates x %d repeats on %s",
    len(candidates),
    cfg.repeats,
    jax.devices()[0].device_kind,
  )
  times = benchmarking.median_times(list(candidates.values()), cfg.repeats)
  med = {name: float(np.median(t)) for name, t in zip(candidates, times)}
  flops = sum(ns_flops(s) for s in shapes)
  flops_standard = sum(ns_flops(s, method="standard") for s in shapes)
  peak = benchmarking.matmul_peak_gflops()
  result = {
    "provenance": provenance,
    "device": jax.devices()[0].device_kind,
    "backend": jax.default_backend(),
    "matmul_precision": cfg.matmul_precision,
    "num_matrices": len(shapes),
    "ours_s": med["ours"],
    "optax_s": med["optax"],
    "speedup_vs_optax": med["optax"] / med["ours"],
    "times_s": med,
    "all_times_s": dict(zip(candidates, times)),
    "rel_err_vs_optax": rel_err("ours", "optax"),
    "rel_err_vs_standard_ns": rel_err("ours", "ours_standard_ns"),
    "rel_err_bf16_vs_f32": rel_err("ours_bf16", "ours") if cfg.bf16 else None,
    "speedup_compat_vs_optax_defaults": med["optax_defaults"] / med["compat_defaults"],
    "rel_err_compat_vs_optax_defaults": rel_err("compat_defaults", "optax_defaults"),
    "conv_num_kernels": len(conv_shapes),
    "conv_speedup_ours_vs_optax": (med["conv_optax"] / med["conv_ours"]) if conv_shapes else None,
    "conv_speedup_compat_vs_optax": (med["conv_optax"] / med["conv_compat"])
    if conv_shapes
    else None,
    "conv_rel_err_ours_vs_optax": rel_err("conv_ours", "conv_optax") if conv_shapes else None,
    "conv_rel_err_compat_vs_optax": rel_err("conv_compat", "conv_optax") if conv_shapes else None,
    "ours_bf16_s": med.get("ours_bf16"),
    "ns_gflop_ours": flops / 1e9,
    "ns_gflop_standard": flops_standard / 1e9,
    "achieved_gflops_ours": flops / med["ours"] / 1e9,
    "achieved_gflops_optax": flops_standard / med["optax"] / 1e9,
    "matmul_peak_gflops_measured": peak,
    "default_batching": default_batching(),
  }
  path = os.path.join(cfg.out_dir, "bench_muon.json")
  results.atomic_write_json(path, result)
  print(
    f"ours {med['ours']:.3f}s  optax {med['optax']:.3f}s  speedup {result['speedup_vs_optax']:.2f}x  "
    f"rel_err {result['rel_err_vs_optax']:.2e}"
  )
  print(
    f"compat (optax defaults) {med['compat_defaults']:.3f}s  optax {med['optax_defaults']:.3f}s  "
    f"speedup {result['speedup_compat_vs_optax_defaults']:.2f}x  "
    f"rel_err {result['rel_err_compat_vs_optax_defaults']:.2e}"
  )
  if conv_shapes:
    print(
      f"conv ({len(conv_shapes)} kernels): ours {med['conv_ours']:.3f}s  compat {med['conv_compat']:.3f}s"
      f"  optax {med['conv_optax']:.3f}s  speedup {result['conv_speedup_ours_vs_optax']:.2f}x /"
      f" {result['conv_speedup_compat_vs_optax']:.2f}x  rel_err {result['conv_rel_err_ours_vs_optax']:.2e}"
    )
  print(f"-> {path}")


def main(argv):
  del argv
  with cli.flag_errors():
    cfg = cli.config_from_flags(BenchMuonConfig)
    cli.claim_out_dir(cfg.out_dir)
  run(cfg)


if __name__ == "__main__":
  cli.run(main)
