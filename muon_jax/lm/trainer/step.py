"""The compiled pieces of a step: loss, model, optimizer, the per-device train and eval steps,
and the one data-parallel wrapper with its host <-> device layout helpers.

`data_parallel` is the single place that maps the per-device step over
devices (pmap); a jit + sharding path would replace only it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from muon_jax import sharded_muon
from muon_jax.lm import llama
from muon_jax.lm.losses import next_token_loss
from muon_jax.lm.trainer.config import PEAK_TFLOPS, TrainConfig, lr_factor
from muon_jax.transform import muon_with_adamw

AXIS = "data"


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


def make_eval_step(graphdef):
  """Per-device eval(params, batch_AxBxL1) -> mean loss over all devices (under AXIS)."""

  def eval_fn(params, batch_AxBxL1):
    model = nnx.merge(graphdef, params)
    losses = jax.lax.map(lambda b: lm_loss(model, b), batch_AxBxL1)
    return jax.lax.pmean(losses.mean(), AXIS)

  return eval_fn


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
