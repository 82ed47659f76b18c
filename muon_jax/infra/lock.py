"""One run per output folder: a lock file naming the process that holds it.

A run takes `<folder>/.run.lock` before it writes anything there and deletes it when it
ends. The file holds JSON {pid, host, started_utc, command}. A second run is refused
(`LockHeld`, one line naming the holder); a lock whose pid is not running on this host is
stale (the run was killed) and is taken over with a warning saying so. A lock taken on
another host cannot be checked from here and is refused: the message says to delete it
when that run is gone.

Taking the lock is serialized with an exclusive `flock` on the lock file, held for the
whole run, so two runs starting together cannot both take over a stale lock; the pid
check alone decides where `flock` is unsupported (some network filesystems).

  with lock.hold(out_dir):
    run(...)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time

from absl import logging

LOCK_NAME = ".run.lock"


class LockHeld(ValueError):
  """Another live run holds the folder's lock (a ValueError: binaries report it in one line)."""


def _pid_running(pid) -> bool:
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


def _read(fd: int) -> dict | None:
  os.lseek(fd, 0, os.SEEK_SET)
  data = b""
  while chunk := os.read(fd, 65536):
    data += chunk
  try:
    holder = json.loads(data.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError):
    return None  # empty (just created) or torn by a crash: nobody can be named
  return holder if isinstance(holder, dict) else None


def _describe(holder: dict) -> str:
  return (
    f"pid {holder.get('pid')} on host {holder.get('host')} "
    f"(since {holder.get('started_utc')} UTC: {holder.get('command')})"
  )


class FolderLock:
  """The lock of one folder, held by this process until `release`."""

  def __init__(self, folder: str):
    self.folder = folder
    self.path = os.path.join(folder, LOCK_NAME)
    self._fd: int | None = None
    self.me = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
      "command": shlex.join(sys.argv),
    }

  def acquire(self) -> FolderLock:
    """Takes the lock (taking over a stale one, with a warning).

    Raises:
      LockHeld: a live run holds it, or a run on another host does.
    """
    from muon_jax.infra import results

    os.makedirs(self.folder, exist_ok=True)
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, results.file_mode(0o644))
      try:
        try:
          fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
          holder = _read(fd)
          raise LockHeld(self._held_message(holder or {"pid": "?", "host": "?"})) from None
        except OSError as e:
          if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # The holder may have released (deleted) the file between our open and flock: then
        # we hold a lock on an orphaned inode and must start over on the current file.
        try:
          if os.stat(self.path).st_ino != os.fstat(fd).st_ino:
            os.close(fd)
            continue
        except FileNotFoundError:
          os.close(fd)
          continue
        holder = _read(fd)
        if holder is not None and not self._mine(holder):
          if holder.get("host") != self.me["host"] or _pid_running(holder.get("pid")):
            raise LockHeld(self._held_message(holder))
          logging.warning(
            "%s: taking over a stale lock of %s, which is not running",
            self.path,
            _describe(holder),
          )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(self.me).encode())
        os.fsync(fd)
      except BaseException:
        os.close(fd)
        raise
      self._fd = fd
      return self

  def _mine(self, holder: dict) -> bool:
    return (holder.get("pid"), holder.get("host")) == (self.me["pid"], self.me["host"])

  def _held_message(self, holder: dict) -> str:
    hint = (
      "wait for it or use another out_dir"
      if holder.get("host") in (self.me["host"], "?")
      else f"if that run is gone, delete {self.path}"
    )
    return f"out_dir={self.folder} is in use by {_describe(holder)}; {hint}"

  def release(self) -> None:
    """Deletes the lock file (if still ours) and drops the flock."""
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      holder = _read(fd)
      if holder is not None and self._mine(holder):
        with contextlib.suppress(FileNotFoundError):
          os.remove(self.path)
    finally:
      os.close(fd)

  def __enter__(self) -> FolderLock:
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


def hold(folder: str) -> FolderLock:
  """A context manager holding `folder`'s lock: `with lock.hold(out_dir): ...`."""
  return FolderLock(folder)
