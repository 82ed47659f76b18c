"""Atomic result files and resume bookkeeping shared by every experiment."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import shlex
import subprocess
import tempfile
import time
from typing import Any

import numpy as np


def to_json(obj: Any) -> Any:
  """A JSON-ready copy of `obj`: NaN and +-inf become None, NumPy scalars and
  arrays become Python numbers and lists, tuples become lists, keys strings.

  Strict JSON has no NaN; a never-crossed step or an undefined ratio is
  written as null and read back as None.
  """
  if isinstance(obj, dict):
    return {str(k): to_json(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [to_json(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return to_json(obj.tolist())
  if isinstance(obj, (bool, np.bool_)):
    return bool(obj)
  if isinstance(obj, (int, np.integer)):
    return int(obj)
  if isinstance(obj, (float, np.floating)):
    value = float(obj)
    return value if math.isfinite(value) else None
  if hasattr(obj, "__array__") and hasattr(obj, "shape"):  # jax arrays
    return to_json(np.asarray(obj))
  return obj


def atomic_write_json(path: str, obj: Any) -> None:
  """Writes JSON to `path` via a temp file in the same folder and os.replace.

  A reader (or a killed run) sees either the old file or the new one, never a
  half-written one.
  """
  atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=False).encode())


def atomic_write_bytes(path: str, data: bytes) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".tmp")
  try:
    # mkstemp makes the file 0600; results are ordinary files, so honour the umask.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def load_json(path: str, default: Any = None) -> Any:
  """Contents of a JSON file, or `default` when it does not exist."""
  if not os.path.exists(path):
    return default
  with open(path) as f:
    return json.load(f)


def save_figure(fig, path: str) -> None:
  """Saves a matplotlib figure atomically as PNG and closes it."""
  import io
  import matplotlib.pyplot as plt

  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
  plt.close(fig)
  atomic_write_bytes(path, buf.getvalue())


def provenance(argv: list[str]) -> dict:
  """Commit (and whether the tree is dirty), library versions, devices, command line."""
  import jax

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def git(*args):
    try:
      return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=30
      ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
      return ""

  versions = {"python": platform.python_version()}
  for package in ("jax", "jaxlib", "optax", "flax", "numpy"):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  devices = jax.devices()
  return {
    "commit": git("rev-parse", "HEAD") or None,
    "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    "versions": versions,
    "device": {
      "platform": devices[0].platform,
      "kind": devices[0].device_kind,
      "count": len(devices),
    },
    "cpu_count": os.cpu_count(),
    "command": shlex.join(argv),
    "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
  }
