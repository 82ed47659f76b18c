"""Progress lines for long runs: where a run is, elapsed time and ETA."""

from __future__ import annotations

import math
import time

from absl import logging


def _clock(seconds: float) -> str:
  seconds = round(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
  """Counts finished units of work and logs `label: k/K (p%) elapsed E, ETA T`.

  The ETA extrapolates the mean time per unit of this run (units restored by
  a resume are counted as done but not timed).
  """

  def __init__(self, total: int, label: str, *, done: int = 0):
    if total < 0 or not 0 <= done <= total:
      raise ValueError(f"total={total}, done={done}: need 0 <= done <= total")
    self.total, self.label, self.done = total, label, done
    self._timed = 0
    self._start = time.monotonic()

  def advance(self, units: int = 1, detail: str = "") -> str:
    """Marks `units` more as done, logs and returns the progress line."""
    self.done = min(self.total, self.done + units)
    self._timed += units
    elapsed = time.monotonic() - self._start
    left = self.total - self.done
    eta = elapsed / self._timed * left if self._timed else float("nan")
    pct = 100.0 * self.done / self.total if self.total else 100.0
    line = (
      f"{self.label}: {self.done}/{self.total} ({pct:.0f}%) elapsed {_clock(elapsed)}, "
      f"ETA {_clock(eta) if math.isfinite(eta) else '?'}"
    )
    if detail:
      line += f" | {detail}"
    logging.info(line)
    return line
