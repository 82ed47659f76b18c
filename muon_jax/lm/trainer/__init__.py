"""Data-parallel LLaMA pre-training: AdamW vs Muon(+AdamW) (paper Sec 4.3, App 12).

One training step on each device d of the D devices of all P processes:
  grads_d = mean over A micro-batches (B_micro, L+1) of grad lm_loss   (lax.scan)
  grads   = pmean_d grads_d                                             (lax.pmean)
  clip to global norm `clip_norm` (1.0), optimizer update at the peak LR,
  multiply the update by the schedule factor of the *global step* (so a
  skipped non-finite step does not shift the schedule), apply.
global_batch = D * A * B_micro sequences; each process feeds its local
devices its 1/P slice of the same global batch. With shard_muon each device
runs Newton–Schulz on a 1/D share of the Muon matrices (`sharded_muon`).

The schedule (App 12): LR = peak for the first 90% of steps, then cosine
decay to 1% of peak over the last 10%, no warm-up. Both optax.adamw and Muon
apply their decoupled weight decay inside the LR scaling (update =
-lr * (direction + wd * W)), so multiplying the whole update by the factor is
exactly an LR schedule on every parameter group.

Non-finite guard: a step whose loss, gradient norm or updated parameters are
not finite is skipped on device (params / optimizer state unchanged) and
counted; after `max_nonfinite` consecutive skips training stops with status
"stopped_nonfinite". Because bad updates never land, checkpoints only ever
hold finite parameters (and `save` re-checks).

Checkpoints (Orbax CheckpointManager, every `ckpt_every` steps, keep
`keep_checkpoints`): unreplicated params and optimizer state as NumPy, plus a
JSON record of step, data-iterator state, RNG key data, guard counters and
the run config, each step sealed by an integrity record (sha256 per file) that a
resume verifies, falling back to the newest intact step (`checkpoints`). `resume=True` first checks the config against the stored
one (`resume_changes`), then restores the latest checkpoint; the continued
run reproduces the uninterrupted one bit for bit on the same machine.
SIGTERM / SIGINT stop every process after the same step with a checkpoint
(summary status "preempted"; the binary exits with EXIT_PREEMPTED).

A multi-process job calls `initialize_distributed(cfg)` in every process
first; only process 0 writes metrics.jsonl, TensorBoard events, loss.png
and summary.json, while all processes take part in Orbax's saves.

`data_parallel` is the single place that maps the per-device step over
devices (pmap); a jit + sharding path would replace only it.

Modules: `config` (TrainConfig, schedule, resume policy), `step` (loss,
optimizer, per-device steps, the parallel wrapper), `distributed` (launch,
devices, batching), `checkpoints` (Orbax), `loop` (`run`). Every public name
is re-exported here: `from muon_jax.lm import trainer; trainer.run(cfg)`.
"""

from muon_jax.lm.trainer.checkpoints import (
  CheckpointError,
  checkpoint_manager,
  newest_intact,
  read_checkpoint_meta,
  restore_checkpoint,
  save_checkpoint,
  verify_integrity,
)
from muon_jax.lm.trainer.config import (
  DTYPES,
  EXIT_PREEMPTED,
  MODELS,
  OPTIMIZER_ONLY,
  OPTIMIZERS,
  PEAK_TFLOPS,
  RESUME_FIXED,
  RESUME_IGNORED,
  RESUME_SCHEDULE,
  TrainConfig,
  check_settings_act,
  lr_factor,
  resume_changes,
  stored_config,
  unused_settings,
  validate_config,
)
from muon_jax.lm.trainer.distributed import initialize_distributed, resolve_batching, select_devices
from muon_jax.lm.trainer.loop import read_metrics, run
from muon_jax.lm.trainer.step import (
  AXIS,
  build_optimizer,
  data_parallel,
  init_params,
  lm_loss,
  make_eval_step,
  make_train_step,
  mfu,
  model_config,
  peak_flops,
  replicate,
  split_batch,
  unreplicate,
)

__all__ = [
  "AXIS",
  "CheckpointError",
  "DTYPES",
  "EXIT_PREEMPTED",
  "MODELS",
  "OPTIMIZER_ONLY",
  "OPTIMIZERS",
  "PEAK_TFLOPS",
  "RESUME_FIXED",
  "RESUME_IGNORED",
  "RESUME_SCHEDULE",
  "TrainConfig",
  "build_optimizer",
  "check_settings_act",
  "checkpoint_manager",
  "data_parallel",
  "init_params",
  "initialize_distributed",
  "lm_loss",
  "lr_factor",
  "make_eval_step",
  "make_train_step",
  "mfu",
  "model_config",
  "newest_intact",
  "peak_flops",
  "read_checkpoint_meta",
  "read_metrics",
  "replicate",
  "resolve_batching",
  "restore_checkpoint",
  "resume_changes",
  "run",
  "save_checkpoint",
  "select_devices",
  "split_batch",
  "stored_config",
  "unreplicate",
  "unused_settings",
  "validate_config",
  "verify_integrity",
]
