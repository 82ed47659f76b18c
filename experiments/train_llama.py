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
from muon_jax.lm import landscape_probe as landscape
from muon_jax.lm import trainer as train
from muon_jax.lm.trainer import TrainConfig

FLAGS = cli.define_flags(TrainConfig, exclude=("probe",))
# The landscape probe's settings as --probe_<field> (paper App 12 defaults).
cli.define_flags(landscape.ProbeConfig, prefix="probe_", exclude=("save_arrays",))


def _probe_config():
  probe = cli.config_from_flags(landscape.ProbeConfig, prefix="probe_")
  try:
    landscape.validate_probe_config(probe)
  except ValueError as e:
    raise ValueError(f"probe_{e}") from None
  return probe


def main(argv):
  del argv
  # Orbax logs every save step at INFO; keep the console to training progress.
  logging.get_absl_handler().addFilter(lambda record: "orbax" not in record.pathname)
  with cli.flag_errors():
    probe = _probe_config() if FLAGS.probe_steps else None
    cfg = cli.config_from_flags(TrainConfig, probe=probe)
    train.validate_config(cfg)
    train.check_settings_act(cfg, {name for name in FLAGS if FLAGS[name].present})
    cli.claim_out_dir(cfg.out_dir, owner=cfg.process_id == 0)
    train.initialize_distributed(cfg)
    summary = train.run(cfg)
  logging.info(
    "done: %s, final loss %s, out_dir %s", summary["status"], summary["final_loss"], cfg.out_dir
  )
  if summary["status"] == "preempted":
    raise SystemExit(train.EXIT_PREEMPTED)
  if summary["status"] != "ok":
    raise SystemExit(1)


if __name__ == "__main__":
  cli.run(main)
