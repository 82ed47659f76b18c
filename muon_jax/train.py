"""Data-parallel LLaMA pre-training: AdamW vs Muon(+AdamW) (paper Sec 4.3, App 12).

One training step on each device d of D local devices:
  grads_d = mean over A micro-batches (B_micro, L+1) of grad lm_loss   (lax.scan)
  grads   = pmean_d grads_d                                             (lax.pmean)
  clip to global norm `clip_norm` (1.0), optimizer update at the peak LR,
  multiply the update by the schedule factor of the *global step* (so a
  skipped non-finite step does not shift the schedule), apply.
global_batch = num_processes * D * A * B_micro sequences.

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
JSON record of step, data-iterator state, RNG key data and guard counters.
`resume=True` restores the latest one; the continued run reproduces the
uninterrupted one bit for bit on the same machine.

`data_parallel` is the single place that maps the per-device step over
devices (pmap); a jit + sharding path would replace only it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from muon_jax import results
from muon_jax.models import llama
from muon_jax.muon import muon_with_adamw
from muon_jax.validate import FlagError, check_choices, check_range

AXIS = "data"
MODELS = ("tiny", "160m")
OPTIMIZERS = ("adamw", "muon")
DTYPES = ("float32", "bfloat16")

# Dense bf16 peak FLOP/s per device (vendor datasheets, no sparsity), matched
# as substrings of `device.device_kind`. CPU has no entry: pass peak_tflops.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10G": 125.0,
               "TPU v4": 275.0, "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5p": 459.0,
               "TPU v6": 918.0}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """All knobs of a run. Defaults: tiny model, CPU-sized; paper values in BUILD_NOTES.

  lr: AdamW's peak LR in the AdamW run. muon_lr: Muon's peak LR in the Muon
  run; adam_lr: the AdamW group's LR there (None: same as muon_lr, which the
  Kimi 0.2·sqrt(max(m, n)) scaling makes sensible). micro_batch: sequences
  per device per micro-step (0: global_batch / devices, no accumulation).
  num_devices: local devices to use (0: all). probe_batch: sequences per
  probe batch (0: micro_batch).
  """
  model: str = "tiny"
  optimizer: str = "muon"
  steps: int = 300
  global_batch: int = 16
  micro_batch: int = 0
  seq_len: int = 128
  lr: float = 1e-3
  muon_lr: float = 1e-3
  adam_lr: Optional[float] = None
  adam_b1: float = 0.9
  adam_b2: float = 0.95
  adam_eps: float = 1e-8
  weight_decay: float = 0.1
  muon_weight_decay: float = 0.1
  muon_momentum: float = 0.95
  ns_coeffs: str = "kimi"
  ns_steps: int = 5
  clip_norm: float = 1.0
  decay_start: float = 0.9
  final_lr_frac: float = 0.01
  seed: int = 0
  out_dir: str = "runs/train_llama"
  ckpt_every: int = 100
  keep_checkpoints: int = 3
  resume: bool = False
  corpus: str = "stdlib"
  tokenizer: str = "bytes"
  data_cache_dir: Optional[str] = None
  compute_dtype: str = "float32"
  param_dtype: str = "float32"
  log_every: int = 10
  max_nonfinite: int = 5
  num_devices: int = 0
  peak_tflops: float = 0.0
  probe_steps: tuple[int, ...] = ()
  probe: Any = None  # landscape.ProbeConfig
  probe_batch: int = 0
  step_sleep_s: float = 0.0  # throttle (kill/resume demos and tests only)


def validate_config(cfg: TrainConfig) -> None:
  """Device-free checks; raises FlagError naming the flag and allowed range."""
  check_choices("model", cfg.model, MODELS)
  check_choices("optimizer", cfg.optimizer, OPTIMIZERS)
  check_choices("compute_dtype", cfg.compute_dtype, DTYPES)
  check_choices("param_dtype", cfg.param_dtype, DTYPES)
  for name in ("steps", "global_batch", "seq_len", "log_every", "max_nonfinite", "keep_checkpoints",
               "ns_steps"):
    check_range(name, getattr(cfg, name), low=1)
  for name in ("micro_batch", "ckpt_every", "num_devices", "probe_batch", "peak_tflops",
               "step_sleep_s", "weight_decay", "muon_weight_decay", "adam_eps"):
    check_range(name, getattr(cfg, name), low=0)
  for name in ("lr", "muon_lr", "clip_norm"):
    check_range(name, getattr(cfg, name), low=0, low_inclusive=False)
  if cfg.adam_lr is not None:
    check_range("adam_lr", cfg.adam_lr, low=0, low_inclusive=False)
  for name in ("adam_b1", "adam_b2", "muon_momentum"):
    check_range(name, getattr(cfg, name), low=0, high=1, high_inclusive=False)
  check_range("decay_start", cfg.decay_start, low=0, high=1)
  check_range("final_lr_frac", cfg.final_lr_frac, low=0, high=1)
  max_len = llama.PRESETS[cfg.model]().max_position_embeddings
  check_range("seq_len", cfg.seq_len, low=1, high=max_len)
  check_range("probe_steps", list(cfg.probe_steps), low=1, high=cfg.steps)
  if cfg.probe_steps and cfg.probe is None:
    raise FlagError("--probe_steps needs a probe config (landscape.ProbeConfig)")


def lr_factor(step, total_steps: int, decay_start: float = 0.9, final_frac: float = 0.01):
  """Schedule multiplier for the update of 1-based `step` (paper App 12).

  1 for step <= decay_start * total_steps, then
  final + (1 - final) * (1 + cos(pi * t)) / 2 with t going linearly from 0 to 1
  at the last step, so the last update uses exactly final_frac * peak.
  """
  n_const = int(round(decay_start * total_steps))
  n_decay = max(total_steps - n_const, 1)
  t = jnp.clip((jnp.asarray(step, jnp.float32) - n_const) / n_decay, 0.0, 1.0)
  return final_frac + (1.0 - final_frac) * 0.5 * (1.0 + jnp.cos(jnp.pi * t))


def lm_loss(model: nnx.Module, batch_BxL1: jax.Array) -> jax.Array:
  """Mean next-token cross-entropy (f32) of tokens batch[:, 1:] given batch[:, :-1]."""
  logits_BxLxV = model(batch_BxL1[:, :-1]).astype(jnp.float32)
  return optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV, batch_BxL1[:, 1:]).mean()


def model_config(cfg: TrainConfig, vocab_size: int) -> llama.LlamaConfig:
  """Preset with the run's dtypes; tiny takes the tokenizer's vocabulary."""
  base = llama.PRESETS[cfg.model]()
  if cfg.model == "tiny":
    base = base.replace(vocab_size=vocab_size)
  elif vocab_size > base.vocab_size:
    raise FlagError(f"--tokenizer has vocab {vocab_size} > model vocab {base.vocab_size}")
  return base.replace(dtype=cfg.compute_dtype, param_dtype=cfg.param_dtype)


def init_params(mcfg: llama.LlamaConfig, key) -> tuple[Any, dict]:
  """(graphdef, params as a pure dict) of a freshly initialized model."""
  graphdef, state = nnx.split(llama.Llama(mcfg, rngs=nnx.Rngs(key)))
  return graphdef, nnx.to_pure_dict(state)


def build_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
  """Peak-LR optimizer (the schedule multiplies its updates in the step)."""
  if cfg.optimizer == "adamw":
    return optax.adamw(cfg.lr, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps,
                       weight_decay=cfg.weight_decay)
  return muon_with_adamw(
      cfg.muon_lr, adam_learning_rate=cfg.adam_lr, adam_b1=cfg.adam_b1, adam_b2=cfg.adam_b2,
      adam_eps=cfg.adam_eps, adam_weight_decay=cfg.weight_decay,
      muon_weight_decay=cfg.muon_weight_decay, beta=cfg.muon_momentum, coeffs=cfg.ns_coeffs,
      steps=cfg.ns_steps)


def _tree_all_finite(tree) -> jax.Array:
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_train_step(graphdef, optimizer: optax.GradientTransformation, cfg: TrainConfig):
  """Per-device step(params, opt_state, step, batch_AxBxL1) -> (params, opt_state, metrics).

  Must run under an axis named AXIS (see `data_parallel`). `step` is the
  1-based global step whose LR factor scales the update.
  """

  def loss_of(params, batch):
    return lm_loss(nnx.merge(graphdef, params), batch)

  def step_fn(params, opt_state, step, batch_AxBxL1):
    def micro(acc, batch_BxL1):
      loss, g = jax.value_and_grad(loss_of)(params, batch_BxL1)
      # Accumulate in f32 whatever the param dtype.
      return jax.tree.map(lambda a, x: a + x.astype(jnp.float32), acc, (loss, g)), None

    zeros = (jnp.zeros((), jnp.float32), jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params))
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
    metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite,
               "lr_factor": factor}
    return keep(new_params, params), keep(new_opt_state, opt_state), metrics

  return step_fn


def data_parallel(step_fn, devices):
  """The one parallel wrapper: pmap over `devices`, step broadcast, state donated."""
  return jax.pmap(step_fn, axis_name=AXIS, devices=devices, in_axes=(0, 0, None, 0),
                  donate_argnums=(0, 1))


def replicate(tree, devices):
  """One copy per device along a new leading axis (pmap's input layout)."""
  sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.asarray(devices), (AXIS,)),
                                        jax.sharding.PartitionSpec(AXIS))
  n = len(devices)
  return jax.device_put(jax.tree.map(lambda x: np.broadcast_to(x, (n,) + np.shape(x)), tree),
                        sharding)


def unreplicate(tree):
  """This process's first device copy of a pmapped tree, as NumPy (multi-host safe)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))[0], tree)


def split_batch(batch_GxL1: np.ndarray, n_dev: int, micro: int) -> np.ndarray:
  """(G, L+1) -> (n_dev, G / (n_dev * micro), micro, L+1): device-major, then micro-steps."""
  g, l1 = batch_GxL1.shape
  return batch_GxL1.reshape(n_dev, g // (n_dev * micro), micro, l1)


def peak_flops(cfg: TrainConfig, device) -> Optional[float]:
  """Per-device peak FLOP/s: cfg.peak_tflops, else the table, else None (unknown)."""
  if cfg.peak_tflops > 0:
    return cfg.peak_tflops * 1e12
  kind = getattr(device, "device_kind", "")
  for name, tflops in PEAK_TFLOPS.items():
    if name.lower() in kind.lower():
      return tflops * 1e12
  return None


def mfu(tokens_per_s: float, flops_per_token: float, peak: Optional[float], n_devices: int):
  """Model FLOP utilization: achieved model FLOP/s over n_devices x peak (None if unknown)."""
  return None if peak is None else tokens_per_s * flops_per_token / (peak * n_devices)


def initialize_distributed(coordinator_address: str, num_processes: int, process_id: int) -> None:
  """Multi-host: jax.distributed.initialize before any device is touched."""
  if coordinator_address:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)


# ---------------------------------------------------------------- checkpoints

def _checkpoint_manager(out_dir: str, keep: int):
  import orbax.checkpoint as ocp
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(out_dir, "checkpoints")),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def save_checkpoint(mngr, step: int, params, opt_state, meta: dict) -> bool:
  """Saves unreplicated NumPy params + opt state + JSON meta; refuses non-finite params."""
  import orbax.checkpoint as ocp
  if not all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params)):
    logging.error("step %d: non-finite parameters, checkpoint NOT written", step)
    return False
  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
      meta=ocp.args.JsonSave(meta)))
  return True


def restore_checkpoint(mngr, params, opt_state, step: Optional[int] = None):
  """(params, opt_state, meta) of `step` (default latest) shaped like the given trees."""
  import orbax.checkpoint as ocp
  step = mngr.latest_step() if step is None else step
  target = {"params": params, "opt_state": opt_state}
  out = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
  state = jax.tree.map(np.asarray, out["state"])
  return state["params"], state["opt_state"], out["meta"]


# ---------------------------------------------------------------- training

def _probe_once(cfg, graphdef, params_rep, step, probe_seed, devices):
  """Runs landscape.probe on the current weights from a dedicated eval stream."""
  from muon_jax import data as data_lib
  from muon_jax import landscape
  if landscape.probe_done(cfg.out_dir, step):
    logging.info("probe at step %d already on disk, skipped", step)
    return
  model = nnx.merge(graphdef, unreplicate(params_rep))
  stream = data_lib.build_pipeline(
      cfg.corpus, cfg.tokenizer, seq_len=cfg.seq_len, batch_size=cfg.probe_batch or cfg.micro_batch,
      seed=probe_seed, split="eval", cache_dir=cfg.data_cache_dir)
  grad_batches = [next(stream) for _ in range(cfg.probe.grad_batches)]
  eval_batches = [next(stream) for _ in range(cfg.probe.eval_batches)]
  t0 = time.perf_counter()
  result = landscape.probe(model, lm_loss, grad_batches, eval_batches, cfg.probe, devices=devices)
  path = landscape.save_probe(cfg.out_dir, step, result)
  logging.info("probe at step %d written to %s (%.1fs)", step, path, time.perf_counter() - t0)


def _rewrite_metrics(path: str, upto_step: int) -> None:
  """Keeps metrics rows with step <= upto_step (a resumed run rewrites the rest)."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    rows = [line for line in f if line.strip() and json.loads(line)["step"] <= upto_step]
  results.atomic_write_bytes(path, "".join(rows).encode())


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
  global_devices = [d for p in sorted(by_process) for d in sorted(
      by_process[p], key=lambda d: d.id)[:per_process]]
  return global_devices, [d for d in global_devices if d.process_index == jax.process_index()]


def resolve_batching(cfg: TrainConfig) -> tuple[TrainConfig, list, list]:
  """Fills micro_batch, picks devices, checks global_batch divisibility.

  Returns (config, global devices, local devices); raises ValueError naming
  global_batch when it is not a multiple of global devices x micro_batch.
  """
  global_devices, local_devices = select_devices(cfg.num_devices)
  total_dev = len(global_devices)
  micro = cfg.micro_batch or cfg.global_batch // total_dev
  if micro < 1 or cfg.global_batch % (total_dev * micro):
    raise ValueError(f"global_batch={cfg.global_batch} must be a positive multiple of "
                     f"devices ({total_dev}) x micro_batch ({micro})")
  return dataclasses.replace(cfg, micro_batch=micro), global_devices, local_devices


def train(cfg: TrainConfig) -> dict:
  """Runs (or resumes) training; returns a JSON-able summary (also in out_dir/summary.json)."""
  from muon_jax import data as data_lib
  validate_config(cfg)
  cfg, global_devices, devices = resolve_batching(cfg)
  n_dev, n_proc, pid = len(devices), jax.process_count(), jax.process_index()
  accum = cfg.global_batch // (n_dev * n_proc * cfg.micro_batch)
  os.makedirs(cfg.out_dir, exist_ok=True)
  metrics_path = os.path.join(cfg.out_dir, "metrics.jsonl")

  root = jax.random.key(cfg.seed)
  # Training data order is defined by --seed; the probe stream by a derived seed.
  probe_seed = int(jax.random.randint(jax.random.fold_in(root, 2), (), 0, 2**31 - 1))
  # Every process reads the same global batch and keeps its slice, so the
  # data position is one number shared by all hosts.
  stream = data_lib.build_pipeline(cfg.corpus, cfg.tokenizer, seq_len=cfg.seq_len,
                                   batch_size=cfg.global_batch, seed=cfg.seed, split="train",
                                   cache_dir=cfg.data_cache_dir)
  mcfg = model_config(cfg, stream.vocab_size)
  graphdef, params = init_params(mcfg, jax.random.fold_in(root, 0))
  optimizer = build_optimizer(cfg)
  opt_state = optimizer.init(params)

  mngr = _checkpoint_manager(cfg.out_dir, cfg.keep_checkpoints)
  start, nonfinite_total, consecutive = 0, 0, 0
  if mngr.latest_step() is not None and not cfg.resume:
    raise FlagError(f"--out_dir={cfg.out_dir} already has checkpoints; pass --resume or a new --out_dir")
  if cfg.resume and mngr.latest_step() is not None:
    params, opt_state, meta = restore_checkpoint(mngr, params, opt_state)
    if not np.array_equal(np.asarray(meta["rng"], np.uint32), np.asarray(jax.random.key_data(root))):
      raise FlagError(f"--seed={cfg.seed} differs from the checkpoint's; resume with the same seed")
    start, nonfinite_total = int(meta["step"]), int(meta["nonfinite_total"])
    stream.set_state(meta["data_state"])
    logging.info("resumed from step %d (%s)", start, mngr.directory)
  if pid == 0 and cfg.resume:
    _rewrite_metrics(metrics_path, start)
  elif pid == 0:
    results.atomic_write_bytes(metrics_path, b"")

  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  fpt = llama.flops_per_token(mcfg, cfg.seq_len)
  peak = peak_flops(cfg, devices[0])
  logging.info("model=%s params=%d devices=%d x %d processes, micro=%d, accum=%d, global=%d, "
               "optimizer=%s, %s", cfg.model, n_params, n_dev, n_proc, cfg.micro_batch, accum,
               cfg.global_batch, cfg.optimizer, devices[0].device_kind)

  step_fn = data_parallel(make_train_step(graphdef, optimizer, cfg), global_devices)
  params_rep, opt_rep = replicate(params, devices), replicate(opt_state, devices)
  del params, opt_state
  per_proc = cfg.global_batch // n_proc
  tokens_per_step = cfg.global_batch * cfg.seq_len

  def meta(step):
    return {"step": step, "data_state": stream.get_state(),
            "rng": np.asarray(jax.random.key_data(root)).tolist(),
            "nonfinite_total": nonfinite_total, "model": cfg.model, "optimizer": cfg.optimizer}

  status, last, losses = "ok", None, []
  t_last, steps_since = time.perf_counter(), 0
  for step in range(start + 1, cfg.steps + 1):
    batch = next(stream)[pid * per_proc:(pid + 1) * per_proc]
    params_rep, opt_rep, m = step_fn(params_rep, opt_rep, jnp.int32(step),
                                     split_batch(batch, n_dev, cfg.micro_batch))
    steps_since += 1
    m = {k: float(v) for k, v in unreplicate(m).items()}  # blocks: the guard needs this verdict
    if m["finite"]:
      consecutive = 0
    else:
      consecutive += 1
      nonfinite_total += 1
      logging.warning("step %d: non-finite loss/grad (loss=%s, grad_norm=%s); update skipped "
                      "(%d consecutive, %d total)", step, m["loss"], m["grad_norm"], consecutive,
                      nonfinite_total)
    losses.append(m["loss"])
    if step % cfg.log_every == 0 or step in (1, start + 1, cfg.steps) or not m["finite"]:
      now = time.perf_counter()
      tps = tokens_per_step * steps_since / (now - t_last)
      row = {"step": step, "loss": m["loss"], "lr": m["lr_factor"] * (
          cfg.lr if cfg.optimizer == "adamw" else cfg.muon_lr), "lr_factor": m["lr_factor"],
             "grad_norm": m["grad_norm"], "tokens_per_s": tps, "finite": bool(m["finite"]),
             "nonfinite_total": nonfinite_total,
             "mfu": mfu(tps, fpt, peak, n_dev * n_proc),
             "includes_compile": step == start + 1}
      if pid == 0:
        with open(metrics_path, "a") as f:
          f.write(json.dumps(row) + "\n")
        mfu_txt = "" if row["mfu"] is None else f" mfu {row['mfu']:.3f}"
        print(f"step {step:6d}/{cfg.steps} loss {m['loss']:.4f} lr {row['lr']:.3e} "
              f"gnorm {m['grad_norm']:.3f} tok/s {tps:,.0f}{mfu_txt}", flush=True)
      t_last, steps_since, last = now, 0, row
    if consecutive >= cfg.max_nonfinite:
      status = "stopped_nonfinite"
      logging.error("stopping: %d consecutive non-finite steps (last finite params kept; "
                    "checkpoints hold finite params only). Lower the LR or check the data.",
                    consecutive)
      break
    if step in cfg.probe_steps:
      _probe_once(cfg, graphdef, params_rep, step, probe_seed, devices)
    if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps:
      save_checkpoint(mngr, step, unreplicate(params_rep), unreplicate(opt_rep), meta(step))
    if cfg.step_sleep_s:
      time.sleep(cfg.step_sleep_s)
  mngr.wait_until_finished()
  mngr.close()

  summary = {"status": status, "model": cfg.model, "optimizer": cfg.optimizer,
             "params": n_params, "steps_run": len(losses), "start_step": start,
             "final_loss": losses[-1] if losses else None, "last_logged": last,
             "nonfinite_total": nonfinite_total, "devices": n_dev, "processes": n_proc,
             "micro_batch": cfg.micro_batch, "accum_steps": accum,
             "flops_per_token": fpt, "device_kind": devices[0].device_kind,
             "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "probe"}}
  if pid == 0:
    results.atomic_write_json(os.path.join(cfg.out_dir, "summary.json"), summary)
  return summary


def read_metrics(out_dir: str) -> list[dict]:
  """Rows of out_dir/metrics.jsonl."""
  with open(os.path.join(out_dir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]
