"""`python -m experiments.saddle_power` on a synthetic saddle_escape.json with a known exponent."""

import json
import os

import numpy as np
from binaries import error_lines, run_module

from muon_jax.infra import results
from muon_jax.paper import saddle as sd


def _doc():
  cfg = sd.SaddleConfig(
    dims=(8, 16, 32), kappas=(100.0,), seeds=8, optimizers=("muon",), muon_lrs=(0.02, 0.2)
  )
  rng = np.random.default_rng(0)
  cells = []
  for lr, alpha in ((0.02, -0.5), (0.2, 0.0)):
    for n in cfg.dims:
      for s in range(8):
        tau = int(round(2000 * (n * n) ** alpha * np.exp(0.05 * rng.standard_normal())))
        cells.append(
          {
            **dict(zip(sd.GROUP_KEYS, ("muon", "incoherent", "standard", 0.1, 100.0, lr))),
            "n": n,
            "seed": s,
            "D": n * n,
            "tau_structural": tau,
            "hit_structural": True,
          }
        )
  return {"config": sd.config_dict(cfg), "complete": True, "cells": cells}


def _run(*args):
  return run_module("experiments.saddle_power", "--n_boot=50", *args, timeout=300)


def test_power_rows_recover_the_exponent_at_the_paper_lr(tmp_path):
  path = str(tmp_path / "saddle_escape.json")
  results.atomic_write_json(path, _doc())
  proc = _run(f"--results={path}", "--seeds=4,8")
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(tmp_path / "saddle_power.json") as f:
    out = json.load(f)
  assert out["delta"] == 0.1 and out["criterion"] == "structural"
  # Only the paper lr's group; k in {4, 8} x subsets {8,16}, {16,32}, {8,16,32}.
  assert {r["lr"] for r in out["rows"]} == {0.02} and len(out["rows"]) == 6
  full = [r for r in out["rows"] if r["n_values"] == [8, 16, 32]]
  for r in full:
    assert r["ci"][0] < -0.5 < r["ci"][1] and r["verdict"] == "shrinks"
    assert r["width"] == r["ci"][1] - r["ci"][0]
  proc = _run(f"--results={path}", "--seeds=4", "--noonly_paper_lr")
  with open(tmp_path / "saddle_power.json") as f:
    rows = json.load(f)["rows"]
  flat = [r for r in rows if r["lr"] == 0.2 and r["n_values"] == [8, 16, 32]]
  assert len(rows) == 6 and flat[0]["verdict"] == "dimension-free"


def test_bad_seed_count_is_one_line_exit_2(tmp_path):
  path = str(tmp_path / "saddle_escape.json")
  results.atomic_write_json(path, _doc())
  proc = _run(f"--results={path}", "--seeds=1,8")
  lines = error_lines(proc)
  assert proc.returncode == 2 and len(lines) == 1 and "--seeds" in lines[0], proc.stderr
  assert not os.path.exists(tmp_path / "saddle_power.json")
