"""Benchmark: training-step throughput, MFU and the Muon/AdamW step-time ratio.

  python -m experiments.bench_train                          # tiny on this machine (+160M FLOP count)
  python -m experiments.bench_train --model=160m --steps=5   # GPU: paper batch 512 x 1024, bf16

Both optimizers run the same compiled trainer step (`muon_jax.train`:
micro-batch scan, pmean, clip, update) on the same random-token batch; their
steps are timed interleaved in this process and the medians compared. MFU is
flops_per_token x tokens/s / (devices x peak); peak comes from --peak_tflops,
else the known-GPU/TPU table (dense bf16), else (CPU) a measured f32 matmul
rate, which the JSON labels. Writes out_dir/bench_train.json.
"""

import os

from absl import app, flags, logging

from muon_jax import validate

flags.DEFINE_enum("model", "tiny", ["tiny", "160m"], "Model to time (160M FLOPs/params are always reported).")
flags.DEFINE_integer("steps", 5, "Timed steps per optimizer (median reported), >= 1.")
flags.DEFINE_integer("global_batch", 0, "Sequences per step; 0 = 16 (tiny) or 512 (160m, the paper's).")
flags.DEFINE_integer("micro_batch", 0, "Sequences per device per micro-step; 0 = min(16, "
                     "global/devices) for 160m, global/devices for tiny.")
flags.DEFINE_integer("seq_len", 0, "Tokens per sequence; 0 = 128 (tiny) or 1024 (160m).")
flags.DEFINE_enum("compute_dtype", "auto", ["auto", "float32", "bfloat16"],
                  "auto = bfloat16 on GPU/TPU, float32 on CPU.")
flags.DEFINE_float("peak_tflops", 0.0, "Per-device peak TFLOP/s (0 = table, or measured matmul on CPU).")
flags.DEFINE_integer("num_devices", 0, "Local devices (0 = all).")
flags.DEFINE_string("out_dir", "out/bench_train", "Where bench_train.json goes.")
flags.DEFINE_boolean("ns_shard_report", True, "With > 1 device: Newton-Schulz FLOPs per device "
                     "and Muon update / whole step time, replicated vs sharded NS.")
FLAGS = flags.FLAGS


def run():
  for name in ("global_batch", "micro_batch", "seq_len", "num_devices"):
    validate.check_range(name, getattr(FLAGS, name), low=0)
  validate.check_range("steps", FLAGS.steps, low=1)
  validate.check_range("peak_tflops", FLAGS.peak_tflops, low=0)

  import dataclasses

  import jax
  import numpy as np

  from muon_jax import benchmarking, results
  from muon_jax import train as tr
  from muon_jax.models import llama

  big = FLAGS.model == "160m"
  backend = jax.default_backend()
  dtype = FLAGS.compute_dtype if FLAGS.compute_dtype != "auto" else (
      "float32" if backend == "cpu" else "bfloat16")
  global_batch = FLAGS.global_batch or (512 if big else 16)
  n_local = FLAGS.num_devices or jax.local_device_count()
  micro = FLAGS.micro_batch or (max(1, min(16, global_batch // n_local)) if big else 0)
  cfg = tr.TrainConfig(model=FLAGS.model, steps=1000, seq_len=FLAGS.seq_len or (1024 if big else 128),
                       global_batch=global_batch, micro_batch=micro,
                       compute_dtype=dtype, num_devices=FLAGS.num_devices,
                       peak_tflops=FLAGS.peak_tflops)
  tr.validate_config(cfg)
  cfg, devices, _ = tr.resolve_batching(cfg)
  n_dev = len(devices)
  vocab = 32000 if big else 257
  mcfg = tr.model_config(cfg, vocab)

  peak = tr.peak_flops(cfg, devices[0])
  peak_source = "flag" if FLAGS.peak_tflops else "device table (dense bf16)"
  if peak is None:
    peak = benchmarking.matmul_peak_gflops(n=1024) * 1e9
    peak_source = "measured f32 1024^3 matmul on this CPU"

  key = jax.random.key(0)
  graphdef, params = tr.init_params(mcfg, jax.random.fold_in(key, 0))
  tokens = np.asarray(jax.random.randint(jax.random.fold_in(key, 1),
                                         (cfg.global_batch, cfg.seq_len + 1), 0, vocab), np.int32)
  batch = tr.split_batch(tokens, n_dev, cfg.micro_batch)

  class Runner:
    """One optimizer's replicated state; each call runs one step in place."""

    def __init__(self, opt_name, **overrides):
      c = dataclasses.replace(cfg, optimizer=opt_name, **overrides)
      opt = tr.build_optimizer(c, n_dev)
      self.step_fn = tr.data_parallel(tr.make_train_step(graphdef, opt, c), devices)
      self.params = tr.replicate(params, devices)
      self.opt_state = tr.replicate(opt.init(params), devices)
      self.step = 0

    def __call__(self):
      self.step += 1
      self.params, self.opt_state, m = self.step_fn(self.params, self.opt_state,
                                                    np.int32(self.step), batch)
      return m["loss"]

  logging.info("compiling %s (%s, %d devices, micro %d, global %d x %d)", FLAGS.model, dtype, n_dev,
               cfg.micro_batch, cfg.global_batch, cfg.seq_len)
  runners = {name: Runner(name) for name in ("adamw", "muon")}
  times = benchmarking.median_times(list(runners.values()), FLAGS.steps)
  fpt = llama.flops_per_token(mcfg, cfg.seq_len)
  tokens_per_step = cfg.global_batch * cfg.seq_len
  out = {"model": FLAGS.model, "device_kind": devices[0].device_kind, "backend": backend,
         "devices": n_dev, "compute_dtype": dtype, "global_batch": cfg.global_batch,
         "micro_batch": cfg.micro_batch, "seq_len": cfg.seq_len,
         "accum_steps": cfg.global_batch // (n_dev * cfg.micro_batch),
         "params": llama.param_count(llama.abstract_model(mcfg)), "flops_per_token": fpt,
         "peak_tflops_per_device": peak / 1e12, "peak_source": peak_source, "timed_steps": FLAGS.steps}
  for name, t in zip(runners, times):
    med = float(np.median(t))
    tps = tokens_per_step / med
    out[name] = {"step_s_median": med, "step_s_all": t, "tokens_per_s": tps,
                 "mfu": tr.mfu(tps, fpt, peak, n_dev)}
  out["muon_over_adamw_step_time"] = out["muon"]["step_s_median"] / out["adamw"]["step_s_median"]
  m160 = llama.llama_160m()
  out["llama_160m_reference"] = {"params": llama.param_count(llama.abstract_model(m160)),
                                 "matmul_params": llama.matmul_param_count(m160),
                                 "flops_per_token_seq1024": llama.flops_per_token(m160, 1024)}
  if FLAGS.ns_shard_report and n_dev > 1:
    out["ns_shard"] = ns_shard_report(cfg, params, devices, Runner)
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  results.atomic_write_json(os.path.join(FLAGS.out_dir, "bench_train.json"), out)
  for name in runners:
    r = out[name]
    print(f"{FLAGS.model} {name:5s}: step {r['step_s_median'] * 1e3:9.1f} ms  "
          f"{r['tokens_per_s']:12,.0f} tok/s  MFU {r['mfu']:.3f}")
  print(f"Muon/AdamW step time: {out['muon_over_adamw_step_time']:.3f}  "
        f"({out['device_kind']}, {n_dev} device(s), {dtype}, batch {cfg.global_batch}x{cfg.seq_len}, "
        f"peak {peak / 1e12:.2f} TFLOP/s from {peak_source})")
  if "ns_shard" in out:
    r = out["ns_shard"]
    print(f"NS sharded over {n_dev} devices: NS GFLOP/device {r['ns_gflops_per_device_replicated']:.3f}"
          f" -> {r['ns_gflops_per_device_sharded']:.3f} (x{r['ns_flops_ratio']:.3f}); Muon update "
          f"{r['muon_update_s_replicated'] * 1e3:.1f} -> {r['muon_update_s_sharded'] * 1e3:.1f} ms "
          f"(x{r['muon_update_time_ratio']:.3f}); whole step x{r['step_time_ratio']:.3f}")


def ns_shard_report(cfg, params, devices, runner_cls) -> dict:
  """Replicated vs sharded Newton–Schulz on the same Muon group and devices.

  NS FLOPs per device come from the static plan (`sharded_muon.balance`);
  times are medians of interleaved runs in this process: the Muon group's
  optimizer update alone (momentum + NS + all-gather) and the whole trainer
  step (`runner_cls`, bench's Runner).
  """
  import dataclasses

  import jax
  import numpy as np

  from muon_jax import benchmarking, sharded_muon
  from muon_jax import train as tr
  from muon_jax.muon import muon_labels

  n_dev = len(devices)
  muon_params = jax.tree.map(lambda p, label: p if label == "muon" else None, params,
                             muon_labels(params))
  shapes = [tuple(x.shape) for x in jax.tree.leaves(muon_params)]
  plan = sharded_muon.balance(shapes, n_dev, cfg.ns_steps)
  per_device = sharded_muon.plan_flops(plan, shapes, cfg.ns_steps)
  replicated = sum(per_device)

  def update_runner(shard):
    opt = tr.build_optimizer(dataclasses.replace(cfg, shard_muon=shard), n_dev)
    key = jax.random.key(1)
    grads = jax.tree.map(lambda p: np.asarray(jax.random.normal(key, p.shape), p.dtype), params)
    g_rep, s_rep = tr.replicate(grads, devices), tr.replicate(opt.init(params), devices)
    p_rep = tr.replicate(params, devices)
    f = jax.pmap(lambda g, s, p: opt.update(g, s, p)[0], axis_name=tr.AXIS, devices=devices)
    return lambda: f(g_rep, s_rep, p_rep)

  upd = benchmarking.median_times([update_runner(False), update_runner(True)], FLAGS.steps)
  step = benchmarking.median_times([runner_cls("muon", shard_muon=False),
                                    runner_cls("muon", shard_muon=True)], FLAGS.steps)
  upd_med = [float(np.median(t)) for t in upd]
  step_med = [float(np.median(t)) for t in step]
  return {"devices": n_dev, "muon_matrices": sum(len(p) for p in plan),
          "ns_gflops_per_device_replicated": replicated / 1e9,
          "ns_gflops_per_device_sharded": max(per_device) / 1e9,
          "ns_flops_ratio": max(per_device) / replicated,
          "muon_update_s_replicated": upd_med[0], "muon_update_s_sharded": upd_med[1],
          "muon_update_time_ratio": upd_med[1] / upd_med[0],
          "step_s_replicated": step_med[0], "step_s_sharded": step_med[1],
          "step_time_ratio": step_med[1] / step_med[0]}


def main(argv):
  del argv
  validate.run_or_exit(run)


if __name__ == "__main__":
  app.run(main)
