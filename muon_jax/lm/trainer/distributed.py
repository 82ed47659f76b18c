"""Launch: joining a multi-process job, picking devices, fixing the batch layout.

A multi-process job calls `initialize_distributed(cfg)` in every process
first; `resolve_batching` then checks the launch against the runtime.
"""

from __future__ import annotations

import dataclasses
import socket
import time

import jax
import numpy as np

from muon_jax.lm import llama
from muon_jax.lm.trainer.config import TrainConfig


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


def _any_process(flag: bool) -> bool:
  """True on every process when `flag` is True on any (a collective: all must call)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils

  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))
