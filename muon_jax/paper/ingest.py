"""Saddle runs made elsewhere (e.g. on a lent GPU) as the stored cells of GPU slices.

A run is a `saddle_escape` binary's output folder. Its config must equal its slice's config (a
field added since, at its default, counts as equal) and its cells must lie on the slice's
grid; then its cells become `<out_dir>/<slice>/work/cells.json`, the checkpoint that
`reproduce --scale=gpu --resume` continues, and the machine that computed them becomes the
first entry of `<out_dir>/<slice>/work/provenance.json`.
"""

from __future__ import annotations

import os

from muon_jax.infra import config as config_lib
from muon_jax.infra import results
from muon_jax.paper import reproduce, saddle

RUN_RESULT = "saddle_escape.json"


def ingest_runs(source: dict, runs_dir: str, out_dir: str) -> list[str]:
  """Writes every run of `source` into its slice's work folder; returns one line per run.

  Raises:
    ValueError: naming the run and what does not match, before anything is written.
  """
  slices = {e.name: e for e in reproduce.experiments_at("gpu")}
  planned = []
  for folder, run in source["runs"].items():
    if run["slice"] not in slices:
      raise ValueError(f"source: run {folder} names slice {run['slice']!r}, not a GPU slice")
    cfg = reproduce.experiment_config(slices[run["slice"]], "gpu")
    doc = results.load_json(os.path.join(runs_dir, folder, RUN_RESULT))
    if doc is None:
      raise ValueError(f"runs_dir: {os.path.join(runs_dir, folder, RUN_RESULT)} does not exist")
    differing = config_lib.stored_differences(cfg, doc["config"])
    if differing:
      raise ValueError(
        f"source: run {folder} differs from slice {run['slice']} in {', '.join(differing)}"
      )
    grid = {saddle.cell_id(c) for c in saddle.all_cells(cfg)}
    off_grid = [saddle.cell_id(c) for c in doc["cells"] if saddle.cell_id(c) not in grid]
    if off_grid:
      raise ValueError(f"runs_dir: run {folder} has a cell off its slice's grid: {off_grid[0]}")
    planned.append((folder, run, cfg, doc))
  lines = []
  for folder, run, cfg, doc in planned:
    work = os.path.join(out_dir, run["slice"], "work")
    checkpoint = {
      "experiment": doc["experiment"],
      "config": saddle.config_dict(cfg),
      "delta": doc["delta"],
      "draws": doc["draws"],
      "complete": False,
      "cells": doc["cells"],
    }
    results.atomic_write_json(os.path.join(work, "cells.json"), checkpoint)
    provenance = {
      "commit": source["commit"],
      "dirty": source["dirty"],
      "versions": source["versions"],
      "device": source["device"],
      "command": run["command"],
      "started_utc": source["started_utc"],
      "wall_s": run["wall_s"],
      "cells_after": len(doc["cells"]),
    }
    results.atomic_write_json(os.path.join(work, "provenance.json"), [provenance])
    total = len(saddle.all_cells(cfg))
    lines.append(f"{run['slice']}: {len(doc['cells'])} of {total} cells from {folder}")
  return lines
