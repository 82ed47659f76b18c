"""muon_jax.paper.ingest: runs made elsewhere become the stored cells of GPU slices."""

import copy
import json
import os

import pytest

from muon_jax.infra import config, results
from muon_jax.paper import ingest, reproduce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICE = "gpu_adamw_thm3"
MACHINE = {
  "commit": "0123456789abcdef",
  "dirty": False,
  "device": {"platform": "gpu", "kind": "Some GPU", "count": 1},
  "versions": {"python": "3.12", "jax": "0.11"},
  "started_utc": "2026-12-04",
}


def _run_dir(tmp_path, doc):
  folder = tmp_path / "runs" / "run1"
  folder.mkdir(parents=True)
  (folder / ingest.RUN_RESULT).write_text(json.dumps(doc))
  return str(tmp_path / "runs")


def _source():
  return {**MACHINE, "runs": {"run1": {"slice": SLICE, "command": "python -m x", "wall_s": 9}}}


@pytest.fixture(scope="module")
def stored_run():
  """The committed cells of the H200 AdamW run, as its binary wrote them."""
  return results.load_json(os.path.join(ROOT, "results", "gpu", SLICE, "work", "cells.json"))


def test_a_matching_run_becomes_the_slice_checkpoint_with_its_provenance(tmp_path, stored_run):
  out = tmp_path / "report"
  lines = ingest.ingest_runs(_source(), _run_dir(tmp_path, stored_run), str(out))
  assert lines == [f"{SLICE}: 672 of 672 cells from run1"]
  written = results.load_json(str(out / SLICE / "work" / "cells.json"))
  assert written["cells"] == stored_run["cells"]
  (prov,) = results.load_json(str(out / SLICE / "work" / "provenance.json"))
  assert prov["device"]["kind"] == "Some GPU" and prov["command"] == "python -m x"
  state = {r["name"]: r for r in reproduce.slice_states("gpu", str(out))}[SLICE]
  assert (state["state"], state["stored"], state["total"]) == ("stored", 672, 672)


def test_a_run_with_other_settings_is_refused_naming_the_fields(tmp_path, stored_run):
  doc = copy.deepcopy(stored_run)
  doc["config"]["steps"] = 1000
  doc["config"]["seed"] = 3
  with pytest.raises(
    ValueError, match=rf"^source: run run1 differs from slice {SLICE} in seed, steps$"
  ):
    ingest.ingest_runs(_source(), _run_dir(tmp_path, doc), str(tmp_path / "report"))
  assert not (tmp_path / "report").exists()


def test_a_cell_off_the_grid_is_refused_before_anything_is_written(tmp_path, stored_run):
  doc = copy.deepcopy(stored_run)
  doc["cells"][5]["n"] = 48
  with pytest.raises(ValueError, match=r"^runs_dir: run run1 has a cell off its slice's grid: "):
    ingest.ingest_runs(_source(), _run_dir(tmp_path, doc), str(tmp_path / "report"))
  assert not (tmp_path / "report").exists()


def test_every_committed_gpu_checkpoint_matches_its_slice_config():
  slices = {e.name: e for e in reproduce.experiments_at("gpu")}
  for name in os.listdir(os.path.join(ROOT, "results", "gpu")):
    path = os.path.join(ROOT, "results", "gpu", name, "work", "cells.json")
    if name in slices and os.path.exists(path):
      cfg = reproduce.experiment_config(slices[name], "gpu")
      assert config.stored_differences(cfg, results.load_json(path)["config"]) == [], name
