"""The saddle-escape experiment: simulate its cells group by group, checkpoint, resume."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from muon_jax import stats
from muon_jax.paper.saddle.engine import Grid, run_grid
from muon_jax.paper.saddle.problem import METRICS, make_optimizer
from muon_jax.paper.saddle.statistics import curvature, pooled, summarize, tallies, tau_star
from muon_jax.paper.saddle.sweep import (
  CELL_KEYS,
  SaddleConfig,
  all_cells,
  cell_id,
  config_dict,
  config_from_results,
  is_traced,
  stream_index,
)

TRACE_POINTS = 200
# The ETA's cost model (`group_cost`): Muon's Newton-Schulz matmuls make its step ~n^3; an
# AdamW / SGD step is elementwise work, noise draws and metrics, ~n^2. Their relative weight
# is measured, not derived: on the 2-core CI CPU, the default grid's n = 128 groups (160 cells
# x 1000 steps) took 188 s (Muon) and 73 s (AdamW) after compiling, so an n^2 unit of AdamW
# costs ~50 n^3 units of Muon there. Only the prediction of one optimizer's groups from
# another's timings depends on it; the groups already run calibrate the rest.
ELEMENTWISE_WEIGHT = 50.0


def group_cost(cfg: SaddleConfig, optimizer: str, n: int, cells: int) -> float:
  """Predicted relative wall time of one compiled group (the ETA's cost model).

  cells x steps x n^3 for Muon, x ELEMENTWISE_WEIGHT n^2 for AdamW and SGD; the step
  budget stands in for the steps run (a group stops early only when all its cells escaped).
  """
  per_step = n**3 if optimizer == "muon" else ELEMENTWISE_WEIGHT * n**2
  return float(cells) * cfg.steps * per_step


def group_cells(todo: Sequence[dict]) -> dict:
  """{(optimizer, signal, noise, n): cells}, in the order `simulate` runs them."""
  groups: dict = {}
  for c in todo:
    groups.setdefault((c["optimizer"], c["signal"], c["noise"], c["n"]), []).append(c)
  return groups


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
  records = []
  for (opt, signal, noise, n), cells in group_cells(todo).items():
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
  """Cells already in `checkpoint` ([] if absent), each checked before it is trusted.

  Every stored cell must lie on cfg's grid (once), carry the record's keys with their
  types, and hold what the engine can write: a hit metric's tau in [1, steps], a missed
  one's tau equal to steps (the censoring value).

  Raises:
    ValueError: the file is not a saddle checkpoint, was written with a different config
      (which fields; a field added later at its default counts as equal), or holds a bad
      cell (one line naming the file and the first bad cell).
  """
  from muon_jax.infra import config as config_lib
  from muon_jax.infra import results

  old = results.load_json(checkpoint)
  if old is None:
    return []
  if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
    raise ValueError(f"checkpoint={checkpoint} is not a saddle_escape results file (no config)")
  diff = config_lib.stored_differences(cfg, old["config"])
  if diff:
    raise ValueError(
      f"checkpoint={checkpoint} was written with a different config ({', '.join(diff)})"
    )
  cells = old.get("cells")
  if not isinstance(cells, list):
    raise ValueError(f"checkpoint={checkpoint} holds no list of cells")
  grid = {cell_id(c) for c in all_cells(cfg)}
  seen = set()
  for i, cell in enumerate(cells):
    problem = _cell_problem(cfg, cell, grid, seen)
    if problem:
      where = cell_id(cell) if isinstance(cell, dict) and set(CELL_KEYS) <= set(cell) else ""
      raise ValueError(
        f"checkpoint={checkpoint}: cell {i} ({where or 'unnamed'}) {problem}; "
        "the stored results are not what this code writes"
      )
  return list(cells)


_CELL_TYPES = {
  "optimizer": str,
  "signal": str,
  "noise": str,
  "n": int,
  "lam": (int, float),
  "kappa": (int, float),
  "lr": (int, float),
  "seed": int,
  "D": int,
}


def _cell_problem(cfg: SaddleConfig, cell, grid: set, seen: set) -> str | None:
  """What is wrong with one stored cell (None if nothing); adds its id to `seen`."""
  if not isinstance(cell, dict):
    return f"is a {type(cell).__name__}, not a record"
  keys = [*_CELL_TYPES, *(f"{p}_{m}" for m in METRICS for p in ("tau", "hit"))]
  missing = [k for k in keys if k not in cell]
  if missing:
    return f"lacks {', '.join(missing)}"
  extra = sorted(set(cell) - set(keys) - {"trajectory"})
  if extra:
    return f"has unknown keys {', '.join(extra)}"
  for key, typ in _CELL_TYPES.items():
    value = cell[key]
    # JSON keeps int and float apart; bool is an int to Python but not a count here.
    if isinstance(value, bool) or not isinstance(value, typ):
      return f"has {key}={value!r} of type {type(value).__name__}"
  cid = cell_id(cell)
  if cid not in grid:
    return "is not on this config's grid"
  if cid in seen:
    return "is stored twice"
  seen.add(cid)
  if cell["D"] != cell["n"] ** 2:
    return f"has D={cell['D']}, not n^2 = {cell['n'] ** 2}"
  for m in METRICS:
    tau, hit = cell[f"tau_{m}"], cell[f"hit_{m}"]
    if not isinstance(hit, bool) or isinstance(tau, bool) or not isinstance(tau, int):
      return f"has tau_{m}={tau!r}, hit_{m}={hit!r}: not an int step and a bool"
    if hit and not 1 <= tau <= cfg.steps:
      return f"has hit_{m}=true with tau_{m}={tau} outside [1, steps={cfg.steps}]"
    if not hit and tau != cfg.steps:
      return f"has hit_{m}=false with tau_{m}={tau}, not the censoring value steps={cfg.steps}"
  if ("trajectory" in cell) != is_traced(cfg, cell):
    return "has a trajectory it should not" if "trajectory" in cell else "lacks its trajectory"
  if "trajectory" in cell and not isinstance(cell["trajectory"], dict):
    return "has a trajectory that is not a record"
  return None


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
    criterion), "tau_star" (per group and race norm), "pooled" (Muon over
    both geometries), "curvature" (tau vs lam), "tallies" (per geometry) and
    "complete".
  """
  from muon_jax.infra import config as config_lib
  from muon_jax.infra import interrupt, progress
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
  bar = progress.Progress(
    len(cells),
    "saddle cells",
    done=len(cells) - len(todo),
    costs=[group_cost(cfg, k[0], k[3], len(g)) for k, g in group_cells(todo).items()],
  )

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
      if len(done) < len(cells):  # a safe point (every finished group is on disk) with work left
        interrupt.check()

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
    "pooled": pooled(cfg, rows),
    "curvature": curvature(cfg, rows),
    "tallies": tallies(summary, stars),
  }


def resummarize(results: dict) -> dict:
  """`results` with summary, tau*, pooled, curvature and tallies recomputed from its cells."""
  cfg = config_from_results(results)
  summary = summarize(cfg, results["cells"])
  stars = tau_star(cfg, results["cells"])
  return {
    **results,
    "summary": summary,
    "tau_star": stars,
    "pooled": pooled(cfg, results["cells"]),
    "curvature": curvature(cfg, results["cells"]),
    "tallies": tallies(summary, stars),
  }
