"""Pre-train LLaMA with AdamW or Muon(+AdamW), data parallel over local devices (paper Sec 4.3, App 12).

  python -m experiments.train_llama                       # tiny, CPU, offline corpus, ~minutes
  python -m experiments.train_llama --model=160m --compute_dtype=bfloat16 \
      --corpus=hf:HuggingFaceFW/fineweb-edu:sample-100BT --tokenizer=PATH_TO_LLAMA_TOKENIZER \
      --seq_len=1024 --global_batch=512 --micro_batch=16 --steps=10000 \
      --optimizer=muon --probe_steps=100,10000 --out_dir=runs/160m_muon

Two nodes (each runs the same command with its own --process_id):
  --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=0   (node 0)
  --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=1   (node 1)

Writes out_dir/metrics.jsonl, summary.json, loss.png, checkpoints/ and
probe_step*.json. --resume continues from the latest checkpoint.
"""

import os

from absl import app, flags, logging

import dataclasses

from muon_jax import validate
from muon_jax.train import TrainConfig

D = TrainConfig()
flags.DEFINE_enum("model", D.model, ["tiny", "160m"], "Model preset.")
flags.DEFINE_enum("optimizer", D.optimizer, ["adamw", "muon"], "adamw on all params, or Muon on "
                  "2-D hidden weights + AdamW on embed/lm_head/norms.")
flags.DEFINE_integer("steps", D.steps, "Training steps (paper: 10000), >= 1.")
flags.DEFINE_integer("global_batch", D.global_batch, "Sequences per step over all devices (paper: 512).")
flags.DEFINE_integer("micro_batch", D.micro_batch, "Sequences per device per micro-step; 0 = no "
                     "accumulation. global_batch must be a multiple of devices x micro_batch.")
flags.DEFINE_integer("seq_len", D.seq_len, "Tokens per sequence (paper: 1024).")
flags.DEFINE_float("lr", D.lr, "AdamW run: peak LR.")
flags.DEFINE_float("muon_lr", D.muon_lr, "Muon run: peak LR of the Muon group.")
flags.DEFINE_float("adam_lr", None, "Muon run: peak LR of the AdamW group (default = --muon_lr).")
flags.DEFINE_float("adam_b1", D.adam_b1, "AdamW beta1 in [0, 1).")
flags.DEFINE_float("adam_b2", D.adam_b2, "AdamW beta2 in [0, 1).")
flags.DEFINE_float("adam_eps", D.adam_eps, "AdamW epsilon.")
flags.DEFINE_float("weight_decay", D.weight_decay, "AdamW decoupled weight decay (both runs).")
flags.DEFINE_float("muon_weight_decay", D.muon_weight_decay, "Muon decoupled weight decay.")
flags.DEFINE_float("muon_momentum", D.muon_momentum, "Muon momentum in [0, 1).")
flags.DEFINE_string("ns_coeffs", D.ns_coeffs, "Newton-Schulz preset (kimi | dion | polar_express).")
flags.DEFINE_integer("ns_steps", D.ns_steps, "Newton-Schulz iterations.")
flags.DEFINE_float("clip_norm", D.clip_norm, "Global gradient-norm clip (> 0).")
flags.DEFINE_float("decay_start", D.decay_start, "Fraction of steps at constant LR before cosine.")
flags.DEFINE_float("final_lr_frac", D.final_lr_frac, "LR at the last step / peak.")
flags.DEFINE_integer("seed", D.seed, "Seed for init, data order and probe stream.")
flags.DEFINE_string("out_dir", D.out_dir, "Output folder.")
flags.DEFINE_integer("ckpt_every", D.ckpt_every, "Checkpoint period in steps (0 = only at the end).")
flags.DEFINE_integer("keep_checkpoints", D.keep_checkpoints, "Checkpoints kept, >= 1.")
flags.DEFINE_boolean("resume", False, "Continue from the latest checkpoint in --out_dir.")
flags.DEFINE_string("corpus", D.corpus, "stdlib | files:PATH | hf:NAME[:CONFIG].")
flags.DEFINE_string("tokenizer", D.tokenizer, "bytes | train:VOCAB | PATH.")
flags.DEFINE_string("data_cache_dir", None, "Tokenizer/corpus cache folder.")
flags.DEFINE_enum("compute_dtype", D.compute_dtype, ["float32", "bfloat16"], "Compute dtype (paper: bfloat16).")
flags.DEFINE_enum("param_dtype", D.param_dtype, ["float32", "bfloat16"], "Parameter storage dtype.")
flags.DEFINE_integer("log_every", D.log_every, "Log period in steps.")
flags.DEFINE_integer("max_nonfinite", D.max_nonfinite, "Stop after this many consecutive non-finite steps.")
flags.DEFINE_integer("num_devices", D.num_devices, "Local devices to use (0 = all).")
flags.DEFINE_float("peak_tflops", D.peak_tflops, "Per-device peak TFLOP/s for MFU (0 = known GPU/TPU table).")
flags.DEFINE_enum("attention", D.attention, ["xla", "cudnn", "auto"], "Attention implementation "
                  "(jax.nn.dot_product_attention): xla, cudnn (NVIDIA GPU, bfloat16) or auto.")
flags.DEFINE_enum("remat", D.remat, ["none", "block", "dots", "dots_no_batch"], "Per-block "
                  "rematerialisation policy (none keeps all activations).")
flags.DEFINE_integer("loss_chunk", D.loss_chunk, "Tokens per logits chunk in the loss, >= 0 "
                     "(0 = full logits).")
flags.DEFINE_float("step_sleep_s", D.step_sleep_s, "Sleep after each step (kill/resume demos only).")
flags.DEFINE_list("probe_steps", [], "Steps after whose update the landscape probe runs (paper: 100,10000).")
flags.DEFINE_integer("probe_batch", D.probe_batch, "Sequences per probe batch (0 = micro_batch).")
flags.DEFINE_string("probe_path", "layers/9/mlp/down_proj", "Probe target parameter path.")
flags.DEFINE_integer("probe_grad_batches", 50, "Probe: batches for the exact gradient.")
flags.DEFINE_integer("probe_eval_batches", 10, "Probe: batches per grid point.")
flags.DEFINE_integer("probe_bulk_index", 500, "Probe: 1-based bulk singular pair.")
flags.DEFINE_integer("probe_grid", 41, "Probe: grid points per axis.")
flags.DEFINE_list("probe_alpha_range", ["-1", "1"], "Probe: spike-axis range low,high.")
flags.DEFINE_list("probe_beta_range", ["-1", "1"], "Probe: bulk-axis range low,high.")
flags.DEFINE_string("probe_normalization", "unit", "Probe: direction scale (unit | spectral | frobenius).")
flags.DEFINE_string("coordinator_address", "", "Multi-host: host:port of process 0 (empty = single host).")
flags.DEFINE_integer("num_processes", 1, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", 0, "Multi-host: this process's index.")
FLAGS = flags.FLAGS


def _config() -> TrainConfig:
  probe_steps = tuple(validate.parse_list("probe_steps", FLAGS.probe_steps, int)) if FLAGS.probe_steps else ()
  probe = None
  if probe_steps:
    from muon_jax import landscape
    probe = landscape.ProbeConfig(
        path=FLAGS.probe_path, grad_batches=FLAGS.probe_grad_batches,
        eval_batches=FLAGS.probe_eval_batches, bulk_index=FLAGS.probe_bulk_index,
        grid=FLAGS.probe_grid,
        alpha_range=tuple(validate.parse_list("probe_alpha_range", FLAGS.probe_alpha_range)),
        beta_range=tuple(validate.parse_list("probe_beta_range", FLAGS.probe_beta_range)),
        normalization=FLAGS.probe_normalization)
    landscape.validate_probe_config(probe)
  kw = {f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(TrainConfig)
        if f.name not in ("probe", "probe_steps")}
  return TrainConfig(**kw, probe_steps=probe_steps, probe=probe)


def plot_losses(rows, path, title):
  import matplotlib.pyplot as plt
  from muon_jax import results
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
  ax.set_xlabel("step")
  ax.set_ylabel("train loss (nats/token)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  results.save_figure(fig, path)
  plt.close(fig)


def run():
  from muon_jax import train
  cfg = _config()
  train.validate_config(cfg)
  validate.check_range("num_processes", FLAGS.num_processes, low=1)
  validate.check_range("process_id", FLAGS.process_id, low=0, high=FLAGS.num_processes - 1)
  train.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  summary = train.train(cfg)
  if FLAGS.process_id == 0:
    plot_losses(train.read_metrics(cfg.out_dir), os.path.join(cfg.out_dir, "loss.png"),
                f"LLaMA-{cfg.model}, {cfg.optimizer}, global batch {cfg.global_batch}x{cfg.seq_len}")
  logging.info("done: %s, final loss %s, out_dir %s", summary["status"], summary["final_loss"], cfg.out_dir)
  if summary["status"] != "ok":
    raise SystemExit(1)


def main(argv):
  del argv
  # Orbax logs every save step at INFO; keep the console to training progress.
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
  validate.run_or_exit(run)


if __name__ == "__main__":
  app.run(main)
