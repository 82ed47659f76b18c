"""Atomic result files and resume bookkeeping shared by every experiment.

Files written here are never world-writable: their mode is 0o666 minus the process's umask
minus o+w. The umask is read without changing it (`current_umask`), because changing it,
even for an instant, applies to every thread of the process (Orbax's writers among them).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import shlex
import subprocess
import tempfile
import threading
import time
from typing import Any

import numpy as np
from absl import logging

WORLD_WRITABLE = 0o002


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
  """Writes `obj` as strict JSON to `path` via a temp file in the same folder and os.replace.

  A reader (or a killed run) sees either the old file or the new one, never a
  half-written one. An `obj` holding NaN, +-inf or NumPy values goes through `to_json`:
  non-finite numbers are written as null, never the bare NaN strict JSON readers reject.
  """
  try:  # already JSON-ready (the common case): no copy
    text = json.dumps(obj, indent=1, sort_keys=False, allow_nan=False)
  except (TypeError, ValueError):
    text = json.dumps(to_json(obj), indent=1, sort_keys=False, allow_nan=False)
  atomic_write_bytes(path, text.encode())


_umask_lock = threading.Lock()
_fallback_umask: list[int] = []


def current_umask() -> int:
  """The process's umask, read without changing it.

  Linux: the "Umask:" line of /proc/self/status. Elsewhere the value is read once by
  setting a restrictive 0o077 for an instant (a file another thread creates in that
  instant comes out more private, never more open) and cached.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  with _umask_lock:
    if not _fallback_umask:
      umask = os.umask(0o077)
      os.umask(umask)
      _fallback_umask.append(umask)
    return _fallback_umask[0]


def forbid_world_writable() -> None:
  """Adds o+w to the process's umask (one call, no window), so every file this process
  creates from now on, by any library, is not world-writable. For binaries, at start."""
  os.umask(current_umask() | WORLD_WRITABLE)


def file_mode(base: int = 0o666) -> int:
  """`base` as the umask leaves it, without o+w."""
  return base & ~(current_umask() | WORLD_WRITABLE)


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically (temp file + os.replace), mode `file_mode()`."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".tmp")
  try:
    # mkstemp makes the file 0600; results are ordinary files, so honour the umask.
    os.fchmod(fd, file_mode())
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
  """Contents of a JSON file, or `default` when it does not exist.

  Raises:
    ValueError: the file is not valid UTF-8 JSON (one line naming the file).
  """
  if not os.path.exists(path):
    return default
  with open(path, "rb") as f:
    data = f.read()
  try:
    return json.loads(data.decode("utf-8"))
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not valid UTF-8 (byte {e.start})") from None
  except json.JSONDecodeError as e:
    raise ValueError(
      f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
      "the file is damaged or truncated"
    ) from None


def json_line(row: dict) -> str:
  """One strict JSON line (NaN as null) for an append-only .jsonl log."""
  return json.dumps(to_json(row), allow_nan=False) + "\n"


def read_jsonl(path: str) -> list[Any]:
  """The records of an append-only JSONL file, tolerating a crash mid-append.

  A last line without its newline that does not parse (a write torn by a kill or a full
  disk) is dropped with a warning; any other bad line is an error.

  Raises:
    ValueError: a line before the last does not parse (naming the file and line).
  """
  with open(path, "rb") as f:
    data = f.read()
  lines = data.split(b"\n")
  torn_tail = lines.pop()  # b"" when the file ends with a newline
  rows = []
  for line_no, line in enumerate(lines, 1):
    if line.strip():
      rows.append(_jsonl_record(path, line_no, line))
  if torn_tail.strip():
    try:
      rows.append(_jsonl_record(path, len(lines) + 1, torn_tail))
    except ValueError:
      logging.warning(
        "%s: dropped its last line (%d bytes, no newline, not valid JSON): a write torn by a crash",
        path,
        len(torn_tail),
      )
  return rows


def _jsonl_record(path: str, line_no: int, line: bytes) -> Any:
  try:
    return json.loads(line.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{path}:{line_no}: not a valid JSON line ({e})") from None


def save_figure(fig, path: str) -> None:
  """Saves a matplotlib figure atomically as PNG and closes it."""
  import io
  import matplotlib.pyplot as plt

  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
  plt.close(fig)
  atomic_write_bytes(path, buf.getvalue())


def provenance(argv: list[str]) -> dict:
  """Commit (and whether the tree is dirty), library versions, devices, command line.

  The commit is recorded only when the git repository enclosing the package tracks the
  package itself; a copy of the tree exported into another repository records None
  rather than that repository's commit.
  """
  import jax

  package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def git(*args):
    try:
      proc = subprocess.run(
        ["git", *args], cwd=package_dir, capture_output=True, text=True, timeout=30
      )
    except (OSError, subprocess.SubprocessError):
      return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""

  # Another repository's commit (a tree exported into it) is not this code's.
  tracked = bool(git("ls-files", "--error-unmatch", "__init__.py"))

  versions = {"python": platform.python_version()}
  for package in ("jax", "jaxlib", "optax", "flax", "numpy"):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  devices = jax.devices()
  return {
    "commit": (git("rev-parse", "HEAD") or None) if tracked else None,
    "dirty": tracked and bool(git("status", "--porcelain", "--untracked-files=no")),
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
