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
the run config. `resume=True` first checks the config against the stored
one (`resume_changes`), then restores the latest checkpoint; the continued
run reproduces the uninterrupted one bit for bit on the same machine.
SIGTERM / SIGINT stop every process after the same step with a checkpoint
(summary status "preempted"; the binary exits with EXIT_PREEMPTED).

A multi-process job calls `initialize_distributed(cfg)` in every process
first; only process 0 writes metrics.jsonl, TensorBoard events, loss.png
and summary.json, while all processes take part in Orbax's saves.

`data_parallel` is the single place that maps the per-device step over
devices (pmap); a jit + sharding path would replace only it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import threading
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from muon_jax.infra import config
from muon_jax.infra import results
from muon_jax import sharded_muon
from muon_jax.infra.config import field
from muon_jax.lm.losses import next_token_loss
from muon_jax.lm import llama
from muon_jax.transform import muon_with_adamw
from muon_jax.infra.progress import Progress

AXIS = "data"
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


def lm_loss(model: nnx.Module, batch_BxL1: jax.Array, loss_chunk: int = 0) -> jax.Array:
  """Mean next-token cross-entropy (f32) of tokens batch[:, 1:] given batch[:, :-1].

  loss_chunk > 0 computes it `loss_chunk` tokens at a time without the full logits.
  """
  return next_token_loss(model, batch_BxL1, loss_chunk)


def model_config(cfg: TrainConfig, vocab_size: int) -> llama.LlamaConfig:
  """Preset with the run's dtypes; tiny takes the tokenizer's vocabulary."""
  base = llama.PRESETS[cfg.model]()
  if cfg.model == "tiny":
    base = base.replace(vocab_size=vocab_size)
  elif vocab_size > base.vocab_size:
    raise ValueError(
      f"tokenizer={cfg.tokenizer} has vocab {vocab_size} > the model's {base.vocab_size}"
    )
  return base.replace(
    dtype=cfg.compute_dtype, param_dtype=cfg.param_dtype, attention=cfg.attention, remat=cfg.remat
  )


def init_params(mcfg: llama.LlamaConfig, key) -> tuple[Any, dict]:
  """(graphdef, params as a pure dict) of a freshly initialized model."""
  graphdef, state = nnx.split(llama.Llama(mcfg, rngs=nnx.Rngs(key)))
  return graphdef, nnx.to_pure_dict(state)


def build_optimizer(cfg: TrainConfig, num_devices: int = 1) -> optax.GradientTransformation:
  """Peak-LR optimizer (the schedule multiplies its updates in the step).

  With cfg.shard_muon and num_devices > 1 the Muon group's Newton–Schulz
  work is split over the AXIS devices (`sharded_muon`); its update must then
  run inside `data_parallel`. Same state tree either way.
  """
  if cfg.optimizer == "adamw":
    return optax.adamw(
      cfg.lr, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps, weight_decay=cfg.weight_decay
    )
  kwargs = {
    "adam_learning_rate": cfg.adam_lr,
    "adam_b1": cfg.adam_b1,
    "adam_b2": cfg.adam_b2,
    "adam_eps": cfg.adam_eps,
    "adam_weight_decay": cfg.weight_decay,
    "muon_weight_decay": cfg.muon_weight_decay,
    "beta": cfg.muon_momentum,
    "coeffs": cfg.ns_coeffs,
    "steps": cfg.ns_steps,
  }
  if cfg.shard_muon and num_devices > 1:
    return sharded_muon.muon_with_adamw(
      cfg.muon_lr, axis_name=AXIS, num_devices=num_devices, **kwargs
    )
  return muon_with_adamw(cfg.muon_lr, **kwargs)


def _tree_all_finite(tree) -> jax.Array:
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_train_step(graphdef, optimizer: optax.GradientTransformation, cfg: TrainConfig):
  """Per-device step(params, opt_state, step, batch_AxBxL1) -> (params, opt_state, metrics).

  Must run under an axis named AXIS (see `data_parallel`). `step` is the
  1-based global step whose LR factor scales the update.
  """

  def loss_of(params, batch):
    return lm_loss(nnx.merge(graphdef, params), batch, cfg.loss_chunk)

  def step_fn(params, opt_state, step, batch_AxBxL1):
    def micro(acc, batch_BxL1):
      loss, g = jax.value_and_grad(loss_of)(params, batch_BxL1)
      # Accumulate in f32 whatever the param dtype.
      return jax.tree.map(lambda a, x: a + x.astype(jnp.float32), acc, (loss, g)), None

    zeros = (
      jnp.zeros((), jnp.float32),
      jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params),
    )
    (loss, grads), _ = jax.lax.scan(micro, zeros, batch_AxBxL1)
    n_micro = batch_AxBxL1.shape[0]
    loss, grads = jax.lax.pmean((loss / n_micro, jax.tree.map(lambda g: g / n_micro, grads)), AXIS)
    grad_norm = optax.tree.norm(grads)
    clip = jnp.where(grad_norm > cfg.clip_norm, cfg.clip_norm / grad_norm, 1.0)
    grads = jax.tree.map(lambda g, p: (g * clip).astype(p.dtype), grads, params)
    updates, new_opt_state = optimizer.update(grads, opt_state, params)
    factor = lr_factor(step, cfg.steps, cfg.decay_start, cfg.final_lr_frac)
    updates = jax.tree.map(lambda u: (u * factor).astype(u.dtype), updates)
    new_params = optax.apply_updates(params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _tree_all_finite(new_params)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite, "lr_factor": factor}
    return keep(new_params, params), keep(new_opt_state, opt_state), metrics

  return step_fn


def data_parallel(step_fn, devices):
  """The one parallel wrapper: pmap over `devices`, step broadcast, state donated."""
  return jax.pmap(
    step_fn, axis_name=AXIS, devices=devices, in_axes=(0, 0, None, 0), donate_argnums=(0, 1)
  )


def replicate(tree, devices):
  """One copy per device along a new leading axis (pmap's input layout)."""
  sharding = jax.sharding.NamedSharding(
    jax.sharding.Mesh(np.asarray(devices), (AXIS,)), jax.sharding.PartitionSpec(AXIS)
  )
  n = len(devices)
  return jax.device_put(
    jax.tree.map(lambda x: np.broadcast_to(x, (n,) + np.shape(x)), tree), sharding
  )


def unreplicate(tree):
  """This process's first device copy of a pmapped tree, as NumPy (multi-host safe)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))[0], tree)


def split_batch(batch_GxL1: np.ndarray, n_dev: int, micro: int) -> np.ndarray:
  """(G, L+1) -> (n_dev, G / (n_dev * micro), micro, L+1): device-major, then micro-steps."""
  g, l1 = batch_GxL1.shape
  return batch_GxL1.reshape(n_dev, g // (n_dev * micro), micro, l1)


def peak_flops(cfg: TrainConfig, device) -> float | None:
  """Per-device peak FLOP/s: cfg.peak_tflops, else the table, else None (unknown)."""
  if cfg.peak_tflops > 0:
    return cfg.peak_tflops * 1e12
  kind = getattr(device, "device_kind", "")
  for name, tflops in PEAK_TFLOPS.items():
    if name.lower() in kind.lower():
      return tflops * 1e12
  return None


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None, n_devices: int):
  """Model FLOP utilization: achieved model FLOP/s over n_devices x peak (None if unknown)."""
  return None if peak is None else tokens_per_s * flops_per_token / (peak * n_devices)


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
  """Polls a TCP connect to `address` until it answers or `timeout_s` passes.

  The runtime's own connect aborts the whole process (a C++ fatal error) when
  it times out, so a non-coordinator process checks reachability first and
  can fail with a one-line ValueError instead.
  """
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise ValueError(
          f"coordinator_address={address} not reachable within {timeout_s:g}s "
          f"({e.strerror or e}); start process 0 first or check host and port"
        ) from None
      time.sleep(0.5)


def initialize_distributed(cfg: TrainConfig) -> None:
  """Joins a multi-process job before any device is touched (no-op for one process).

  Enables JAX's CPU collectives (gloo) so emulated CPU devices of several
  processes form one pmap axis; accelerators ignore the setting.
  """
  if cfg.num_processes == 1:
    return
  host, _, port = cfg.coordinator_address.rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"coordinator_address={cfg.coordinator_address!r} must be host:port")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if cfg.process_id != 0:
    _wait_for_coordinator(cfg.coordinator_address, cfg.coordinator_timeout_s)
  jax.distributed.initialize(
    coordinator_address=cfg.coordinator_address,
    num_processes=cfg.num_processes,
    process_id=cfg.process_id,
    initialization_timeout=cfg.coordinator_timeout_s,
  )


# ---------------------------------------------------------------- checkpoints


def checkpoint_manager(out_dir: str, keep: int):
  """The Orbax manager of out_dir/checkpoints (keeps the newest `keep`)."""
  import orbax.checkpoint as ocp

  return ocp.CheckpointManager(
    os.path.abspath(os.path.join(out_dir, "checkpoints")),
    options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
  )


def save_checkpoint(mngr, step: int, params, opt_state, meta: dict) -> bool:
  """Saves unreplicated NumPy params + opt state + JSON meta; refuses non-finite params."""
  import orbax.checkpoint as ocp

  if not all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params)):
    logging.error("step %d: non-finite parameters, checkpoint NOT written", step)
    return False
  mngr.save(
    step,
    args=ocp.args.Composite(
      state=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
      meta=ocp.args.JsonSave(meta),
    ),
  )
  return True


def restore_checkpoint(mngr, params, opt_state, step: int | None = None):
  """(params, opt_state, meta) of `step` (default latest) shaped like the given trees."""
  import orbax.checkpoint as ocp

  step = mngr.latest_step() if step is None else step
  target = {"params": params, "opt_state": opt_state}
  out = mngr.restore(
    step,
    args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
  )
  state = jax.tree.map(np.asarray, out["state"])
  return state["params"], state["opt_state"], out["meta"]


def read_checkpoint_meta(mngr, step: int | None = None) -> dict:
  """The JSON record of checkpoint `step` (default latest), without touching the arrays."""
  import orbax.checkpoint as ocp

  step = mngr.latest_step() if step is None else step
  return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def stored_config(cfg: TrainConfig) -> dict:
  """The settings a checkpoint and summary.json record (all but resume-time switches)."""
  return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_IGNORED}


def resume_changes(stored: dict, cfg: TrainConfig, start: int) -> list[str]:
  """Checks a resumed run's config against the checkpoint's; returns what changed.

  Raises ValueError naming every changed model / optimizer / data-order
  setting, and every LR-schedule change (including a steps change that
  moves the schedule over steps already run, or at the next step) unless
  cfg.allow_schedule_change. Returns "name: old -> new" for the settings that
  may change (to be logged).
  """
  new = stored_config(cfg)
  changed = [k for k in new if k in stored and _as_stored(new[k]) != stored[k]]
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


# ---------------------------------------------------------------- training


def _probe_once(cfg, graphdef, params_rep, step, probe_seed, devices):
  """Runs landscape.probe on the current weights from a dedicated eval stream.

  landscape.probe spreads its batches over this process's devices only, so
  in a multi-process job every process computes the same probe from the
  same batches (no cross-process collective) and process 0 writes it.
  """
  from muon_jax.lm import data as data_lib
  from muon_jax.lm import landscape_probe as landscape

  if landscape.probe_done(cfg.out_dir, step):
    logging.info("probe at step %d already on disk, skipped", step)
    return
  model = nnx.merge(graphdef, unreplicate(params_rep))
  stream = data_lib.build_pipeline(
    cfg.corpus,
    cfg.tokenizer,
    seq_len=cfg.seq_len,
    batch_size=cfg.probe_batch or cfg.micro_batch,
    seed=probe_seed,
    split="eval",
    cache_dir=cfg.data_cache_dir,
  )
  grad_batches = [next(stream) for _ in range(cfg.probe.grad_batches)]
  eval_batches = [next(stream) for _ in range(cfg.probe.eval_batches)]
  t0 = time.perf_counter()
  result = landscape.probe(model, lm_loss, grad_batches, eval_batches, cfg.probe, devices=devices)
  if jax.process_index() == 0:
    path = landscape.save_probe(cfg.out_dir, step, result)
    logging.info("probe at step %d written to %s (%.1fs)", step, path, time.perf_counter() - t0)


class _MetricsWriter:
  """Process 0's outputs: metrics.jsonl rows, TensorBoard events, loss.png.

  A resumed run first drops rows (and TensorBoard events) after the restored
  step, so the files describe one run. Other processes write nothing.
  """

  def __init__(self, out_dir: str, start: int, title: str, enabled: bool):
    self.enabled, self.title = enabled, title
    self.path = os.path.join(out_dir, "metrics.jsonl")
    self.rows: list[dict] = []
    self._tb = None
    if not enabled:
      return
    if os.path.exists(self.path):
      with open(self.path) as f:
        self.rows = [r for r in map(json.loads, filter(str.strip, f)) if r["step"] <= start]
    results.atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in self.rows).encode())
    from tensorboardX import SummaryWriter

    self._tb = SummaryWriter(
      os.path.join(out_dir, "tensorboard"), purge_step=start + 1, flush_secs=30
    )

  def write(self, row: dict) -> None:
    if not self.enabled:
      return
    self.rows.append(row)
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    for key, value in row.items():
      if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tb.add_scalar(
          f"train/{key}" if key != "eval_loss" else "eval/loss", value, row["step"]
        )

  def refresh_figure(self) -> None:
    """Redraws loss.png (train and eval loss) from the rows so far."""
    if not self.enabled or not self.rows:
      return
    from muon_jax.lm import loss_plot as train_figures

    for name, fig in train_figures.figures({"metrics": self.rows, "title": self.title}).items():
      results.save_figure(fig, os.path.join(os.path.dirname(self.path), f"{name}.png"))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


class _StopRequest:
  """SIGTERM / SIGINT handlers that only record the request.

  The training loop polls `requested` at each step boundary, so a signal
  never interrupts a step or a checkpoint write. Handlers are installed only
  from the main thread and restored on exit.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signum = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.signum is None:
      self.signum = signum
      logging.warning(
        "%s received: saving a checkpoint at the end of this step, then exiting",
        signal.Signals(signum).name,
      )

  def requested(self) -> bool:
    return self.signum is not None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)


def _any_process(flag: bool) -> bool:
  """True on every process when `flag` is True on any (a collective: all must call)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils

  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def make_eval_step(graphdef):
  """Per-device eval(params, batch_AxBxL1) -> mean loss over all devices (under AXIS)."""

  def eval_fn(params, batch_AxBxL1):
    model = nnx.merge(graphdef, params)
    losses = jax.lax.map(lambda b: lm_loss(model, b), batch_AxBxL1)
    return jax.lax.pmean(losses.mean(), AXIS)

  return eval_fn


def select_devices(num_devices: int) -> tuple[list, list]:
  """(global devices, this process's devices): the first `num_devices` local
  devices of every process (0: all), in process order.

  pmap's collectives span exactly the devices it is given, so every process
  must pass the same global list; its local part is where this process's
  slice of the batch goes.
  """
  local = jax.local_devices()
  if num_devices > len(local):
    raise ValueError(f"num_devices={num_devices} but only {len(local)} local devices")
  per_process = num_devices or len(local)
  by_process = {}
  for d in jax.devices():
    by_process.setdefault(d.process_index, []).append(d)
  global_devices = [
    d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:per_process]
  ]
  return global_devices, [d for d in global_devices if d.process_index == jax.process_index()]


def resolve_batching(cfg: TrainConfig) -> tuple[TrainConfig, list, list]:
  """Fills micro_batch and shard_muon, picks devices, checks the launch shape.

  Returns (config, global devices, local devices). Raises ValueError naming
  num_processes when the runtime disagrees with it, global_batch when it is
  not a multiple of global devices x micro_batch, shard_muon when it is
  requested with one device, and attention when the backend cannot run it.
  Touches the backend, so in a multi-process job it runs after
  `initialize_distributed`.
  """
  llama.check_attention_backend(cfg.attention)
  if jax.process_count() != cfg.num_processes:
    raise ValueError(
      f"num_processes={cfg.num_processes} but the runtime has "
      f"{jax.process_count()} processes (call initialize_distributed first)"
    )
  global_devices, local_devices = select_devices(cfg.num_devices)
  total_dev = len(global_devices)
  micro = cfg.micro_batch or cfg.global_batch // total_dev
  if micro < 1 or cfg.global_batch % (total_dev * micro):
    raise ValueError(
      f"global_batch={cfg.global_batch} must be a positive multiple of "
      f"devices ({total_dev}) x micro_batch ({micro})"
    )
  if cfg.shard_muon and total_dev == 1:
    raise ValueError("shard_muon needs more than one data-parallel device; this run has 1")
  shard = total_dev > 1 if cfg.shard_muon is None else cfg.shard_muon
  return (
    dataclasses.replace(cfg, micro_batch=micro, shard_muon=shard),
    global_devices,
    local_devices,
  )


def _check_probe_target(cfg: TrainConfig, mcfg: llama.LlamaConfig) -> None:
  """The probe path must name a 2-D parameter of this model (abstract, no compile)."""
  from muon_jax.lm import landscape_probe as landscape

  try:
    landscape.check_probe(nnx.eval_shape(lambda: llama.Llama(mcfg, rngs=nnx.Rngs(0))), cfg.probe)
  except ValueError as e:  # the probe's fields are probe_<field> for the trainer's callers
    raise ValueError(f"probe_{e}") from None


def run(cfg: TrainConfig) -> dict:
  """Runs (or resumes) training; returns a JSON-able summary (also in out_dir/summary.json).

  Call `initialize_distributed(cfg)` first in every process of a
  multi-process job. Status "preempted" means SIGTERM / SIGINT stopped the
  run after a checkpoint; resume it with resume=True.
  """
  from muon_jax.lm import data as data_lib

  validate_config(cfg)
  cfg, global_devices, devices = resolve_batching(cfg)
  n_dev, n_proc, pid = len(devices), jax.process_count(), jax.process_index()
  accum = cfg.global_batch // (len(global_devices) * cfg.micro_batch)
  os.makedirs(cfg.out_dir, exist_ok=True)

  root = jax.random.key(cfg.seed)
  # Training data order is defined by seed; eval and probe streams by derived seeds.
  probe_seed = int(jax.random.randint(jax.random.fold_in(root, 2), (), 0, 2**31 - 1))
  eval_seed = int(jax.random.randint(jax.random.fold_in(root, 3), (), 0, 2**31 - 1))
  # Every process reads the same global batch and keeps its slice, so the
  # data position is one number shared by all processes.
  stream = data_lib.build_pipeline(
    cfg.corpus,
    cfg.tokenizer,
    seq_len=cfg.seq_len,
    batch_size=cfg.global_batch,
    seed=cfg.seed,
    split="train",
    cache_dir=cfg.data_cache_dir,
  )
  mcfg = model_config(cfg, stream.vocab_size)
  if cfg.probe_steps:
    _check_probe_target(cfg, mcfg)

  mngr = checkpoint_manager(cfg.out_dir, cfg.keep_checkpoints)
  start, nonfinite_total, consecutive, stored = 0, 0, 0, None
  if mngr.latest_step() is not None:
    if not cfg.resume:
      raise ValueError(
        f"out_dir={cfg.out_dir} already has checkpoints; resume or use a new out_dir"
      )
    stored = read_checkpoint_meta(mngr)
    if "config" not in stored:
      raise ValueError(
        f"out_dir={cfg.out_dir}: the latest checkpoint records no run config "
        "(written by an older trainer), so resuming cannot be checked"
      )
    for line in resume_changes(stored["config"], cfg, int(stored["step"])):
      logging.info("resume: %s", line)

  graphdef, params = init_params(mcfg, jax.random.fold_in(root, 0))
  optimizer = build_optimizer(cfg, len(global_devices))
  opt_state = optimizer.init(params)
  if stored is not None:
    params, opt_state, meta = restore_checkpoint(mngr, params, opt_state)
    start, nonfinite_total = int(meta["step"]), int(meta["nonfinite_total"])
    stream.set_state(meta["data_state"])
    logging.info("resumed from step %d (%s)", start, mngr.directory)

  title = f"LLaMA-{cfg.model}, {cfg.optimizer}, global batch {cfg.global_batch}x{cfg.seq_len}"
  writer = _MetricsWriter(cfg.out_dir, start, title, enabled=pid == 0)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  fpt = llama.flops_per_token(mcfg, cfg.seq_len)
  peak = peak_flops(cfg, devices[0])
  logging.info(
    "model=%s params=%d devices=%d x %d processes, micro=%d, accum=%d, global=%d, "
    "optimizer=%s, shard_muon=%s, %s",
    cfg.model,
    n_params,
    n_dev,
    n_proc,
    cfg.micro_batch,
    accum,
    cfg.global_batch,
    cfg.optimizer,
    cfg.shard_muon,
    devices[0].device_kind,
  )

  step_fn = data_parallel(make_train_step(graphdef, optimizer, cfg), global_devices)
  params_rep, opt_rep = replicate(params, devices), replicate(opt_state, devices)
  del params, opt_state
  per_proc = cfg.global_batch // n_proc
  local_slice = slice(pid * per_proc, (pid + 1) * per_proc)
  tokens_per_step = cfg.global_batch * cfg.seq_len

  eval_fn, eval_data = None, []
  if cfg.eval_every:
    eval_fn = jax.pmap(make_eval_step(graphdef), axis_name=AXIS, devices=global_devices)
    eval_stream = data_lib.build_pipeline(
      cfg.corpus,
      cfg.tokenizer,
      seq_len=cfg.seq_len,
      batch_size=cfg.global_batch,
      seed=eval_seed,
      split="eval",
      cache_dir=cfg.data_cache_dir,
    )
    eval_data = [
      split_batch(next(eval_stream)[local_slice], n_dev, cfg.micro_batch)
      for _ in range(cfg.eval_batches)
    ]

  def meta(step):
    return {
      "step": step,
      "data_state": stream.get_state(),
      "rng": np.asarray(jax.random.key_data(root)).tolist(),
      "nonfinite_total": nonfinite_total,
      "config": stored_config(cfg),
    }

  def checkpoint(step):
    save_checkpoint(mngr, step, unreplicate(params_rep), unreplicate(opt_rep), meta(step))

  progress = Progress(cfg.steps, "train", done=start)
  status, last, losses = "ok", None, []
  t_last, steps_since, t_step = time.perf_counter(), 0, float("nan")
  with _StopRequest() as stop:
    for step in range(start + 1, cfg.steps + 1):
      t0 = time.perf_counter()
      batch = next(stream)[local_slice]
      params_rep, opt_rep, m = step_fn(
        params_rep, opt_rep, jnp.int32(step), split_batch(batch, n_dev, cfg.micro_batch)
      )
      steps_since += 1
      m = {k: float(v) for k, v in unreplicate(m).items()}  # blocks: the guard needs this verdict
      t_step = time.perf_counter() - t0
      if m["finite"]:
        consecutive = 0
      else:
        consecutive += 1
        nonfinite_total += 1
        logging.warning(
          "step %d: non-finite loss/grad (loss=%s, grad_norm=%s); update skipped "
          "(%d consecutive, %d total)",
          step,
          m["loss"],
          m["grad_norm"],
          consecutive,
          nonfinite_total,
        )
      losses.append(m["loss"])
      eval_loss = None
      if eval_fn is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
        eval_loss = float(np.mean([unreplicate(eval_fn(params_rep, b)) for b in eval_data]))
      if (
        step % cfg.log_every == 0
        or step in (1, start + 1, cfg.steps)
        or not m["finite"]
        or eval_loss is not None
      ):
        now = time.perf_counter()
        tps = tokens_per_step * steps_since / (now - t_last)
        row = {
          "step": step,
          "loss": m["loss"],
          "lr": m["lr_factor"] * (cfg.lr if cfg.optimizer == "adamw" else cfg.muon_lr),
          "lr_factor": m["lr_factor"],
          "grad_norm": m["grad_norm"],
          "tokens_per_s": tps,
          "step_s": t_step,
          "finite": bool(m["finite"]),
          "nonfinite_total": nonfinite_total,
          "mfu": mfu(tps, fpt, peak, len(global_devices)),
          "includes_compile": step == start + 1,
        }
        if eval_loss is not None:
          row["eval_loss"] = eval_loss
        writer.write(row)
        if pid == 0:
          eval_txt = "" if eval_loss is None else f" eval {eval_loss:.4f}"
          mfu_txt = "" if row["mfu"] is None else f" mfu {row['mfu']:.3f}"
          progress.advance(
            steps_since,
            f"loss {m['loss']:.4f}{eval_txt} lr {row['lr']:.3e} "
            f"gnorm {m['grad_norm']:.3f} step {t_step * 1e3:.0f} ms "
            f"tok/s {tps:,.0f}{mfu_txt}",
          )
        t_last, steps_since, last = now, 0, row
      if eval_loss is not None:
        writer.refresh_figure()
      if consecutive >= cfg.max_nonfinite:
        status = "stopped_nonfinite"
        logging.error(
          "stopping: %d consecutive non-finite steps (last finite params kept; "
          "checkpoints hold finite params only). Lower the LR or check the data.",
          consecutive,
        )
        break
      if step in cfg.probe_steps:
        _probe_once(cfg, graphdef, params_rep, step, probe_seed, devices)
      preempt = _any_process(stop.requested())
      if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps or preempt:
        checkpoint(step)
        writer.refresh_figure()
      if preempt:
        status = "preempted"
        mngr.wait_until_finished()
        logging.warning(
          "stopped by signal after step %d; checkpoint in %s. To continue, rerun "
          "the same command with resume enabled (exit status %d)",
          step,
          os.path.join(mngr.directory, str(step)),
          EXIT_PREEMPTED,
        )
        break
      if cfg.step_sleep_s:
        time.sleep(cfg.step_sleep_s)
    mngr.wait_until_finished()
    mngr.close()
  writer.refresh_figure()
  writer.close()

  summary = {
    "status": status,
    "model": cfg.model,
    "optimizer": cfg.optimizer,
    "params": n_params,
    "steps_run": len(losses),
    "start_step": start,
    "final_loss": losses[-1] if losses else None,
    "last_logged": last,
    "nonfinite_total": nonfinite_total,
    "devices": n_dev,
    "processes": n_proc,
    "global_devices": len(global_devices),
    "micro_batch": cfg.micro_batch,
    "accum_steps": accum,
    "shard_muon": cfg.shard_muon,
    "flops_per_token": fpt,
    "device_kind": devices[0].device_kind,
    "config": stored_config(cfg),
  }
  if pid == 0:
    results.atomic_write_json(os.path.join(cfg.out_dir, "summary.json"), summary)
  return summary


def read_metrics(out_dir: str) -> list[dict]:
  """Rows of out_dir/metrics.jsonl."""
  with open(os.path.join(out_dir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]
