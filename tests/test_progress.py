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
