"""Progress lines (muon_jax.infra.progress)."""

import re

import pytest

from muon_jax.infra import progress


def test_progress_counts_and_extrapolates(monkeypatch):
  clock = iter([100.0, 110.0, 130.0])  # start, then two advances
  monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
  p = progress.Progress(5, "saddle", done=1)  # one unit restored by a resume, untimed
  assert p.advance(detail="muon n=32") == "saddle: 2/5 (40%) elapsed 0:10, ETA 0:30 | muon n=32"
  # 30 s for 2 timed units -> 15 s/unit, 2 left.
  line = p.advance()
  assert re.fullmatch(r"saddle: 3/5 \(60%\) elapsed 0:30, ETA 0:30", line)


def test_progress_bad_counts():
  with pytest.raises(ValueError, match="need 0 <= done <= total"):
    progress.Progress(3, "x", done=4)


def test_fit_cost_model_separates_overhead_and_rate():
  costs = [1.0, 8.0, 64.0]
  assert progress.fit_cost_model(costs, [3 + 0.5 * c for c in costs]) == pytest.approx((3, 0.5))
  # One distinct cost: no overhead to separate, seconds per unit of cost.
  assert progress.fit_cost_model([4.0, 4.0], [2.0, 6.0]) == (0.0, 1.0)
  # A negative overhead (noise) falls back to the ratio; neither part is ever negative.
  overhead, rate = progress.fit_cost_model([1.0, 2.0, 3.0], [0.5, 2.5, 3.0])
  assert overhead == 0.0 and rate == pytest.approx(6 / 6)


# Wall seconds of the compiled groups of the CPU default saddle run
# (`python -m experiments.saddle_escape`, 2-core CI machine, 160 cells x 1000 steps each).
RECORDED = [
  ("muon", 16, 3.9),
  ("muon", 32, 7.2),
  ("muon", 64, 27.8),
  ("muon", 128, 191.8),
  ("adamw", 16, 4.6),
  ("adamw", 32, 5.5),
  ("adamw", 64, 12.6),
  ("adamw", 128, 77.0),
]


def _etas(monkeypatch, costs):
  """The ETA (seconds; None for "?") of each line when the groups take RECORDED's times."""
  clock = iter([0.0, *[sum(t for *_, t in RECORDED[: i + 1]) for i in range(len(RECORDED))]])
  monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
  bar = progress.Progress(len(RECORDED) * 160, "saddle cells", costs=costs)
  etas = []
  for _ in RECORDED:
    eta = bar.advance(160).split("ETA ")[1]
    parts = [int(v) for v in eta.split(":")] if eta != "?" else None
    etas.append(None if parts is None else sum(v * 60**i for i, v in enumerate(parts[::-1])))
  return etas


def test_cost_model_eta_is_within_30_percent_of_the_recorded_run(monkeypatch):
  from muon_jax.paper.saddle import SaddleConfig
  from muon_jax.paper.saddle.experiment import group_cost

  cfg = SaddleConfig()
  total = sum(t for *_, t in RECORDED)
  truth = [total - sum(t for *_, t in RECORDED[: i + 1]) for i in range(len(RECORDED))]
  etas = _etas(monkeypatch, [group_cost(cfg, opt, n, 160) for opt, n, _ in RECORDED])
  # One timed group cannot split compile overhead from cost: no guess (not 55 min).
  assert etas[0] is None
  # From the third group on (12% of the wall time; every line past the halfway point
  # included) the cost model is within 30% of what was left.
  for eta, left in zip(etas[2:-1], truth[2:-1]):
    assert abs(eta - left) <= 0.3 * left + 1, (etas, truth)
  # Counting cells instead, the line before Muon's n = 128 group was 4x optimistic.
  counted = _etas(monkeypatch, None)
  assert counted[2] < truth[2] / 4
