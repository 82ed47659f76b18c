"""End-to-end run of experiments.bench_muon at tiny size (numbers are not asserted as speed)."""

import json

from binaries import run_module


def _run(*args):
  return run_module("experiments.bench_muon", *args, timeout=300)


def test_bench_muon_writes_json_with_matching_numerics(tmp_path):
  proc = _run(
    "--layers=1",
    "--hidden=32",
    "--intermediate=96",
    "--repeats=1",
    "--nobf16",
    "--conv_width=4",
    f"--out_dir={tmp_path}",
  )
  assert proc.returncode == 0, proc.stderr
  result = json.loads((tmp_path / "bench_muon.json").read_text())
  assert result["num_matrices"] == 7
  prov = result["provenance"]
  assert (
    prov["command"] == f"python -m experiments.bench_muon --layers=1 --hidden=32 "
    f"--intermediate=96 --repeats=1 --nobf16 --conv_width=4 --out_dir={tmp_path}"
  )
  assert len(prov["commit"]) == 40 and prov["versions"]["optax"] and prov["device"]["count"] >= 1
  assert {"ours_s", "optax_s", "speedup_vs_optax"} <= set(result)
  assert result["rel_err_vs_optax"] < 1e-4 and result["rel_err_vs_standard_ns"] < 1e-4
  assert result["rel_err_compat_vs_optax_defaults"] < 1e-4
  assert result["conv_num_kernels"] == 19
  assert (
    result["conv_rel_err_ours_vs_optax"] < 1e-4 and result["conv_rel_err_compat_vs_optax"] < 1e-4
  )


def test_bench_muon_bad_flag_is_one_line_error(tmp_path):
  proc = _run("--hidden=1", f"--out_dir={tmp_path}")
  assert proc.returncode == 2
  assert (
    proc.stderr.strip().splitlines()[-1] == "error: --hidden=1 is out of range; allowed [2, inf)"
  )
  assert not (tmp_path / "bench_muon.json").exists()
