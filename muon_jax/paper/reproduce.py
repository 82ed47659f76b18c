"""Every experiment of one scale, and the report rendered from their claims.

`run_all` runs each experiment of the scale (`registry.EXPERIMENTS`) through its library
`run(config)`, writes its figures and full results under `<out_dir>/<name>/`, and collects a
small summary (config, wall time, claims, key numbers, provenance; no per-step traces) into
`<out_dir>/summary.json`. `report.render_report(summary)` turns that JSON into REPORT.md.

The GPU scale is a list of slices that grows a report over many short jobs: each slice keeps
its work under `<out_dir>/<slice>/work/` with the provenance of every run that computed part
of it, `--resume` continues it on any machine, and the report lists what is still pending.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

from absl import logging

from muon_jax.infra import config as config_lib
from muon_jax.infra import interrupt, lock, results
from muon_jax.infra.progress import Progress
from muon_jax.paper.registry import SCALES, EXPERIMENTS, Experiment, experiment_config
from muon_jax.paper.report import CLAIM_KEYS, REPORT_NAME, render_report

__all__ = [
  "CLAIM_KEYS",
  "EXPERIMENTS",
  "Experiment",
  "REPORT_NAME",
  "SCALES",
  "SUMMARY_NAME",
  "check",
  "check_claims",
  "experiment_config",
  "experiments_at",
  "render_report",
  "run_all",
  "slice_states",
  "write",
]

SUMMARY_NAME = "summary.json"
# An experiment's summary entry, beside its results.json.
ENTRY_NAME = "entry.json"
# Per-slice record of the runs that computed its work (device, versions, commit, command).
PROVENANCE_NAME = "provenance.json"


def experiments_at(scale: str) -> tuple[Experiment, ...]:
  """The experiments (CPU) or slices (GPU) of `scale`, in run order."""
  if scale not in SCALES:
    raise ValueError(f"scale={scale!r} is not allowed; choose from {', '.join(SCALES)}")
  return tuple(e for e in EXPERIMENTS if scale in e.scales)


def check_claims(claims: list[dict]) -> None:
  """Raises ValueError unless every claim dict has exactly the report's keys."""
  for claim in claims:
    if set(claim) != set(CLAIM_KEYS):
      raise ValueError(
        f"claims: {claim.get('id')!r} has keys {sorted(claim)}, need {list(CLAIM_KEYS)}"
      )


def check(scale: str, only: Optional[tuple[str, ...]] = None) -> dict:
  """Builds and checks the config of every chosen experiment; no compute.

  Returns:
    {name: config} in registry order.

  Raises:
    ValueError: naming `scale`, `only` or the experiment and its field.
  """
  chosen = experiments_at(scale)
  names = [e.name for e in chosen]
  only = tuple(only) if only else tuple(names)
  unknown = [name for name in only if name not in names]
  if unknown:
    raise ValueError(
      f"only={','.join(unknown)} is not an experiment of scale {scale}; "
      f"choose from {', '.join(names)}"
    )
  configs = {}
  for exp in chosen:
    if exp.name in only:
      cfg = experiment_config(exp, scale)
      try:
        exp.check(cfg)
      except ValueError as e:
        raise ValueError(f"scale={scale}: {exp.name} config: {e}") from None
      configs[exp.name] = cfg
  return configs


def _stored_entry(previous: dict, exp: Experiment, cfg, folder: str) -> Optional[dict]:
  """The stored summary entry of `exp` if its results can be reused as they are.

  Each experiment keeps its entry in its own folder (ENTRY_NAME), so that jobs running
  different slices into one shared out_dir never overwrite each other's; an entry only in
  `previous` (summary.json) is read too.
  """
  done = results.load_json(os.path.join(folder, ENTRY_NAME)) or previous.get("experiments", {}).get(
    exp.name
  )
  if (
    done
    and not config_lib.stored_differences(cfg, done.get("config", {}))
    and os.path.exists(_results_path(folder))
  ):
    return done
  return None


def _results_path(folder: str) -> str:
  return os.path.join(folder, "results.json")


def slice_states(scale: str, out_dir: str) -> list[dict]:
  """State of every experiment of `scale` in out_dir: done, partial (k of K cells) or pending.

  Returns:
    One dict per experiment: name, paper, minutes (estimate on the scale's backend),
    state ("done" | "stored": every cell stored, not yet judged | "partial" | "pending"),
    stored and total cells where counted.
  """
  summary = results.load_json(os.path.join(out_dir, SUMMARY_NAME), {})
  if summary.get("scale") not in (None, scale):
    summary = {}
  rows = []
  for exp in experiments_at(scale):
    cfg = experiment_config(exp, scale)
    folder = os.path.join(out_dir, exp.name)
    row = {"name": exp.name, "paper": exp.paper, "minutes": exp.minutes.get(scale)}
    if _stored_entry(summary, exp, cfg, folder):
      row["state"] = "done"
    elif exp.cells is not None:
      stored, total = exp.cells(cfg, os.path.join(folder, "work"))
      state = "stored" if stored == total else "partial" if stored else "pending"
      row.update(stored=stored, total=total, state=state)
    else:
      row["state"] = "pending"
    rows.append(row)
  return rows


def _computable_without_accelerator(exp: Experiment, cfg, folder: str, states: dict) -> bool:
  """True when finishing `exp` needs no new simulation: all its cells (or members) are stored."""
  if exp.members:
    return all(states.get(m) == "done" for m in exp.members)
  if exp.cells is None:
    return False
  stored, total = exp.cells(cfg, os.path.join(folder, "work"))
  return stored == total


def _record_run(folder: str, prov: dict, exp: Experiment, cfg, wall_s: float) -> list[dict]:
  """Appends this run to the slice's provenance (what it computed) and returns the list."""
  path = os.path.join(folder, "work", PROVENANCE_NAME)
  runs = results.load_json(path, [])
  entry = {k: prov[k] for k in ("commit", "dirty", "versions", "device", "command", "started_utc")}
  entry["wall_s"] = round(wall_s, 1)
  if exp.cells is not None:
    entry["cells_after"] = exp.cells(cfg, os.path.join(folder, "work"))[0]
    if runs and runs[-1].get("cells_after") == entry["cells_after"]:
      return runs  # this run computed no cell: the statistics alone are not a computation
  runs = [*runs, entry]
  results.atomic_write_json(path, runs)
  return runs


def run_all(
  scale: str,
  out_dir: str,
  *,
  argv: list[str],
  resume: bool = False,
  only: Optional[tuple[str, ...]] = None,
  compute: bool = True,
  max_minutes: Optional[float] = None,
) -> dict:
  """Runs every experiment of `scale` into out_dir; writes summary.json + REPORT.md.

  Args:
    scale: "cpu" or "gpu".
    out_dir: the report folder; experiment `name` writes under out_dir/name/.
    argv: the command line, recorded in the provenance.
    resume: reuse experiments whose results.json matches the config (their claims and
      figures are re-derived), let the others resume their own finished units, and keep
      the earlier entries of experiments not in `only`.
    only: names of the experiments to run (default all).
    compute: False runs no new simulation: only experiments whose work is all stored are
      finished (statistics, claims, figures); the others stay pending (a GPU report
      re-rendered on a machine without an accelerator).
    max_minutes: start no experiment whose estimate does not fit in what is left of this
      budget (None: no budget). What is not started stays pending for a later `--resume`.

  Returns:
    The summary dict (also written, with the report, after each experiment).
  """
  configs = check(scale, only)
  started = time.monotonic()
  summary_path = os.path.join(out_dir, SUMMARY_NAME)
  previous = results.load_json(summary_path, {}) if resume else {}
  if previous.get("scale") != scale:
    previous = {}
  summary = {
    "scale": scale,
    "provenance": results.provenance(argv),
    "experiments": {
      name: exp for name, exp in previous.get("experiments", {}).items() if name not in configs
    },
  }
  chosen = [e for e in experiments_at(scale) if e.name in configs]
  progress = Progress(
    len(chosen), f"reproduce ({scale})", costs=[e.minutes.get(scale, 1.0) for e in chosen]
  )
  for exp in chosen:
    interrupt.check()  # a safe point between experiments: summary and report are written
    cfg = configs[exp.name]
    folder = os.path.join(out_dir, exp.name)
    states = {r["name"]: r["state"] for r in slice_states(scale, out_dir)}
    stored = _stored_entry(previous, exp, cfg, folder)
    if not stored:
      why = _why_not_now(exp, cfg, folder, states, compute, max_minutes, started, scale)
      if why:
        progress.advance(1, f"{exp.name}: left pending ({why})")
        continue
    # One job per experiment folder; jobs on other slices of the same out_dir go on.
    with lock.hold(folder):
      entry = _run_one(exp, cfg, folder, scale, summary["provenance"], stored, resume)
      results.atomic_write_json(os.path.join(folder, ENTRY_NAME), entry)
    summary["experiments"][exp.name] = entry
    _write_in_order(summary, scale, out_dir, resume)
    progress.advance(
      1,
      f"{exp.name}{' (reused)' if entry.get('resumed') else ''} in {entry['wall_s']:.0f}s: "
      + ", ".join(f"{c['id']} {c['verdict']}" for c in entry["claims"]),
    )
  _write_in_order(summary, scale, out_dir, resume)
  logging.info("wrote %s and %s", summary_path, os.path.join(out_dir, REPORT_NAME))
  return summary


def _why_not_now(exp, cfg, folder, states, compute, max_minutes, started, scale) -> str:
  """Why `exp` is not run in this call ("" when it is)."""
  if exp.members and not all(states.get(m) == "done" for m in exp.members):
    return "joins " + ", ".join(m for m in exp.members if states.get(m) != "done")
  if not compute and not _computable_without_accelerator(exp, cfg, folder, states):
    return "needs an accelerator"
  if max_minutes is not None:
    left = max_minutes - (time.monotonic() - started) / 60
    if exp.minutes.get(scale, 0.0) > left:
      return f"estimate {exp.minutes.get(scale)} min > {max(left, 0):.1f} min left"
  return ""


def _run_one(exp, cfg, folder, scale, prov, stored, resume) -> dict:
  """Runs (or re-judges stored results of) one experiment; returns its summary entry."""
  cfg_json = results.to_json(dataclasses.asdict(cfg))
  if stored:
    # Claims, figures and the summary are re-derived from the stored results,
    # so a changed judgement applies without recomputing the experiment.
    res, wall_s, computed_at = (
      exp.refresh(results.load_json(_results_path(folder))),
      stored["wall_s"],
      stored["computed_at"],
    )
  else:
    computed_at = {k: prov[k] for k in ("commit", "dirty", "started_utc")}
    start = time.monotonic()
    res = exp.run(cfg, os.path.join(folder, "work"), resume)
    wall_s = time.monotonic() - start
  claims = exp.claims(res)
  check_claims(claims)
  res["claims"] = claims
  results.atomic_write_json(_results_path(folder), results.to_json(res))
  figure_names = []
  for name, fig in exp.figures(res).items():
    results.save_figure(fig, os.path.join(folder, f"{name}.png"))
    figure_names.append(f"{name}.png")
  entry = {
    "paper": exp.paper,
    "config": cfg_json,
    "wall_s": round(wall_s, 1),
    "computed_at": computed_at,
    "figures": figure_names,
    "claims": claims,
    "summary": exp.summary(res),
  }
  if scale == "gpu":
    entry["computed_by"] = (
      stored.get("computed_by") if stored else _record_run(folder, prov, exp, cfg, wall_s)
    )
  if stored:
    entry["resumed"] = True
  return results.to_json(entry)


def _write_in_order(summary: dict, scale: str, out_dir: str, resume: bool) -> None:
  """Writes the summary in registry order, with (on resume) what other jobs stored meanwhile."""
  entries = {}
  for exp in experiments_at(scale):
    folder = os.path.join(out_dir, exp.name)
    if exp.name in summary["experiments"]:
      entries[exp.name] = summary["experiments"][exp.name]
    elif resume:
      stored = _stored_entry({}, exp, experiment_config(exp, scale), folder)
      if stored:
        entries[exp.name] = stored
  summary["experiments"] = entries
  summary["pending"] = [
    r for r in slice_states(scale, out_dir) if r["name"] not in summary["experiments"]
  ]
  write(summary, out_dir)


def write(summary: dict, out_dir: str) -> None:
  """Writes summary.json and the REPORT.md rendered from it (atomically)."""
  results.atomic_write_json(os.path.join(out_dir, SUMMARY_NAME), summary)
  results.atomic_write_bytes(os.path.join(out_dir, REPORT_NAME), render_report(summary).encode())
