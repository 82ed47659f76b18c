"""Orbax checkpoints of a run: unreplicated NumPy params and optimizer state plus a JSON record."""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging


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
