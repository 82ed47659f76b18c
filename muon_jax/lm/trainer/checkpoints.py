"""Orbax checkpoints of a run: unreplicated NumPy params and optimizer state plus a JSON record,
each step folder sealed by an integrity record.

Orbax checks no content on restore (only a crc32c of zarr3 shard indices): a flipped byte in
an array file loads silently. So every save writes `integrity.json` (size and sha256 of each
file of the step folder) after Orbax has finalized the folder and before it commits it (the
rename that makes the step visible): a committed step always carries its record. Restore
verifies the record first; a damaged step is reported in one line and moved aside, and the
newest intact step is restored instead (`newest_intact`).

A save that fails (a full disk, a vanished folder) stops the run with `CheckpointError`, one
line naming the step; the previous checkpoint stays intact (Orbax writes into a temporary
folder and commits by rename).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import stat
import tempfile

import jax
import numpy as np
from absl import logging

INTEGRITY_NAME = "integrity.json"
# Orbax's step-level bookkeeping, (re)written at the commit, after the record: timestamps and
# handler names, no state. Damage to it shows when the step's meta is read (`newest_intact`).
ORBAX_COMMIT_FILES = ("_CHECKPOINT_METADATA", "commit_success.txt")
DAMAGED_DIR = "checkpoints_damaged"


class CheckpointError(RuntimeError):
  """A checkpoint could not be written; the message is one line naming the step."""


def check_writable(directory: str) -> None:
  """Raises ValueError (one line) unless `directory` is, or can be made, a writable folder.

  Called before the first step, so an unusable checkpoint folder is reported at start
  rather than at the first save.
  """
  try:
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
      pass
  except OSError as e:
    raise ValueError(f"checkpoint folder {directory} is not writable: {e.strerror or e}") from None


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(1 << 20):
      digest.update(chunk)
  return digest.hexdigest()


def _files(folder: str) -> list[str]:
  """Relative paths of the files under `folder` but the record and Orbax's commit files."""
  found = []
  for root, dirs, names in os.walk(folder):
    dirs.sort()
    for name in names:
      rel = os.path.relpath(os.path.join(root, name), folder)
      if rel != INTEGRITY_NAME and rel not in ORBAX_COMMIT_FILES:
        found.append(rel)
  return sorted(found)


def write_integrity(folder: str) -> None:
  """Writes folder/integrity.json: size and sha256 of every file of the step folder.

  Also removes o+w from any file the writers left world-writable (a umask of 0).
  """
  from muon_jax.infra import results

  files = {}
  for rel in _files(folder):
    path = os.path.join(folder, rel)
    mode = os.stat(path).st_mode
    if mode & stat.S_IWOTH:
      os.chmod(path, stat.S_IMODE(mode) & ~stat.S_IWOTH)
    files[rel] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
  results.atomic_write_json(os.path.join(folder, INTEGRITY_NAME), {"format": 1, "files": files})


def verify_integrity(folder: str) -> str | None:
  """None if `folder` matches its integrity record, else what is wrong (one phrase)."""
  path = os.path.join(folder, INTEGRITY_NAME)
  if not os.path.exists(path):
    return f"no {INTEGRITY_NAME} (written before records existed, or never committed)"
  try:
    with open(path) as f:
      files = json.load(f)["files"]
  except (OSError, ValueError, KeyError, TypeError):
    return f"{INTEGRITY_NAME} is unreadable"
  for rel, want in sorted(files.items()):
    full = os.path.join(folder, rel)
    if not os.path.isfile(full):
      return f"{rel} is missing"
    size = os.path.getsize(full)
    if size != want["size"]:
      return f"{rel} has {size} bytes, the record says {want['size']}"
    if _sha256(full) != want["sha256"]:
      return f"{rel} differs from its recorded sha256"
  return None


class CheckpointManager:
  """Orbax's CheckpointManager of out_dir/checkpoints whose saves carry an integrity record.

  `save` and `wait_until_finished` raise `CheckpointError` when a save did not commit;
  other attributes are Orbax's.
  """

  def __init__(self, out_dir: str, keep: int):
    import orbax.checkpoint as ocp

    self._pending: int | None = None
    self._record_error: BaseException | None = None
    self._orbax = ocp.CheckpointManager(
      os.path.abspath(os.path.join(out_dir, "checkpoints")),
      options=ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=True,
        # A temporary folder left by a killed save is not a checkpoint; clear it.
        cleanup_tmp_directories=True,
        async_options=ocp.AsyncOptions(post_finalization_callback=self._seal),
      ),
    )

  def __getattr__(self, name):
    return getattr(self._orbax, name)

  def _folder_being_committed(self, step: int) -> str:
    # Orbax writes step S into "S<TMP_DIR_SUFFIX>..." and renames it to "S" at commit; on
    # filesystems without rename it writes "S" directly.
    base = os.path.join(str(self._orbax.directory), str(step))
    candidates = glob.glob(base + ".orbax-checkpoint-tmp*")
    if len(candidates) == 1:
      return candidates[0]
    if not candidates and os.path.isdir(base):
      return base
    raise CheckpointError(f"cannot find the folder of step {step} being committed: {candidates}")

  def _seal(self) -> None:
    """Orbax's post-finalization callback (process 0, before the commit): the record."""
    try:
      write_integrity(self._folder_being_committed(self._pending))
    except BaseException as e:
      self._record_error = e
      raise

  def save(self, step: int, args) -> bool:
    self.wait_until_finished()
    self._pending, self._record_error = step, None
    try:
      started = self._orbax.save(step, args=args)
    except Exception as e:
      raise self._failure(step, e) from None
    if not started:  # Orbax's policy declined the step: nothing to wait for
      self._pending = None
    return started

  def settle(self) -> CheckpointError | None:
    """Never blocks: once the save in flight has ended, checks that it committed.

    Returns the CheckpointError of a save that did not commit, else None.
    """
    if self._pending is None or self._orbax.is_saving_in_progress():
      return None
    try:
      self.wait_until_finished()
    except CheckpointError as e:
      return e
    return None

  def wait_until_finished(self) -> None:
    """Waits for the save in flight; raises CheckpointError if it did not commit."""
    try:
      self._orbax.wait_until_finished()
    except Exception as e:
      raise self._failure(self._pending, e) from None
    step, self._pending = self._pending, None
    if step is None:
      return
    self._orbax.reload()
    if step not in self._orbax.all_steps():
      raise self._failure(step, self._record_error)

  def _failure(self, step, error) -> CheckpointError:
    self._orbax.reload()
    previous = [s for s in self._orbax.all_steps() if s != step]
    kept = (
      f"the previous checkpoint (step {max(previous)}) is intact"
      if previous
      else "no earlier checkpoint exists"
    )
    reason = f" ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    return CheckpointError(
      f"checkpoint of step {step} was not written{reason if error else ''}; {kept}"
    )


def checkpoint_manager(out_dir: str, keep: int) -> CheckpointManager:
  """The manager of out_dir/checkpoints (keeps the newest `keep`), saves sealed by a record."""
  return CheckpointManager(out_dir, keep)


def save_checkpoint(mngr, step: int, params, opt_state, meta: dict) -> bool:
  """Saves unreplicated NumPy params + opt state + JSON meta; refuses non-finite params.

  Raises:
    CheckpointError: this save could not start, or the previous one did not commit.
  """
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


def newest_intact(mngr, *, move_damaged: bool) -> int:
  """The newest step whose folder matches its integrity record and whose meta reads.

  Each damaged step newer than it is reported in one line; with `move_damaged` (process 0)
  it is moved to out_dir/checkpoints_damaged/<step>, out of the way of this run's saves.
  The caller then re-reads the folder (`mngr.reload()`).

  Raises:
    ValueError: no step is intact (one line naming the newest and what is wrong with it).
  """
  directory = str(mngr.directory)
  damaged = []
  for step in sorted(mngr.all_steps(), reverse=True):
    folder = os.path.join(directory, str(step))
    reason = verify_integrity(folder)
    if reason is None:
      try:
        read_checkpoint_meta(mngr, step)
      except Exception as e:  # the record matched, yet Orbax cannot read it
        reason = f"its meta does not load ({type(e).__name__})"
    if reason is None:
      break
    logging.warning("checkpoint %s is damaged: %s; trying the previous one", folder, reason)
    damaged.append((step, folder, reason))
  else:
    if not damaged:
      raise ValueError(f"no checkpoint in {directory}")
    _, folder, reason = damaged[0]
    hint = (
      f"if you trust it as it is, seal it with muon_jax.lm.trainer.checkpoints."
      f"write_integrity('{folder}')"
      if reason.startswith(f"no {INTEGRITY_NAME}")
      else "delete the damaged checkpoints to start afresh"
    )
    raise ValueError(f"no intact checkpoint in {directory}: the newest, {folder}, {reason}; {hint}")
  if damaged and move_damaged:
    aside = os.path.join(os.path.dirname(directory), DAMAGED_DIR)
    os.makedirs(aside, exist_ok=True)
    for bad_step, folder, _ in damaged:
      target = os.path.join(aside, str(bad_step))
      if os.path.exists(target):
        shutil.rmtree(target)
      os.replace(folder, target)
    logging.warning(
      "resuming from step %d; damaged checkpoint(s) %s moved to %s",
      step,
      ", ".join(str(s) for s, _, _ in damaged),
      aside,
    )
  return step


def restore_checkpoint(mngr, params, opt_state, step: int | None = None):
  """(params, opt_state, meta) of `step` (default latest) shaped like the given trees.

  Raises:
    ValueError: Orbax could not read the step (one line naming its folder).
  """
  import orbax.checkpoint as ocp

  step = mngr.latest_step() if step is None else step
  target = {"params": params, "opt_state": opt_state}
  try:
    out = mngr.restore(
      step,
      args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
    )
  except Exception as e:
    raise ValueError(
      f"checkpoint {os.path.join(str(mngr.directory), str(step))} does not restore "
      f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    ) from None
  state = jax.tree.map(np.asarray, out["state"])
  return state["params"], state["opt_state"], out["meta"]


def read_checkpoint_meta(mngr, step: int | None = None) -> dict:
  """The JSON record of checkpoint `step` (default latest), without touching the arrays."""
  import orbax.checkpoint as ocp

  step = mngr.latest_step() if step is None else step
  return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
