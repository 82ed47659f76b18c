"""A run's settings: TrainConfig and its checks, the LR schedule, and the resume policy.

Device-free: nothing here touches a backend, so the binaries check flags with it first.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import jax.numpy as jnp
import numpy as np

from muon_jax.infra import config
from muon_jax.infra.config import field
from muon_jax.lm import llama

MODELS = ("tiny", "160m")
OPTIMIZERS = ("adamw", "muon")
DTYPES = ("float32", "bfloat16")

# Dense bf16 peak FLOP/s per device (vendor datasheets, no sparsity), matched
# as substrings of `device.device_kind`. CPU has no entry: pass peak_tflops.
PEAK_TFLOPS = {
  "H200": 989.0,
  "H100": 989.0,
  "A100": 312.0,
  "L4": 121.0,
  "A10G": 125.0,
  "TPU v4": 275.0,
  "TPU v5 lite": 197.0,
  "TPU v5e": 197.0,
  "TPU v5p": 459.0,
  "TPU v6": 918.0,
}


# Optional[X], not X | None: config.element_type recognises typing.Optional.
@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """All knobs of a run. Defaults: tiny model, CPU-sized; paper values in BUILD_NOTES."""

  model: str = field("tiny", "model preset", choices=MODELS)
  optimizer: str = field(
    "muon",
    "adamw on all params, or Muon on 2-D hidden weights + AdamW on embed/lm_head/norms",
    choices=OPTIMIZERS,
  )
  steps: int = field(300, "training steps (paper: 10000)", low=1)
  global_batch: int = field(
    16, "sequences per step over all devices of all processes (paper: 512)", low=1
  )
  micro_batch: int = field(
    0, "sequences per device per micro-step; 0: global_batch / devices, no accumulation", low=0
  )
  seq_len: int = field(128, "tokens per sequence (paper: 1024)", low=1)
  lr: float = field(1e-3, "AdamW run: peak LR", low=0, low_open=True)
  muon_lr: float = field(1e-3, "Muon run: peak LR of the Muon group", low=0, low_open=True)
  adam_lr: Optional[float] = field(
    None,
    "Muon run: peak LR of the AdamW group (unset: muon_lr)",  # noqa: UP045
    low=0,
    low_open=True,
  )
  adam_b1: float = field(0.9, "AdamW beta1", low=0, high=1, high_open=True)
  adam_b2: float = field(0.95, "AdamW beta2", low=0, high=1, high_open=True)
  adam_eps: float = field(1e-8, "AdamW epsilon", low=0)
  weight_decay: float = field(0.1, "AdamW decoupled weight decay (both runs)", low=0)
  muon_weight_decay: float = field(0.1, "Muon decoupled weight decay", low=0)
  muon_momentum: float = field(0.95, "Muon momentum", low=0, high=1, high_open=True)
  ns_coeffs: str = field(
    "kimi", "Newton-Schulz coefficient preset", choices=("kimi", "dion", "polar_express")
  )
  ns_steps: int = field(5, "Newton-Schulz iterations", low=1)
  shard_muon: Optional[bool] = field(
    None,
    "split the Newton-Schulz work over the data-parallel "  # noqa: UP045
    "devices and all-gather (unset: on when devices > 1)",
  )
  clip_norm: float = field(1.0, "global gradient-norm clip", low=0, low_open=True)
  decay_start: float = field(
    0.9, "fraction of steps at the peak LR before the cosine decay", low=0, high=1
  )
  final_lr_frac: float = field(0.01, "LR at the last step over the peak LR", low=0, high=1)
  seed: int = field(0, "seed of init, data order, eval and probe streams")
  out_dir: str = field("runs/train_llama", "output folder (metrics, checkpoints, figures)")
  ckpt_every: int = field(100, "checkpoint period in steps (0: only at the end)", low=0)
  keep_checkpoints: int = field(3, "checkpoints kept", low=1)
  resume: bool = field(False, "continue from the latest checkpoint in out_dir")
  allow_schedule_change: bool = field(
    False,
    "on resume, accept a changed LR schedule (peak LRs, "
    "decay_start, final_lr_frac, or steps moving the decay)",
  )
  corpus: str = field("stdlib", "stdlib | files:PATH | hf:NAME[:CONFIG]")
  tokenizer: str = field("bytes", "bytes | train:VOCAB | PATH")
  data_cache_dir: Optional[str] = field(None, "tokenizer/corpus cache folder (unset: default)")  # noqa: UP045
  compute_dtype: str = field("float32", "compute dtype (paper: bfloat16)", choices=DTYPES)
  param_dtype: str = field("float32", "parameter storage dtype", choices=DTYPES)
  log_every: int = field(10, "log period in steps", low=1)
  eval_every: int = field(50, "held-out eval period in steps (0: no eval)", low=0)
  eval_batches: int = field(4, "held-out batches of global_batch sequences per eval", low=1)
  max_nonfinite: int = field(5, "stop after this many consecutive non-finite steps", low=1)
  num_devices: int = field(0, "devices per process (0: all local devices)", low=0)
  peak_tflops: float = field(0.0, "per-device peak TFLOP/s for MFU (0: known GPU/TPU table)", low=0)
  probe_steps: tuple[int, ...] = field(
    (),
    "steps after whose update the landscape probe runs (paper: 100,10000)",
    low=1,
    nonempty=False,
  )
  probe: Any = None  # landscape.ProbeConfig, required when probe_steps is set
  probe_batch: int = field(0, "sequences per probe batch (0: micro_batch)", low=0)
  step_sleep_s: float = field(
    0.0, "sleep after each step (kill/resume demos and tests only)", low=0
  )
  coordinator_address: str = field("", "multi-process: host:port of process 0 (empty: one process)")
  num_processes: int = field(1, "multi-process: number of processes in the job", low=1)
  process_id: int = field(0, "multi-process: this process's index, 0 .. num_processes - 1", low=0)
  coordinator_timeout_s: int = field(
    300, "multi-process: seconds to wait for the coordinator and all processes", low=1
  )
  attention: str = field(
    "xla",
    "attention implementation of jax.nn.dot_product_attention "
    "(cudnn: NVIDIA GPU, bfloat16; auto: cudnn where possible)",
    choices=tuple(llama.ATTENTION_IMPLEMENTATIONS),
  )
  remat: str = field(
    "none",
    "per-block rematerialisation policy (none keeps all activations)",
    choices=tuple(llama.REMAT_POLICIES),
  )
  loss_chunk: int = field(0, "tokens per logits chunk in the loss (0: full logits)", low=0)


# Resume policy: settings that define the model, the optimizer or the data
# order must match the checkpoint; the LR schedule may change only when
# allowed; the rest (steps extension, cadence, devices, launch) is listed.
# Not recorded: resume-time switches, the probe object and process_id (which
# differs between the processes of one job).
RESUME_FIXED = (
  "model",
  "optimizer",
  "global_batch",
  "seq_len",
  "seed",
  "corpus",
  "tokenizer",
  "compute_dtype",
  "param_dtype",
  "adam_b1",
  "adam_b2",
  "adam_eps",
  "weight_decay",
  "muon_weight_decay",
  "muon_momentum",
  "ns_coeffs",
  "ns_steps",
  "clip_norm",
)
RESUME_SCHEDULE = ("lr", "muon_lr", "adam_lr", "decay_start", "final_lr_frac")
RESUME_IGNORED = ("resume", "allow_schedule_change", "probe", "process_id")
# Settings only one optimizer's run reads: a run of the other never uses them, so giving one
# is an error (`check_settings_act`) and a resume ignores their changes.
OPTIMIZER_ONLY = {
  "adamw": ("lr",),
  "muon": (
    "muon_lr",
    "adam_lr",
    "muon_weight_decay",
    "muon_momentum",
    "ns_coeffs",
    "ns_steps",
    "shard_muon",
  ),
}
_INSTEAD = {"lr": "muon_lr (Muon group) and adam_lr (its AdamW group)", "muon_lr": "lr"}

# Exit status of a run stopped by SIGTERM / SIGINT after saving its checkpoint
# (EX_TEMPFAIL: try again later, here with --resume).
EXIT_PREEMPTED = 75


def validate_config(cfg: TrainConfig) -> None:
  """Device-free checks; raises ValueError starting with the field's name."""
  config.check(cfg)
  llama.PRESETS[cfg.model](dtype=cfg.compute_dtype, attention=cfg.attention)
  max_len = llama.PRESETS[cfg.model]().max_position_embeddings
  if cfg.seq_len > max_len:
    raise ValueError(f"seq_len={cfg.seq_len} exceeds the {cfg.model} model's {max_len} positions")
  if any(s > cfg.steps for s in cfg.probe_steps):
    raise ValueError(
      f"probe_steps={','.join(map(str, cfg.probe_steps))} must be <= steps ({cfg.steps})"
    )
  if cfg.probe_steps and cfg.probe is None:
    raise ValueError("probe_steps needs a probe config (landscape.ProbeConfig)")
  if cfg.process_id >= cfg.num_processes:
    raise ValueError(f"process_id={cfg.process_id} must be < num_processes ({cfg.num_processes})")
  if cfg.num_processes > 1 and not cfg.coordinator_address:
    raise ValueError(f"coordinator_address is required with num_processes={cfg.num_processes}")


def unused_settings(optimizer: str) -> tuple[str, ...]:
  """The settings a run with `optimizer` never reads (the other optimizer's own)."""
  return tuple(name for opt, names in OPTIMIZER_ONLY.items() if opt != optimizer for name in names)


def check_settings_act(cfg: TrainConfig, given) -> None:
  """Refuses settings the caller gave (`given`: field names) that cfg.optimizer never reads.

  Raises:
    ValueError: starting with the first such field's name, saying what the run reads.
  """
  unused = [name for name in unused_settings(cfg.optimizer) if name in given]
  if unused:
    name = unused[0]
    instead = f"; set {_INSTEAD[name]} instead" if name in _INSTEAD else ""
    raise ValueError(
      f"{name} has no effect on an optimizer={cfg.optimizer} run (only "
      f"{'muon' if cfg.optimizer == 'adamw' else 'adamw'} runs read it){instead}"
    )


def lr_factor(step, total_steps: int, decay_start: float = 0.9, final_frac: float = 0.01):
  """Schedule multiplier for the update of 1-based `step` (paper App 12).

  1 for step <= decay_start * total_steps, then
  final + (1 - final) * (1 + cos(pi * t)) / 2 with t going linearly from 0 to 1
  at the last step, so the last update uses exactly final_frac * peak.
  """
  n_const = round(decay_start * total_steps)
  n_decay = max(total_steps - n_const, 1)
  t = jnp.clip((jnp.asarray(step, jnp.float32) - n_const) / n_decay, 0.0, 1.0)
  return final_frac + (1.0 - final_frac) * 0.5 * (1.0 + jnp.cos(jnp.pi * t))


def stored_config(cfg: TrainConfig) -> dict:
  """The settings a checkpoint and summary.json record (all but resume-time switches)."""
  return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_IGNORED}


def resume_changes(stored: dict, cfg: TrainConfig, start: int) -> list[str]:
  """Checks a resumed run's config against the checkpoint's; returns what changed.

  Raises ValueError naming every changed model / optimizer / data-order
  setting, and every LR-schedule change (including a steps change that
  moves the schedule over steps already run, or at the next step) unless
  cfg.allow_schedule_change. Returns "name: old -> new" for the settings that
  may change (to be logged). Settings cfg.optimizer never reads are ignored.
  """
  new = stored_config(cfg)
  unused = unused_settings(cfg.optimizer)
  changed = [k for k in new if k in stored and k not in unused and _as_stored(new[k]) != stored[k]]
  fixed = [k for k in changed if k in RESUME_FIXED]
  if fixed:
    listing = ", ".join(f"{k}={new[k]} (checkpoint: {stored[k]})" for k in fixed)
    raise ValueError(
      f"{fixed[0]}: resume cannot change the model, optimizer or data order: "
      f"{listing}; use a new out_dir"
    )
  schedule = [k for k in changed if k in RESUME_SCHEDULE]
  if "steps" in changed:
    upto = np.arange(1, start + 2)
    old = lr_factor(upto, stored["steps"], stored["decay_start"], stored["final_lr_frac"])
    now = lr_factor(upto, cfg.steps, stored["decay_start"], stored["final_lr_frac"])
    if not np.array_equal(np.asarray(old), np.asarray(now)):
      schedule.append("steps")
  if schedule and not cfg.allow_schedule_change:
    listing = ", ".join(f"{k}={new[k]} (checkpoint: {stored[k]})" for k in schedule)
    raise ValueError(
      f"{schedule[0]}: resume would change the LR schedule at step {start}: "
      f"{listing}; pass allow_schedule_change to accept it"
    )
  return [f"{k}: {stored[k]} -> {new[k]}" for k in changed if k not in fixed]


def _as_stored(value):
  """A config value as it reads back from the checkpoint's JSON."""
  return json.loads(json.dumps(value))
