"""End-to-end runs of `python -m experiments.saddle_escape` at tiny size."""

import json
import os
import subprocess
import sys

import pytest

from experiments import saddle_escape as se
from muon_jax import results
from muon_jax.validate import FlagError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dims=4,6", "--curvatures=0.5", "--kappas=1,50", "--seeds=3", "--steps=60",
        "--optimizers=muon", "--muon_lr=0.05", "--radius=0.3", "--n_boot=50"]


def _run(args, out_dir):
  proc = subprocess.run([sys.executable, "-m", "experiments.saddle_escape", *args,
                         f"--out_dir={out_dir}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
  return proc


def _load(path):
  with open(path) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("full")
  proc = _run(TINY, out)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return out, _load(out / "saddle_escape.json")


def test_full_run_writes_records_verdicts_and_figures(full_run):
  out, doc = full_run
  assert doc["complete"] and len(doc["cells"]) == 2 * 2 * 3  # dims x kappas x seeds
  for c in doc["cells"]:
    assert c["D"] == c["n"] ** 2
    for crit, flag in (("tau_esc", "escaped"), ("tau_esc_frob", "escaped_frob"), ("tau_lock", "locked")):
      assert 1 <= c[crit] <= 60 and (c[flag] or c[crit] == 60)
  assert len(doc["summary"]) == 2 * 2  # kappas x criteria
  for s in doc["summary"]:
    assert s["verdict"] and [r["n"] for r in s["per_n"]] == [4, 6]
  assert set(doc["claims"]) == {"muon_dimension_free", "muon_faster_with_n_at_high_kappa",
                                "adamw_grows_with_D"}
  assert len(doc["trajectories"]) == 2  # seed 0, n = 6, each kappa
  for name in ("fig1a_muon_vs_dimension", "fig1b_muon_vs_curvature", "fig1d_trajectories",
               "fig5a_noise_vs_curvature", "fig5b_noise_vs_dimension"):
    with open(out / f"{name}.png", "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert not os.path.exists(out / "fig1c_adamw_vs_dimension.png")  # AdamW did not run.


def test_resume_after_kill_gives_the_same_json(full_run, tmp_path):
  out, doc = full_run
  # What a run killed after its first group (n = 4) leaves behind.
  partial = dict(doc, complete=False, cells=[c for c in doc["cells"] if c["n"] == 4],
                 trajectories={})
  for key in ("summary", "claims"):
    partial.pop(key)
  results.atomic_write_json(str(tmp_path / "saddle_escape.json"), partial)
  proc = _run([*TINY, "--resume"], tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "6 already done, 6 to run" in proc.stderr
  assert _load(tmp_path / "saddle_escape.json") == doc
  # Resuming with other settings is refused (before compiling).
  proc = _run([*TINY[:-1], "--n_boot=51", "--resume"], tmp_path)
  assert proc.returncode == 2 and "n_boot" in proc.stderr


def test_shards_merge_to_the_full_run(full_run, tmp_path):
  _, doc = full_run
  procs = [subprocess.Popen([sys.executable, "-m", "experiments.saddle_escape", *TINY,
                             f"--shard={i}/2", f"--out_dir={tmp_path}"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]  # independent jobs
  for i, proc in enumerate(procs):
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    shard = _load(tmp_path / f"saddle_escape.shard-{i}-of-2.json")
    assert shard["shard"] == f"{i}/2" and len(shard["cells"]) == 6 and "summary" not in shard
  proc = _run(["merge"], tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _load(tmp_path / "saddle_escape.json") == doc
  assert os.path.exists(tmp_path / "fig1a_muon_vs_dimension.png")


def _values(**over):
  values = {"dims": "4,6", "curvatures": "0.1", "kappas": "1,100", "seeds": 2, "steps": 10,
            "optimizers": "muon,adamw", "noise": "standard", "radius": 1.0, "sigma": 1.0,
            "signal": "aligned", "muon_lr": "0.02", "adamw_lr": "0.001", "sgd_lr": "0.01",
            "lock_threshold": 0.9, "power_iters": 3, "init_scale": 0.0, "bulk_curvature": 0.0,
            "tail_df": 3, "tail_exponent": 1.0, "chunk": 100, "n_boot": 10, "tolerance": 0.1,
            "seed": 0}
  values.update(over)
  return values


@pytest.mark.parametrize("over, flag", [
    ({"dims": "1,8"}, "--dims"), ({"dims": ""}, "--dims"), ({"kappas": "0.5"}, "--kappas"),
    ({"steps": 0}, "--steps"), ({"optimizers": "muon,adagrad"}, "--optimizers"),
    ({"noise": "pink"}, "--noise"), ({"curvatures": "0"}, "--curvatures"),
    ({"adamw_lr": ""}, "--adamw_lr"), ({"signal": "diagonal"}, "--signal"),
    ({"tail_df": 2}, "--tail_df"), ({"seeds": 0}, "--seeds"), ({"dims": "4,4"}, "--dims"),
])
def test_bad_values_name_the_flag(over, flag):
  with pytest.raises(FlagError, match=flag):
    se.build_config(_values(**over))


def test_good_values_build_the_config():
  cfg = se.build_config(_values())
  assert cfg["dims"] == [4, 6] and cfg["lrs"] == {"muon": [0.02], "adamw": [0.001]}
  assert len(se.all_cells(cfg)) == 2 * 1 * 2 * 1 * 2 * 2  # opts x lr x dims x lam x kappa x seeds


@pytest.mark.parametrize("args, flag", [(["--dims=1,8"], "--dims"), (["--noise=pink"], "--noise"),
                                        (["--shard=2/2"], "--shard")])
def test_binary_bad_flag_is_one_line_exit_2(tmp_path, args, flag):
  proc = _run(args, tmp_path)
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.strip().splitlines() if "libtpu" not in l and "tpu" not in l.lower()]
  assert len(lines) == 1 and flag in lines[0], proc.stderr
  assert not os.listdir(tmp_path)  # nothing ran, nothing written
