"""Benchmark: a LLaMA training step's memory, FLOPs, throughput, MFU and Muon/AdamW ratio.

  python -m experiments.bench_train                          # tiny on this machine (+160M FLOP count)
  python -m experiments.bench_train --model=160m --steps=5   # GPU: paper batch 512 x 1024, bf16
  python -m experiments.bench_train --model=160m --steps=0 --micro_batch=16 --global_batch=16 \
      --loss_chunk=1024 --sweep_micro_batches=4,8,16,32,64   # CPU: memory analysis only
  python -m experiments.bench_train --model=160m --steps=3 --sweep --sweep_micro_batches=16,32,64 \
      --sweep_remat=none,dots_no_batch --sweep_attention=cudnn,xla \
      --sweep_loss_chunks=1024                               # GPU: fastest config that fits

Per optimizer: XLA's memory analysis of the compiled step for one micro-batch
(arguments, outputs, temporaries, peak_memory_bytes), XLA's FLOP count of the
loss gradient against the analytic FLOPs per token and, with --steps > 0, the
median step time, tokens/s and MFU of the real step, both optimizers timed
interleaved in this process. --profile writes a jax.profiler trace
(TensorBoard / Perfetto). --sweep_micro_batches adds peak memory against micro
batch per --sweep_remat policy and the largest micro batch within
--memory_budget_gb. --sweep times every micro batch x --sweep_remat x
--sweep_attention x --sweep_loss_chunks combination that fits the budget and
reports the fastest. FLOPs are XLA's count of the module before optimisation,
so matmuls that a GPU compile turns into cuBLAS/cuDNN calls still count. With
several devices, --ns_shard_report compares replicated and sharded
Newton-Schulz (FLOPs per device, Muon update and step time). The logic is
`muon_jax.lm.step_bench`; writes out_dir/bench_train.json.
"""

import os

from absl import flags

from experiments import cli
from muon_jax.lm.step_bench import BenchTrainConfig

cli.define_flags(BenchTrainConfig)
flags.DEFINE_string("out_dir", "out/bench_train", "Where bench_train.json goes.")
FLAGS = flags.FLAGS


def _print(out: dict) -> None:
  for name in (k for k in ("adamw", "muon") if k in out):
    r = out[name]
    line = (
      f"{out['model']} {name:5s}: peak {r['peak_memory_bytes'] / 1e9:7.2f} GB (args "
      f"{r['argument_bytes'] / 1e9:.2f}, temps {r['temp_bytes'] / 1e9:.2f})  XLA/analytic "
      f"FLOPs per token {r['xla_over_analytic']:.3f}"
    )
    if "step_s_median" in r:
      mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.3f}"
      line += (
        f"  step {r['step_s_median'] * 1e3:9.1f} ms  {r['tokens_per_s']:12,.0f} tok/s  MFU {mfu}"
      )
    print(line)
  if "muon_over_adamw_step_time" in out:
    print(
      f"Muon/AdamW step time: {out['muon_over_adamw_step_time']:.3f}  ({out['device_kind']}, "
      f"{out['devices']} device(s), {out['compute_dtype']}, batch {out['global_batch']}x"
      f"{out['seq_len']}, micro {out['micro_batch']}, peak {out['peak_tflops_per_device']:.2f} "
      f"TFLOP/s from {out['peak_source']})"
    )
  if "ns_shard" in out:
    r = out["ns_shard"]
    print(
      f"NS sharded over {r['devices']} devices: NS GFLOP/device "
      f"{r['ns_gflops_per_device_replicated']:.3f} -> {r['ns_gflops_per_device_sharded']:.3f} "
      f"(x{r['ns_flops_ratio']:.3f}); Muon update {r['muon_update_s_replicated'] * 1e3:.1f} -> "
      f"{r['muon_update_s_sharded'] * 1e3:.1f} ms (x{r['muon_update_time_ratio']:.3f}); whole "
      f"step x{r['step_time_ratio']:.3f}"
    )
  speed = out.get("speed_sweep")
  for opt in (k for k in speed or () if k != "budget_bytes"):
    best, points = speed[opt]["fastest"], speed[opt]["points"]
    if best is None:
      print(f"{opt:5s} sweep: none of {len(points)} combinations fits and runs")
      continue
    timed = sum(p["status"] == "timed" for p in points)
    mfu = "n/a" if best["mfu"] is None else f"{best['mfu']:.3f}"
    print(
      f"{opt:5s} sweep: fastest of {timed} timed ({len(points)} combinations): micro "
      f"{best['micro_batch']} remat={best['remat']} attention={best['attention']} loss_chunk="
      f"{best['loss_chunk']}  {best['tokens_per_s']:,.0f} tok/s  MFU {mfu}  peak "
      f"{best['peak_memory_bytes'] / 1e9:.2f} GB"
    )
  sweep = out.get("memory_sweep")
  if sweep:
    for opt in (k for k in sweep if k != "budget_bytes"):
      for remat, r in sweep[opt].items():
        peaks = "  ".join(f"{m}:{b / 1e9:.1f}" for m, b in r["peak_memory_bytes"].items())
        largest = r["largest_micro_batch_in_budget"]
        bound = ">=" if r["all_tested_fit"] else ""
        print(
          f"{opt:5s} remat={remat:13s} peak GB by micro batch  {peaks}  | largest in "
          f"{sweep['budget_bytes'] / 1e9:.0f} GB: {bound}{largest}"
        )


def main(argv):
  del argv
  with cli.flag_errors():
    cfg = cli.config_from_flags(BenchTrainConfig)
    cli.claim_out_dir(FLAGS.out_dir)
    if cfg.profile:
      try:
        cli.check_out_dir(cfg.profile)
      except ValueError as e:
        raise ValueError(str(e).replace("out_dir=", "profile=", 1)) from None
    from muon_jax.lm import step_bench
    from muon_jax.lm import trainer as train

    step_bench.validate(cfg)
    tcfg = step_bench.train_config(cfg)
    train.validate_config(tcfg)
    train.resolve_batching(tcfg)
  from muon_jax.infra import results

  out = step_bench.run(cfg, FLAGS.out_dir)
  results.atomic_write_json(os.path.join(FLAGS.out_dir, "bench_train.json"), out)
  _print(out)


if __name__ == "__main__":
  cli.run(main)
