"""The saddle-escape experiment: simulate its cells group by group, checkpoint, resume."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from muon_jax import stats
from muon_jax.paper.saddle.engine import Grid, run_grid
from muon_jax.paper.saddle.problem import METRICS, make_optimizer
from muon_jax.paper.saddle.statistics import summarize, tallies, tau_star
from muon_jax.paper.saddle.sweep import (
  SaddleConfig,
  all_cells,
  cell_id,
  config_dict,
  config_from_results,
  is_traced,
  stream_index,
)

TRACE_POINTS = 200


def simulate(
  cfg: SaddleConfig, todo: Sequence[dict], *, on_group=None, devices: Sequence[Any] | None = None
) -> list[dict]:
  """Runs cells group by group (one compile per optimizer, signal, noise, n).

  Args:
    cfg: the experiment config.
    todo: cells (dicts with CELL_KEYS) to run.
    on_group: called as on_group(records_of_the_group, seconds) after each group.
    devices: devices to spread each group's cells over.

  Returns:
    One record per cell: the cell's keys, D, tau_<metric>, hit_<metric>, and
    for the `is_traced` cells "trajectory" (the first five METRICS at
    TRACE_POINTS log-spaced steps).
  """
  groups: dict = {}
  for c in todo:
    groups.setdefault((c["optimizer"], c["signal"], c["noise"], c["n"]), []).append(c)
  records = []
  for (opt, signal, noise, n), cells in groups.items():
    grid = Grid(
      lam=np.asarray([c["lam"] for c in cells], np.float32),
      kappa=np.asarray([c["kappa"] for c in cells], np.float32),
      lr=np.asarray([c["lr"] for c in cells], np.float32),
      seed_index=np.asarray([stream_index(cfg, c) for c in cells], np.int32),
    )
    traced = [i for i, c in enumerate(cells) if is_traced(cfg, c)]
    start = time.perf_counter()
    out = run_grid(
      make_optimizer(opt),
      cfg.sim_config(n, signal, noise),
      grid,
      seed=cfg.seed,
      devices=devices,
      trace=bool(traced),
    )
    seconds = time.perf_counter() - start
    group = [
      {
        **c,
        "D": n * n,
        **{f"tau_{m}": int(out[f"tau_{m}"][i]) for m in METRICS},
        **{f"hit_{m}": bool(out[f"hit_{m}"][i]) for m in METRICS},
      }
      for i, c in enumerate(cells)
    ]
    t = np.unique(np.geomspace(1, cfg.steps, TRACE_POINTS).astype(int))
    for i in traced:
      group[i]["trajectory"] = {
        "t": t.tolist(),
        **{m: out["trace"][i, t - 1, k].round(6).tolist() for k, m in enumerate(METRICS[:5])},
      }
    records += group
    if on_group is not None:
      on_group(group, seconds)
  return records


def resumable_cells(cfg: SaddleConfig, checkpoint: str) -> list[dict]:
  """Cells already in `checkpoint` ([] if absent).

  Raises:
    ValueError: the file was written with a different config (which fields).
  """
  from muon_jax.infra import results

  old = results.load_json(checkpoint)
  if old is None:
    return []
  mine, theirs = config_dict(cfg), old.get("config", {})
  if mine != theirs:
    diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    raise ValueError(
      f"checkpoint={checkpoint} was written with a different config ({', '.join(diff)})"
    )
  return list(old["cells"])


def run(
  cfg: SaddleConfig,
  *,
  checkpoint: str | None = None,
  resume: bool = False,
  devices: Sequence[Any] | None = None,
) -> dict:
  """Runs the experiment and returns its results dict (JSON-able).

  Args:
    cfg: the experiment config (checked here).
    checkpoint: JSON path rewritten atomically after every compiled group
      (cells so far, "complete": False).
    resume: reuse the cells already in `checkpoint` (written with the same
      config; ValueError otherwise).
    devices: devices to spread cells over (default all local devices).

  Returns:
    dict with "config", "delta" (the verdict band), "draws" ("common" or
    "independent"), "cells" (one record per cell), "summary" (per group and
    criterion), "tau_star" (per group and race norm), "tallies" (per
    geometry) and "complete".
  """
  from muon_jax.infra import config as config_lib
  from muon_jax.infra import progress
  from muon_jax.infra import results

  config_lib.check(cfg)
  cells = all_cells(cfg)
  done = {cell_id(r): r for r in resumable_cells(cfg, checkpoint)} if resume and checkpoint else {}
  todo = [c for c in cells if cell_id(c) not in done]
  order = {cell_id(c): i for i, c in enumerate(cells)}
  head = {
    "experiment": "saddle_escape",
    "config": config_dict(cfg),
    "delta": stats.DIMENSION_FREE_DELTA,
    "draws": "independent" if cfg.independent_draws else "common",
  }
  bar = progress.Progress(len(cells), "saddle cells", done=len(cells) - len(todo))

  def on_group(group, seconds):
    done.update({cell_id(r): r for r in group})
    r = group[0]
    bar.advance(
      len(group),
      f"{r['optimizer']} {r['signal']} {r['noise']} n={r['n']}: "
      f"{len(group)} cells in {seconds:.1f} s",
    )
    if checkpoint is not None:
      rows = sorted(done.values(), key=lambda c: order[cell_id(c)])
      results.atomic_write_json(checkpoint, {**head, "complete": False, "cells": rows})

  simulate(cfg, todo, on_group=on_group, devices=devices)
  rows = sorted(done.values(), key=lambda c: order[cell_id(c)])
  summary = summarize(cfg, rows)
  stars = tau_star(cfg, rows)
  return {
    **head,
    "complete": True,
    "cells": rows,
    "summary": summary,
    "tau_star": stars,
    "tallies": tallies(summary, stars),
  }


def resummarize(results: dict) -> dict:
  """`results` with summary, tau* and tallies recomputed from its stored cells."""
  cfg = config_from_results(results)
  summary = summarize(cfg, results["cells"])
  stars = tau_star(cfg, results["cells"])
  return {**results, "summary": summary, "tau_star": stars, "tallies": tallies(summary, stars)}
