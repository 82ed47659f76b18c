"""Pre-train LLaMA with AdamW or Muon(+AdamW), data parallel over all processes' devices (paper Sec 4.3, App 12).

  python -m experiments.train_llama                       # tiny, CPU, offline corpus, ~minutes
  python -m experiments.train_llama --model=160m --compute_dtype=bfloat16 \
      --corpus=hf:HuggingFaceFW/fineweb-edu:sample-100BT --tokenizer=PATH_TO_LLAMA_TOKENIZER \
      --seq_len=1024 --global_batch=512 --micro_batch=16 --steps=10000 \
      --optimizer=muon --probe_steps=100,10000 --out_dir=runs/160m_muon

A job of N processes (one per node, or several on one machine) runs the same
command in every process with its own --process_id (0 .. N-1), the same
--num_processes=N and the address of process 0 (README: cluster launch):
  --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=0   (node 0)
  --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=1   (node 1)

Writes out_dir/metrics.jsonl, tensorboard/, summary.json, loss.png (refreshed
at every eval and checkpoint), checkpoints/ and probe_step*.json; only
process 0 writes files other than checkpoints. SIGTERM / SIGINT save a
checkpoint at the next step boundary and exit with status 75; --resume
continues from the latest checkpoint. Bad flags exit with status 2.
"""

from absl import logging

from experiments import cli
from muon_jax import train
from muon_jax.train import TrainConfig

FLAGS = cli.define_flags(TrainConfig, exclude=("probe",))
# The landscape probe's settings, as --probe_<field> (paper App 12 defaults).
PROBE_FLAGS = {
    "path": ("layers/9/mlp/down_proj", "Probe target parameter path."),
    "grad_batches": (50, "Probe: batches for the exact gradient."),
    "eval_batches": (10, "Probe: batches per grid point."),
    "bulk_index": (500, "Probe: 1-based bulk singular pair."),
    "grid": (41, "Probe: grid points per axis."),
    "alpha_range": (["-1", "1"], "Probe: spike-axis range low,high."),
    "beta_range": (["-1", "1"], "Probe: bulk-axis range low,high."),
    "normalization": ("unit", "Probe: direction scale (unit | spectral | frobenius)."),
}


def _define_probe_flags():
  from absl import flags
  for name, (default, doc) in PROBE_FLAGS.items():
    define = {str: flags.DEFINE_string, int: flags.DEFINE_integer, list: flags.DEFINE_list}
    define[type(default)](f"probe_{name}", default, doc)


_define_probe_flags()


def _probe_config():
  from muon_jax import landscape
  ranges = {}
  for name in ("alpha_range", "beta_range"):
    text = FLAGS[f"probe_{name}"].value
    try:
      ranges[name] = tuple(float(x) for x in text)
    except ValueError:
      raise ValueError(f"probe_{name}: could not parse {','.join(text)!r} as numbers") from None
    if len(ranges[name]) != 2:
      raise ValueError(f"probe_{name} must be two numbers low,high")
  probe = landscape.ProbeConfig(
      path=FLAGS.probe_path, grad_batches=FLAGS.probe_grad_batches,
      eval_batches=FLAGS.probe_eval_batches, bulk_index=FLAGS.probe_bulk_index,
      grid=FLAGS.probe_grid, normalization=FLAGS.probe_normalization, **ranges)
  landscape.validate_probe_config(probe)
  return probe


def main(argv):
  del argv
  # Orbax logs every save step at INFO; keep the console to training progress.
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
  with cli.flag_errors():
    probe = _probe_config() if FLAGS.probe_steps else None
    cfg = cli.config_from_flags(TrainConfig, probe=probe)
    train.validate_config(cfg)
    cli.check_out_dir(cfg.out_dir)
    train.initialize_distributed(cfg)
    summary = train.train(cfg)
  logging.info("done: %s, final loss %s, out_dir %s", summary["status"], summary["final_loss"],
               cfg.out_dir)
  if summary["status"] == "preempted":
    raise SystemExit(train.EXIT_PREEMPTED)
  if summary["status"] != "ok":
    raise SystemExit(1)


if __name__ == "__main__":
  cli.run(main)
