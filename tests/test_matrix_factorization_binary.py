"""End-to-end runs of `python -m experiments.matrix_factorization` at tiny size."""

import json
import os

import numpy as np
from binaries import run_module

TINY = [
  "--dims=12,20",
  "--kappas=10,1000",
  "--rank=6",
  "--batch=16",
  "--steps=30",
  "--dense_steps=20",
  "--log_every=5",
  "--seeds=2",
]


def _run(*args):
  return run_module("experiments.matrix_factorization", *args)


def test_tiny_run_then_resume(tmp_path):
  out_dir = str(tmp_path / "mf")
  first = _run(*TINY, "--optimizers=muon", f"--out_dir={out_dir}")
  assert first.returncode == 0, first.stderr[-3000:]
  path = os.path.join(out_dir, "matrix_factorization.json")
  with open(path) as f:
    doc1 = json.load(f)
  assert set(doc1["units"]) == {"muon/n12", "muon/n20"}
  assert [c["id"] for c in doc1["claims"]] == ["fig2b", "fig2c", "fig2d"]

  second = _run(*TINY, "--optimizers=muon,adamw", "--resume", f"--out_dir={out_dir}")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "resume: muon/n12 already done" in second.stderr
  with open(path) as f:
    doc = json.load(f)
  assert set(doc["units"]) == {"muon/n12", "muon/n20", "adamw/n12", "adamw/n20"}
  assert doc["units"]["muon/n12"] == doc1["units"]["muon/n12"]  # reused, not recomputed
  for name in ("fig2a", "fig2b", "fig2c", "fig2d"):
    assert os.path.getsize(os.path.join(out_dir, f"{name}.png")) > 1000

  # The summary agrees with the stored traces.
  steps = np.asarray(doc["record_steps"])
  for opt in ("muon", "adamw"):
    for n in (12, 20):
      erank = np.asarray(doc["units"][f"{opt}/n{n}"]["erank_R"], dtype=float)
      assert erank.shape == (2, 2, steps.size)
      hit = erank >= 2.0 * erank[..., :1]
      expected = np.where(hit.any(-1), steps[np.argmax(hit, -1)], np.nan)
      got = np.array(doc["summary"][opt]["per_n"][str(n)]["expansion_step"], dtype=float)
      np.testing.assert_array_equal(got, expected)
  assert [c["id"] for c in doc["claims"]] == [
    "fig2a",
    "fig2b",
    "fig2c",
    "fig2c (vs AdamW)",
    "fig2d",
  ]

  # Resuming with different settings is refused with a clear message.
  clash = _run(*TINY[:-1], "--seeds=3", "--resume", f"--out_dir={out_dir}")
  assert clash.returncode == 2
  assert clash.stderr.strip().splitlines()[-1].startswith("error: --resume: ")


def test_bad_flag_is_a_one_line_error(tmp_path):
  bad = _run("--kappas=10,0.5", f"--out_dir={tmp_path}")
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1].startswith("error: --kappas=0.5 is out of range")
  bad = _run("--dims=64,2", f"--out_dir={tmp_path}")
  assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --dims=2 is out of range")
  bad = _run("--dims=64", "--rank=2", f"--out_dir={tmp_path}")
  assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --dims=64: the estimator")
  assert not os.listdir(tmp_path)  # nothing ran, nothing written
  afile = tmp_path / "afile"
  afile.write_text("x")
  bad = _run(f"--out_dir={afile}")
  assert bad.returncode == 2
  assert bad.stderr.strip() == f"error: --out_dir={afile} exists and is not a folder"
