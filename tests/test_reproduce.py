"""muon_jax.paper.reproduce: report rendering, config checks, run_all with resume."""

import dataclasses
import os

import matplotlib.pyplot as plt
import pytest
from binaries import run_module

from muon_jax.infra import config
from muon_jax.paper import reproduce
from muon_jax.infra import results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _claim(claim_id, verdict, reproduces, figure="f.png", measured="+0.1 [0.0, 0.2]"):
  return {
    "id": claim_id,
    "paper": "The paper | says so.",
    "criterion": "a CI",
    "measured": measured,
    "verdict": verdict,
    "reproduces": reproduces,
    "figure": figure,
  }


def _summary():
  return {
    "scale": "cpu",
    "provenance": {
      "commit": "abc123",
      "dirty": True,
      "versions": {"python": "3.11.7", "jax": "0.10.2"},
      "device": {"platform": "cpu", "kind": "cpu", "count": 1},
      "cpu_count": 2,
      "command": "python -m experiments.reproduce --scale=cpu",
      "started_utc": "2026-01-01 00:00:00",
    },
    "experiments": {
      "alpha": {
        "paper": "Fig 9",
        "config": {"dims": [1, 2], "steps": 3},
        "wall_s": 61.0,
        "computed_at": {"commit": "abc123", "dirty": True, "started_utc": "2026-01-01 00:00:00"},
        "figures": ["f.png"],
        "summary": {},
        "claims": [
          _claim("fig9a", "holds", True),
          _claim("fig9b", "inconclusive", None, figure=None),
        ],
      },
      "beta": {
        "paper": "Lemma 7",
        "config": {"n": 4},
        "wall_s": 5.0,
        "resumed": True,
        "computed_at": {
          "commit": "0123456789abcdef",
          "dirty": False,
          "started_utc": "2025-12-31 23:00:00",
        },
        "figures": [],
        "summary": {},
        "claims": [_claim("lemma7", "grows", False)],
      },
    },
  }


def test_report_has_one_row_per_claim_and_the_provenance():
  text = reproduce.render_report(_summary())
  rows = [
    line for line in text.splitlines() if line.startswith("| fig") or line.startswith("| lemma")
  ]
  assert [r.split(" | ")[0][2:] for r in rows] == ["fig9a", "fig9b", "lemma7"]
  assert rows[0].endswith("| holds | yes | [f.png](alpha/f.png) |")
  assert rows[1].endswith("| inconclusive | n/a |  |")
  assert "| grows | **no** |" in rows[2]
  assert "The paper \\| says so." in rows[0]  # a '|' in a cell does not split the table
  assert "- rendered at commit: `abc123` (working tree had uncommitted changes)" in text
  assert "- versions: python 3.11.7, jax 0.10.2" in text
  assert "- device: 1 x cpu (cpu), 2 CPU cores" in text
  assert "- command: `python -m experiments.reproduce --scale=cpu`" in text
  assert (
    "| alpha | Fig 9 | 1m01s | `abc123` (dirty) 2026-01-01 00:00:00 | dims=1,2, steps=3 |" in text
  )
  assert (
    "| beta | Lemma 7 | 0m05s (earlier run, reused) | `0123456789` 2025-12-31 23:00:00 | "
    "n=4 |" in text
  )
  assert "| total | | 1m06s | | |" in text


@pytest.mark.parametrize("scale", reproduce.SCALES)
def test_committed_report_matches_its_summary_and_every_experiment_is_reusable(scale):
  folder = os.path.join(ROOT, "results", scale)
  summary = results.load_json(os.path.join(folder, reproduce.SUMMARY_NAME))
  assert summary is not None, f"results/{scale}/summary.json is missing"
  with open(os.path.join(folder, reproduce.REPORT_NAME)) as f:
    assert f.read() == reproduce.render_report(summary)
  for name, exp in summary["experiments"].items():
    for claim in exp["claims"]:
      if claim["figure"]:
        assert os.path.exists(os.path.join(folder, name, claim["figure"]))
  # `--resume` reuses every rendered experiment: its results and entry are committed.
  states = {r["name"]: r["state"] for r in reproduce.slice_states(scale, folder)}
  assert all(states[name] == "done" for name in summary["experiments"])
  assert {r["name"] for r in summary["pending"]} == {n for n, s in states.items() if s != "done"}


def test_gpu_report_rerenders_without_an_accelerator_and_without_recomputing(tmp_path):
  import shutil

  slice_dir = os.path.join(ROOT, "results", "gpu", "gpu_adamw_thm3")
  shutil.copytree(slice_dir, tmp_path / "gpu_adamw_thm3")
  cells_before = (tmp_path / "gpu_adamw_thm3" / "work" / "cells.json").read_bytes()
  summary = reproduce.run_all(
    "gpu", str(tmp_path), argv=["reproduce"], resume=True, compute=False, only=("gpu_adamw_thm3",)
  )
  assert (tmp_path / "gpu_adamw_thm3" / "work" / "cells.json").read_bytes() == cells_before
  entry = summary["experiments"]["gpu_adamw_thm3"]
  assert entry["resumed"] and entry["computed_by"][0]["device"]["kind"] == "NVIDIA H200"
  committed = results.load_json(os.path.join(slice_dir, "entry.json"))
  assert [c["verdict"] for c in entry["claims"]] == [c["verdict"] for c in committed["claims"]]


@pytest.mark.parametrize("scale", reproduce.SCALES)
def test_every_registered_config_passes_its_check(scale):
  configs = reproduce.check(scale)
  assert list(configs) == [e.name for e in reproduce.experiments_at(scale)]


def test_every_gpu_slice_is_sized_for_one_short_job():
  for exp in reproduce.experiments_at("gpu"):
    assert 0 < exp.minutes["gpu"] <= 8, exp.name


def test_check_names_the_bad_argument():
  with pytest.raises(ValueError, match=r"^only=nope is not an experiment of scale cpu"):
    reproduce.check("cpu", ("polynomial", "nope"))
  with pytest.raises(ValueError, match=r"^scale='tpu' is not allowed"):
    reproduce.check("tpu")


@dataclasses.dataclass(frozen=True)
class ToyConfig:
  n: int = config.field(3, "size", low=1)


def _toy_experiment(calls, scales=None):
  def run(cfg, work_dir, resume):
    calls.append((cfg.n, resume))
    return {"value": cfg.n * 2.0}

  def figures(res):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, res["value"]])
    return {"toy": fig}

  return reproduce.Experiment(
    name="toy",
    paper="Fig 0",
    config_cls=ToyConfig,
    scales=scales or {"cpu": {"n": 2}},
    run=run,
    claims=lambda res: [
      _claim("fig0", "holds", True, figure="toy.png", measured=str(res["value"]))
    ],
    figures=figures,
    summary=lambda res: {"value": res["value"]},
    check=config.check,
  )


def test_run_all_writes_report_and_resumes(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(reproduce, "EXPERIMENTS", (_toy_experiment(calls),))
  out = str(tmp_path)
  summary = reproduce.run_all("cpu", out, argv=["reproduce", "--scale=cpu"])
  assert calls == [(2, False)]
  exp = summary["experiments"]["toy"]
  assert exp["config"] == {"n": 2} and exp["summary"] == {"value": 4.0}
  assert exp["claims"][0]["measured"] == "4.0"
  assert os.path.exists(tmp_path / "toy" / "toy.png")
  assert results.load_json(str(tmp_path / "toy" / "results.json"))["value"] == 4.0
  with open(tmp_path / reproduce.REPORT_NAME) as f:
    assert f.read() == reproduce.render_report(results.load_json(str(tmp_path / "summary.json")))
  # Resuming with the same config reuses the stored results but re-judges them.
  rejudged = dataclasses.replace(
    _toy_experiment(calls),
    claims=lambda res: [_claim("fig0", "does not hold", False, measured=str(res["value"]))],
  )
  monkeypatch.setattr(reproduce, "EXPERIMENTS", (rejudged,))
  again = reproduce.run_all("cpu", out, argv=["reproduce"], resume=True)
  assert calls == [(2, False)] and again["experiments"]["toy"]["resumed"]
  assert again["experiments"]["toy"]["claims"][0]["verdict"] == "does not hold"
  assert again["experiments"]["toy"]["wall_s"] == exp["wall_s"]
  assert again["experiments"]["toy"]["computed_at"] == exp["computed_at"]
  # Another config reruns it, resuming its own work.
  monkeypatch.setattr(reproduce, "EXPERIMENTS", (_toy_experiment(calls, {"cpu": {"n": 5}}),))
  reproduce.run_all("cpu", out, argv=["reproduce"], resume=True)
  assert calls == [(2, False), (5, True)]


def test_resume_with_only_keeps_the_other_experiments(tmp_path, monkeypatch):
  calls = []
  first = _toy_experiment(calls)
  second = dataclasses.replace(_toy_experiment(calls, {"cpu": {"n": 7}}), name="other")
  monkeypatch.setattr(reproduce, "EXPERIMENTS", (first, second))
  reproduce.run_all("cpu", str(tmp_path), argv=[])
  summary = reproduce.run_all("cpu", str(tmp_path), argv=[], resume=True, only=("other",))
  assert list(summary["experiments"]) == ["toy", "other"]
  assert calls == [(2, False), (7, False)]  # toy kept from the first run, other reused


def test_run_all_refuses_claims_without_the_report_keys(tmp_path, monkeypatch):
  bad = dataclasses.replace(_toy_experiment([]), claims=lambda res: [{"id": "x", "verdict": "?"}])
  monkeypatch.setattr(reproduce, "EXPERIMENTS", (bad,))
  with pytest.raises(ValueError, match=r"^claims: 'x' has keys"):
    reproduce.run_all("cpu", str(tmp_path), argv=[])


@pytest.mark.parametrize(
  "args, expect",
  [
    (["--only=polynomial,nope"], "error: --only=nope is not an experiment of scale cpu; choose"),
    (["--scale=tpu"], "error: flag --scale=tpu: value should be one of <cpu|gpu>"),
  ],
)
def test_binary_bad_flags_are_one_line_errors(tmp_path, args, expect):
  out = tmp_path / "report"
  proc = run_module(
    "experiments.reproduce", f"--out_dir={out}", *args, timeout=300, env={"JAX_PLATFORMS": "cpu"}
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().startswith(expect) and len(proc.stderr.strip().splitlines()) == 1
  assert not (out / reproduce.SUMMARY_NAME).exists()


def _gpu_toy(name, calls, *, n=2, minutes=1.0, cells=None, members=()):
  return dataclasses.replace(
    _toy_experiment(calls, {"gpu": {"n": n}}),
    name=name,
    minutes={"gpu": minutes},
    cells=cells,
    members=members,
  )


def test_slices_report_what_is_pending_and_a_budget_starts_only_what_fits(tmp_path, monkeypatch):
  calls = []
  slices = (
    _gpu_toy("first", calls, minutes=1.0),
    _gpu_toy("big", calls, n=3, minutes=50.0),
    _gpu_toy("joined", calls, n=4, members=("first", "big")),
  )
  monkeypatch.setattr(reproduce, "EXPERIMENTS", slices)
  summary = reproduce.run_all("gpu", str(tmp_path), argv=[], max_minutes=10)
  assert calls == [(2, False)] and list(summary["experiments"]) == ["first"]
  assert [(r["name"], r["state"]) for r in summary["pending"]] == [
    ("big", "pending"),
    ("joined", "pending"),
  ]
  text = (tmp_path / reproduce.REPORT_NAME).read_text()
  assert "## Pending" in text
  assert (
    "| big | Fig 0 | pending | 50.0 min (gpu) | `python -m experiments.reproduce --scale=gpu"
    in text
  )
  # A later job runs the rest; the join runs once its members are done.
  summary = reproduce.run_all("gpu", str(tmp_path), argv=[], resume=True)
  assert calls == [(2, False), (3, True), (4, True)] and summary["pending"] == []
  assert [r["state"] for r in reproduce.slice_states("gpu", str(tmp_path))] == ["done"] * 3
  assert "## Pending" not in (tmp_path / reproduce.REPORT_NAME).read_text()


def test_without_an_accelerator_only_fully_stored_slices_are_finished(tmp_path, monkeypatch):
  calls = []
  stored = {"complete": (4, 4), "partial": (1, 4)}
  slices = tuple(
    _gpu_toy(name, calls, cells=lambda cfg, work, name=name: stored[name]) for name in stored
  )
  monkeypatch.setattr(reproduce, "EXPERIMENTS", slices)
  summary = reproduce.run_all("gpu", str(tmp_path), argv=[], compute=False)
  assert list(summary["experiments"]) == ["complete"] and len(calls) == 1
  assert summary["pending"] == [
    {
      "name": "partial",
      "paper": "Fig 0",
      "minutes": 1.0,
      "stored": 1,
      "total": 4,
      "state": "partial",
    }
  ]
  assert (
    "| partial | Fig 0 | partial: 1 of 4 cells |" in (tmp_path / reproduce.REPORT_NAME).read_text()
  )
  # The run that finished it is its provenance.
  (run,) = summary["experiments"]["complete"]["computed_by"]
  assert run["cells_after"] == 4 and "device" in run and "versions" in run


def test_stored_config_equal_up_to_fields_added_at_their_default():
  @dataclasses.dataclass(frozen=True)
  class Later:
    n: int = config.field(3, "size", low=1)
    added: float = config.field(0.5, "a field added later", low=0)

  assert config.stored_differences(Later(), {"n": 3}) == []
  assert config.stored_differences(Later(added=0.7), {"n": 3}) == ["added"]
  assert config.stored_differences(Later(n=4), {"n": 3, "added": 0.5}) == ["n"]
  assert config.stored_differences(Later(), {"n": 3, "added": 0.5, "gone": 1}) == ["gone"]


def test_jobs_sharing_an_out_dir_keep_each_others_slices(tmp_path, monkeypatch):
  calls = []
  slices = (_gpu_toy("first", calls), _gpu_toy("second", calls, n=5))
  monkeypatch.setattr(reproduce, "EXPERIMENTS", slices)
  reproduce.run_all("gpu", str(tmp_path), argv=[], resume=True, only=("first",))
  # The second job read summary.json before the first wrote it: it must not drop "first".
  os.remove(tmp_path / reproduce.SUMMARY_NAME)
  summary = reproduce.run_all("gpu", str(tmp_path), argv=[], resume=True, only=("second",))
  assert list(summary["experiments"]) == ["first", "second"] and calls == [(2, True), (5, True)]


def test_a_second_job_on_the_same_slice_is_refused_while_other_slices_go_on(tmp_path, monkeypatch):
  from muon_jax.infra import lock

  calls = []
  slices = (_gpu_toy("first", calls), _gpu_toy("second", calls, n=5))
  monkeypatch.setattr(reproduce, "EXPERIMENTS", slices)
  with lock.hold(str(tmp_path / "first")):
    with pytest.raises(lock.LockHeld, match=r"first"):
      reproduce.run_all("gpu", str(tmp_path), argv=[], resume=True, only=("first",))
    summary = reproduce.run_all("gpu", str(tmp_path), argv=[], resume=True, only=("second",))
  assert list(summary["experiments"]) == ["second"] and calls == [(5, True)]
