"""Progress lines for long runs: where a run is, elapsed time and ETA (from a cost model)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
from absl import logging


def _clock(seconds: float) -> str:
  seconds = round(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def fit_cost_model(costs: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
  """(overhead, rate) of seconds = overhead + rate x cost, by least squares.

  Both are kept non-negative; with fewer than two distinct costs there is no overhead
  to separate and the rate is total seconds / total cost.
  """
  c, s = np.asarray(costs, np.float64), np.asarray(seconds, np.float64)
  ratio = (0.0, float(s.sum() / c.sum()) if c.sum() > 0 else 0.0)
  if len(np.unique(c)) < 2:
    return ratio
  rate, overhead = np.polyfit(c, s, 1)
  if overhead < 0:
    return ratio
  if rate < 0:
    return float(s.mean()), 0.0
  return float(overhead), float(rate)


class Progress:
  """Counts finished units of work and logs `label: k/K (p%) elapsed E, ETA T`.

  Without `costs` the ETA extrapolates the mean time per unit of this run (units
  restored by a resume are counted as done but not timed). With `costs`, the predicted
  relative cost of each `advance` call still to come, in call order (e.g. cells x steps
  x n^3 per compiled group), the ETA fits seconds = overhead + rate x cost to the calls
  timed so far (`fit_cost_model`: a compile-sized overhead per call, then cost) and sums
  it over the calls left: a group predicted 8x costlier counts 8x, not as many cells.
  Until two distinct costs are timed, an ETA over other costs is shown as "?".
  """

  def __init__(
    self, total: int, label: str, *, done: int = 0, costs: Sequence[float] | None = None
  ):
    if total < 0 or not 0 <= done <= total:
      raise ValueError(f"total={total}, done={done}: need 0 <= done <= total")
    self.total, self.label, self.done = total, label, done
    self._timed = 0
    self._start = self._last = time.monotonic()
    self._costs_left = None if costs is None else list(costs)
    self._costs_timed: list[float] = []
    self._seconds: list[float] = []

  def _eta(self, elapsed: float) -> float:
    if self._costs_left is None:
      return elapsed / self._timed * (self.total - self.done) if self._timed else float("nan")
    timed = set(self._costs_timed)
    if not timed or (len(timed) < 2 and set(self._costs_left) - timed):
      return float("nan")  # other costs ahead and no overhead / rate split yet: no guess
    overhead, rate = fit_cost_model(self._costs_timed, self._seconds)
    return sum(overhead + rate * c for c in self._costs_left)

  def advance(self, units: int = 1, detail: str = "") -> str:
    """Marks `units` more as done (one call of `costs`), logs and returns the progress line."""
    now = time.monotonic()
    self.done = min(self.total, self.done + units)
    self._timed += units
    if self._costs_left:
      self._costs_timed.append(self._costs_left.pop(0))
      self._seconds.append(now - self._last)
    self._last = now
    elapsed = now - self._start
    eta = self._eta(elapsed)
    pct = 100.0 * self.done / self.total if self.total else 100.0
    line = (
      f"{self.label}: {self.done}/{self.total} ({pct:.0f}%) elapsed {_clock(elapsed)}, "
      f"ETA {_clock(eta) if math.isfinite(eta) else '?'}"
    )
    if detail:
      line += f" | {detail}"
    logging.info(line)
    return line
