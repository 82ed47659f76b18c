"""Stopping a long run at a safe point on SIGINT / SIGTERM, its work so far saved.

A sweep runs inside `stop_at_safe_points()` and calls `check()` where everything computed
so far is on disk (after a checkpoint write, between units); after a signal `check()`
raises `Interrupted` there, and the binary turns it into one line and exit status
EXIT_INTERRUPTED. A second signal stops at once (KeyboardInterrupt): the work saved by the
last safe point is kept. Outside the context (library use, tests) `check()` never raises.

  with interrupt.stop_at_safe_points():
    for unit in units:
      save(compute(unit))
      interrupt.check()
"""

from __future__ import annotations

import contextlib
import signal
import threading

from absl import logging

# EX_TEMPFAIL: the run stopped early but can be continued (as the trainer's preemption).
EXIT_INTERRUPTED = 75
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested: list[int] = []


class Interrupted(Exception):
  """A stop request reached a safe point: everything computed so far is saved."""


def _handle(signum, frame):
  del frame
  if _requested:
    raise KeyboardInterrupt
  _requested.append(signum)
  logging.warning(
    "%s received: stopping after the unit in progress (its results are saved first); "
    "send it again to stop at once",
    signal.Signals(signum).name,
  )


def requested() -> bool:
  """Whether a stop was requested inside `stop_at_safe_points`."""
  return bool(_requested)


def check() -> None:
  """Raises Interrupted if a stop was requested; call only where the work so far is saved."""
  if _requested:
    raise Interrupted(signal.Signals(_requested[0]).name)


@contextlib.contextmanager
def stop_at_safe_points():
  """SIGINT / SIGTERM handlers that record a stop request (main thread only), restored on exit.

  Nested uses keep the outer handlers; a request is forgotten when the outermost exits.
  """
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.getsignal(s) for s in SIGNALS}
  if previous[signal.SIGINT] is _handle:
    yield
    return
  for s in SIGNALS:
    signal.signal(s, _handle)
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    _requested.clear()
