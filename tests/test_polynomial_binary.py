"""End-to-end run of `python -m experiments.polynomial` at tiny size, and bad flags."""

import json

import numpy as np
import pytest
from binaries import run_module

from muon_jax.paper import theory as T

TINY = [
  "--presets=kimi,dion",
  "--grid=20001",
  "--levels=3",
  "--spike_m=32",
  "--spike_n=64",
  "--spike_thetas=0.5,4",
  "--spike_trials=1",
  "--sweep_ns=32,64",
  "--sweep_thetas=3",
  "--sweep_trials=2",
  "--n_boot=20",
]


def _run(args, tmp_path):
  return run_module("experiments.polynomial", f"--out_dir={tmp_path}", *args, timeout=300)


def test_binary_writes_lemma_keys_and_figures(tmp_path):
  proc = _run(TINY, tmp_path)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(tmp_path / "polynomial.json") as f:
    out = json.load(f)
  for key in (
    "lemma2.delta0",
    "lemma2.min_ratio_small",
    "lemma2.min_fifth_iterate_middle",
    "lemma2.invariant_interval",
    "lemma2.invariant_image",
    "lemma2.orbit",
    "lemma3.radius",
    "lemma3.worst_perturbation",
    "sec10_1",
    "lemma9",
  ):
    assert key in out, key
  assert set(out["presets"]) == {"kimi", "dion"}
  # The binary reports what the library computes (nothing recomputed in the binary).
  assert out["lemma2.delta0"] == pytest.approx(0.02 / 3.4445**4, rel=1e-12)
  lo, hi = out["lemma2.invariant_interval"]
  img = out["lemma2.invariant_image"]
  assert lo <= img[0] and img[1] <= hi
  assert all(out[f"lemma2.statement{k}_holds"] for k in (1, 2, 3))
  radius = T.robustness_radius("kimi", levels=3)["radius"]
  assert out["lemma3.radius"] == pytest.approx(radius, rel=1e-9)
  assert out["lemma3.paper_proof_bound"] < out["lemma3.radius_paper_interval_exact"]
  assert set(out["lemma9"]["summary"]) == set(T.NORMALIZATIONS)
  d = out["lemma9"]["summary"]["proportional"]["3.0"]
  assert np.all(np.isfinite(d["sin_mean"])) and "exponent" in d["exponent"]
  assert [c["id"] for c in out["claims"]][:5] == [
    "lemma2.1",
    "lemma2.2",
    "lemma2.3",
    "lemma3",
    "sec10.1",
  ]
  for name in ("rho_kimi.png", "rho_dion.png", "cobweb.png", "robustness.png", "bbp.png"):
    assert (tmp_path / name).stat().st_size > 1000, name


@pytest.mark.parametrize(
  "flag, expect",
  [
    ("--sweep_beta=2", "--sweep_beta=2.0 is out of range"),
    ("--presets=kimi,newton", "--presets='newton' is not allowed"),
    ("--sweep_ns=64,64", "--sweep_ns has duplicate values"),
    ("--spike_m=128", "--spike_m=128 must not exceed spike_n=64"),
    ("--sweep_thetas=1,x", "--sweep_thetas: could not parse 'x' as float"),
  ],
)
def test_bad_flag_is_one_line_error(tmp_path, flag, expect):
  proc = _run(["--spike_m=32", "--spike_n=64", flag], tmp_path)
  assert proc.returncode == 2
  lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: " + expect), proc.stderr
  assert not (tmp_path / "polynomial.json").exists()
