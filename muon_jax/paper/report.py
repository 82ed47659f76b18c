"""REPORT.md as a pure function of summary.json: claims, what is pending, provenance.

A committed REPORT.md can be checked against its committed summary.json by rendering it again.
"""

from __future__ import annotations

REPORT_NAME = "REPORT.md"
CLAIM_KEYS = ("id", "paper", "criterion", "measured", "verdict", "reproduces", "figure")

_SHARED_DRAWS = (
  "Random draws: every saddle experiment draws from `jax.random` keys derived from its root "
  "`seed` (0 unless a slice says otherwise) with common random numbers, so cells with the same "
  "(signal, noise, n, seed index) share their draws across experiments and optimizers. In "
  "particular the GPU slices with root seed 0 share every draw with the CPU report where their "
  "cells overlap (n <= 128, the first 32 seeds); `gpu_muon_large_n_seed1` repeats "
  "`gpu_muon_large_n` on root seed 1 and shares nothing with either."
)


def _cell(value) -> str:
  text = "" if value is None else str(value)
  return " ".join(text.split()).replace("|", "\\|")


def _reproduces(value) -> str:
  if isinstance(value, str):
    return value
  return {True: "yes", False: "**no**", None: "n/a"}[value]


def _clock(seconds: float) -> str:
  m, s = divmod(int(round(seconds)), 60)
  return f"{m}m{s:02d}s"


def _claim_rows(summary: dict) -> list[str]:
  lines = [
    "| claim | experiment | paper says | criterion | measured | verdict | reproduces | figure |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for name, exp in summary["experiments"].items():
    for c in exp["claims"]:
      figure = f"[{c['figure']}]({name}/{c['figure']})" if c["figure"] else ""
      cells = [c["id"], name, c["paper"], c["criterion"], c["measured"], c["verdict"]]
      lines.append(
        "| " + " | ".join([*map(_cell, cells), _reproduces(c["reproduces"]), figure]) + " |"
      )
  return lines


def _pending_rows(summary: dict) -> list[str]:
  pending = summary.get("pending") or []
  if not pending:
    return []
  scale = summary["scale"]
  lines = [
    "",
    "## Pending",
    "",
    "Not in the claims above; each runs with the command shown (from the repository root, "
    "on any machine; `--resume` keeps every stored cell).",
    "",
    "| experiment | covers | state | estimate | command |",
    "|---|---|---|---|---|",
  ]
  for row in pending:
    state = row["state"]
    if state == "partial":
      state = f"partial: {row['stored']} of {row['total']} cells"
    elif state == "stored":
      state = f"all {row['total']} cells stored, not yet judged"
    estimate = f"{row['minutes']} min ({scale})" if row.get("minutes") is not None else ""
    command = (
      f"`python -m experiments.reproduce --scale={scale} --out_dir=OUT --resume "
      f"--only={row['name']}`"
    )
    lines.append(f"| {row['name']} | {_cell(row['paper'])} | {state} | {estimate} | {command} |")
  return lines


def _device_text(device: dict) -> str:
  return f"{device['count']} x {device['kind']} ({device['platform']})"


def _computed_by_rows(summary: dict) -> list[str]:
  rows = [
    (name, run)
    for name, exp in summary["experiments"].items()
    for run in exp.get("computed_by") or []
  ]
  if not rows:
    return []
  lines = [
    "",
    "Who computed each experiment's cells (several rows: a resumed experiment):",
    "",
    "| experiment | device | versions | commit | command | started (UTC) | wall | cells after |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for name, run in rows:
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items() if v)
    commit = f"`{(run['commit'] or '?')[:10]}`{' (dirty)' if run['dirty'] else ''}"
    lines.append(
      f"| {name} | {_device_text(run['device'])} | {_cell(versions)} | {commit} | "
      f"`{_cell(run['command'])}` | {run['started_utc']} | {_clock(run.get('wall_s') or 0.0)} | "
      f"{run.get('cells_after', '')} |"
    )
  return lines


def _provenance_rows(summary: dict) -> list[str]:
  prov = summary["provenance"]
  versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
  lines = [
    "",
    "## Provenance",
    "",
    f"- rendered at commit: `{prov['commit']}`"
    + (" (working tree had uncommitted changes)" if prov["dirty"] else " (clean tree)"),
    f"- versions: {versions}",
    f"- device: {_device_text(prov['device'])}, {prov['cpu_count']} CPU cores",
    f"- command: `{prov['command']}`",
    f"- started: {prov['started_utc']} UTC",
    "",
    "| experiment | covers | wall time | statistics computed at | config |",
    "|---|---|---|---|---|",
  ]
  total = 0.0
  for name, exp in summary["experiments"].items():
    # Work computed by other runs (a GPU slice) counts their wall time, not the re-judging.
    wall = sum(run.get("wall_s") or 0.0 for run in exp.get("computed_by") or []) or exp["wall_s"]
    total += wall
    config = ", ".join(
      f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in exp["config"].items()
    )
    at = exp["computed_at"]
    lines.append(
      f"| {name} | {exp['paper']} | {_clock(wall)}"
      + (" (earlier run, reused)" if exp.get("resumed") else "")
      + f" | `{(at['commit'] or '?')[:10]}`{' (dirty)' if at['dirty'] else ''} "
      f"{at['started_utc']} | {_cell(config)} |"
    )
  lines += [f"| total | | {_clock(total)} | | |"]
  return lines + _computed_by_rows(summary)


def render_report(summary: dict) -> str:
  """REPORT.md from a summary: claims table, pending experiments, provenance."""
  lines = [
    f"# Reproduction report: scale {summary['scale']}",
    "",
    "Rendered by `muon_jax.paper.report.render_report` from `summary.json` in this folder. "
    "Exponent claims use `stats.exponent_verdict` (95% CI inside "
    "±DIMENSION_FREE_DELTA = dimension-free); Muon-vs-AdamW claims hold only if the 95% "
    "CI of the difference excludes 0 in the paper's direction.",
    "",
    _SHARED_DRAWS,
    "",
    "## Claims",
    "",
    *_claim_rows(summary),
    *_pending_rows(summary),
    *_provenance_rows(summary),
    "",
  ]
  return "\n".join(lines)
