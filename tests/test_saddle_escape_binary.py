"""End-to-end runs of `python -m experiments.saddle_escape` at tiny size."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
from binaries import ROOT, error_lines, run_module

from muon_jax.infra import results

TINY = [
  "--dims=4,6",
  "--curvatures=0.5",
  "--kappas=1,50",
  "--seeds=3",
  "--paper_lr_seeds=5",
  "--steps=60",
  "--optimizers=muon",
  "--signals=aligned",
  "--muon_lrs=0.05,0.2",
  "--radius=0.3",
  "--n_boot=50",
]


def _run(args, out_dir):
  return run_module("experiments.saddle_escape", *args, f"--out_dir={out_dir}")


def _load(path):
  with open(path) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("full")
  proc = _run(TINY, out)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return out, _load(out / "saddle_escape.json")


def test_full_run_writes_cells_statistics_claims_and_figures(full_run):
  out, doc = full_run
  assert doc["complete"] and doc["draws"] == "common" and doc["delta"] == 0.1
  # dims x kappas x (3 seeds at lr 0.2 + 5 at the paper lr: 0.05 is the grid's closest to 0.02)
  assert len(doc["cells"]) == 2 * 2 * (3 + 5)
  assert {c["seed"] for c in doc["cells"] if c["lr"] == 0.05} == set(range(5))
  for c in doc["cells"]:
    assert c["D"] == c["n"] ** 2
    for m in ("structural", "definition1", "spectral", "perp_frobenius", "perp_spectral"):
      assert 1 <= c[f"tau_{m}"] <= 60 and (c[f"hit_{m}"] or c[f"tau_{m}"] == 60)
  assert len(doc["summary"]) == 2 * 2  # kappas x lrs
  for s in doc["summary"]:
    for crit in ("definition1", "structural", "spectral"):
      assert [p["D"] for p in s[crit]["per_D"]] == [16, 36]
      assert s[crit]["verdict"] in ("dimension-free", "grows", "shrinks", "inconclusive")
    assert [p["n"] for p in s["race_frobenius"]] == [4, 6]
  assert len(doc["tau_star"]) == 2  # kappas
  ids = {row["id"].split("/")[0] for row in doc["claims"]}
  assert ids == {"fig1a", "fig1b", "fig1d", "fig5a", "fig5b"}  # no AdamW: no fig1c.
  for row in doc["claims"]:
    assert set(row) == {"id", "paper", "criterion", "measured", "verdict", "reproduces", "figure"}
  assert sum("trajectory" in c for c in doc["cells"]) == 2  # seed 0, n = 6, paper lr, each kappa
  for name in ("fig1a_muon_vs_dimension", "fig1d_trajectories", "race_success", "tau_star"):
    with open(out / f"{name}.png", "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  for skipped in ("fig1c_adamw_vs_dimension", "fig5b_noise_vs_dimension"):
    assert not os.path.exists(out / f"{skipped}.png")  # AdamW / the noise ablation did not run.


def test_resume_after_kill_gives_the_same_json(full_run, tmp_path):
  _, doc = full_run
  # What a run killed after its first group (n = 4) leaves behind.
  partial = {k: doc[k] for k in ("experiment", "config", "delta", "draws")}
  partial.update(complete=False, cells=[c for c in doc["cells"] if c["n"] == 4])
  results.atomic_write_json(str(tmp_path / "saddle_escape.json"), partial)
  proc = _run([*TINY, "--resume"], tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "saddle cells: 32/32" in proc.stderr
  assert _load(tmp_path / "saddle_escape.json") == doc
  # Resuming with other settings is refused before anything compiles.
  proc = _run([*TINY[:-1], "--n_boot=51", "--resume"], tmp_path)
  assert proc.returncode == 2 and "n_boot" in proc.stderr and "--resume" in proc.stderr


@pytest.mark.parametrize(
  "args, flag",
  [
    (["--muon_lrs=0.02,0.02"], "--muon_lrs has duplicate values"),
    (["--adamw_lrs=0.01,-0.1"], "--adamw_lrs=-0.1 is out of range"),
    (["--perp_radius=0"], "--perp_radius=0.0 is out of range"),
    (["--success_level=1"], "--success_level=1.0 is out of range"),
    (["--dims=1,8"], "--dims=1 is out of range"),
    (["--noises=pink"], "--noises='pink' is not allowed"),
    # One n cannot give an exponent against D: refused before anything computes.
    (["--dims=64"], "--dims=64: needs at least 2 values"),
  ],
)
def test_binary_bad_flag_is_one_line_exit_2(tmp_path, args, flag):
  proc = _run(args, tmp_path)
  assert proc.returncode == 2
  lines = error_lines(proc)
  assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], proc.stderr
  assert not os.listdir(tmp_path)  # nothing ran, nothing written


def test_help_lists_the_binarys_own_flags(tmp_path):
  proc = _run(["--help"], tmp_path)  # absl's usage exit status: 1
  # The config's flags (defined through experiments.cli) with their docs, not only --helpfull.
  assert "--dims: matrix sides n (D = n^2)" in proc.stdout
  assert "at least 2 values" in proc.stdout and "--[no]resume: Reuse the cells" in proc.stdout


def test_sigint_stops_at_a_group_boundary_and_resumes(tmp_path):
  # Three compiled groups (n = 4, 6, 8); SIGINT once the first is on disk.
  keep = [a for a in TINY if not a.startswith(("--dims=", "--kappas="))]
  args = [*keep, "--dims=4,6,8", "--kappas=1", f"--out_dir={tmp_path}"]
  checkpoint = tmp_path / "saddle_escape.json"
  proc = subprocess.Popen(
    [sys.executable, "-m", "experiments.saddle_escape", *args],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.monotonic() + 300
  while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 75, stderr[-3000:]
  assert "Traceback" not in stderr
  last = stderr.strip().splitlines()[-1]
  command = "python -m experiments.saddle_escape " + shlex.join(args) + " --resume"
  assert last == f"interrupted: saved; resume with: {command}"
  partial = _load(checkpoint)
  assert not partial["complete"] and 0 < len(partial["cells"]) < 3 * 8

  resumed = run_module(*shlex.split(last.split("resume with: python -m ")[1]))
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  doc = _load(checkpoint)
  assert doc["complete"] and len(doc["cells"]) == 3 * 8
  # Only the groups left are computed (8 cells each), the stored ones restored.
  assert resumed.stderr.count("saddle cells: ") == (24 - len(partial["cells"])) // 8
  assert "saddle cells: 24/24" in resumed.stderr
  assert resumed.stdout.startswith("claims: ")
