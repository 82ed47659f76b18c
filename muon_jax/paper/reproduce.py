"""Every experiment at one scale, and the report rendered from their claims.

`run_all` runs each registered experiment through its library `run(config)`,
writes its figures and full results under `<out_dir>/<name>/`, and collects a
small summary (config, wall time, claims, key numbers; no per-step traces)
into `<out_dir>/summary.json`. `render_report(summary)` turns that JSON into
REPORT.md: one row per paper claim and a provenance block. The report is a
pure function of the summary, so a committed REPORT.md can be checked against
its committed summary.json.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Optional

from absl import logging

from muon_jax.infra import config as config_lib
from muon_jax.paper import landscape as landscape_experiment
from muon_jax.paper import matrix_factorization
from muon_jax.infra import results
from muon_jax.paper import saddle
from muon_jax.paper import theory
from muon_jax.paper.figures import landscape as landscape_figures
from muon_jax.paper.figures import matrix_factorization as mf_figures
from muon_jax.paper.figures import polynomial as polynomial_figures
from muon_jax.paper.figures import saddle as saddle_figures
from muon_jax.infra.progress import Progress

SCALES = ("cpu", "gpu")
SUMMARY_NAME = "summary.json"
REPORT_NAME = "REPORT.md"
CLAIM_KEYS = ("id", "paper", "criterion", "measured", "verdict", "reproduces", "figure")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One experiment as `run_all` drives it.

  Attributes:
    name: folder and summary key.
    paper: the paper's figures / statements it covers.
    config_cls: its config dataclass.
    scales: {scale: field overrides of config_cls's defaults}.
    run: run(config, work_dir, resume) -> results dict.
    claims: claims(results) -> list of claim dicts.
    figures: figures(results) -> {name: matplotlib Figure}.
    summary: summary(results) -> the small JSON kept in summary.json.
    check: check(config) raises ValueError naming the field, before any compute.
    refresh: refresh(results) -> results with the statistics recomputed from
      the stored raw measurements (applied when a resume reuses results).
  """

  name: str
  paper: str
  config_cls: type
  scales: dict
  run: Callable[[Any, str, bool], dict]
  claims: Callable[[dict], list]
  figures: Callable[[dict], dict]
  summary: Callable[[dict], dict]
  check: Callable[[Any], None]
  refresh: Callable[[dict], dict] = lambda res: res


def _saddle_experiment(
  name: str, paper: str, scales: dict, keep: Callable[[str, Any], bool], id_suffix: str = ""
):
  """A saddle-escape experiment whose claim rows are those `keep(id, config)` accepts.

  `id_suffix` keeps the ids of a variant apart from the main experiment's.
  """

  def claims(res):
    cfg = saddle.config_from_results(res)
    return [{**c, "id": c["id"] + id_suffix} for c in saddle.claims(res) if keep(c["id"], cfg)]

  return Experiment(
    name=name,
    paper=paper,
    config_cls=saddle.SaddleConfig,
    scales=scales,
    run=lambda cfg, work_dir, resume: saddle.run(
      cfg, checkpoint=os.path.join(work_dir, "cells.json"), resume=resume
    ),
    claims=claims,
    figures=saddle_figures.figures,
    summary=lambda res: {k: v for k, v in res.items() if k != "cells"},
    check=config_lib.check,
    refresh=saddle.resummarize,
  )


_SADDLE_PAPER_SCALE = {
  "signals": ("aligned", "incoherent"),
  "dims": (32, 64, 128, 256, 512, 1024),
  "curvatures": (0.1, 0.01, 0.001),
  "seeds": 16,
  "steps": 3000,
}
# Fig 5's ablation in the paper's geometry (eq. 7, S = E_11), where the column
# profile loads S's column; Muon at the paper lr.
_NOISE_ABLATION = {
  "optimizers": ("muon",),
  "signals": ("aligned",),
  "muon_lrs": (0.02,),
  "noises": ("standard", "heavy_tail", "student_t"),
}
# AdamW is not rotation-equivariant: its aligned geometry is a different
# experiment (Muon's law is the same in both, so the CPU `saddle` runs it once).
_ADAMW_ALIGNED = {"optimizers": ("adamw",), "signals": ("aligned",)}
# Fig 1a with three times the budget: at 1000 steps about half of Muon's kappa = 1
# runs are censored and the two geometries (one law) disagree in verdict.
_LONG_BUDGET = {
  "optimizers": ("muon",),
  "signals": ("aligned", "incoherent"),
  "kappas": (1.0,),
  "muon_lrs": (0.02,),
  "steps": 3000,
}

EXPERIMENTS = (
  # cpu: the binary's default (one geometry, one lambda: Fig 1d is reported
  # untestable there); gpu: the paper's sweep.
  _saddle_experiment(
    "saddle",
    "Fig 1a-d",
    {"cpu": {}, "gpu": _SADDLE_PAPER_SCALE},
    keep=lambda cid, cfg: not cid.startswith(("fig5", "fig1c/aligned", "thm3/aligned")),
  ),
  _saddle_experiment(
    "saddle_aligned",
    "Fig 1c, Theorem 3 (S = E_11)",
    {"cpu": _ADAMW_ALIGNED, "gpu": {**_SADDLE_PAPER_SCALE, **_ADAMW_ALIGNED}},
    keep=lambda cid, cfg: cid.startswith(("fig1c/aligned", "thm3/aligned")),
  ),
  _saddle_experiment(
    "saddle_budget",
    "Fig 1a (3000-step budget)",
    {"cpu": _LONG_BUDGET, "gpu": _LONG_BUDGET},
    keep=lambda cid, cfg: cid.startswith("fig1a/") and "tau_star" not in cid,
    id_suffix="/steps=3000",
  ),
  # Fig 5's noise ablation: Muon at the paper's lr. Where `saddle` runs no
  # aligned geometry (cpu), its standard-noise group is also Fig 1a/1b in the
  # paper's geometry (no tau* rows: one lr is no sweep).
  _saddle_experiment(
    "saddle_noise",
    "Fig 5a-b (cpu: also Fig 1a-b with S = E_11)",
    {
      "cpu": _NOISE_ABLATION,
      "gpu": {**_SADDLE_PAPER_SCALE, **_NOISE_ABLATION, "signals": ("aligned", "incoherent")},
    },
    keep=lambda cid, cfg: (
      cid.startswith("fig5")
      or (
        cfg.signals == ("aligned",)
        and cid.startswith(("fig1a/aligned", "fig1b/aligned"))
        and "tau_star" not in cid
      )
    ),
  ),
  Experiment(
    name="polynomial",
    paper="Lemma 2, Lemma 3, Sec 10.1, Lemma 9",
    config_cls=theory.PolynomialConfig,
    scales={
      "cpu": {},
      "gpu": {
        "sweep_ns": (64, 128, 256, 512, 1024, 2048),
        "sweep_trials": 8,
        "spike_m": 1024,
        "spike_n": 2048,
        "spike_trials": 5,
      },
    },
    run=lambda cfg, work_dir, resume: theory.run(cfg),
    claims=theory.claims,
    figures=polynomial_figures.figures,
    summary=lambda res: {
      k: v for k, v in res.items() if not k.endswith(".raw") and k not in ("presets", "sec10_1")
    },
    check=theory.check_config,
  ),
  Experiment(
    name="matrix_factorization",
    paper="Fig 2a-d",
    config_cls=matrix_factorization.MatrixFactorizationConfig,
    scales={"cpu": {}, "gpu": {"dims": (64, 128, 256, 512, 1024), "steps": 5000}},
    run=lambda cfg, work_dir, resume: matrix_factorization.run(
      cfg, state_path=os.path.join(work_dir, "units.json"), resume=resume
    ),
    claims=matrix_factorization.claims,
    figures=mf_figures.figures,
    summary=lambda res: {
      "config": res["config"],
      "nonfinite": res["nonfinite"],
      "summary": res["summary"],
    },
    check=matrix_factorization.check_config,
    refresh=matrix_factorization.resummarize,
  ),
  Experiment(
    name="landscape",
    paper="Fig 3, Fig 4",
    config_cls=landscape_experiment.LandscapeConfig,
    scales={
      "cpu": {},
      "gpu": {
        "model": "160m",
        "steps": 10000,
        "probe_steps": (100, 10000),
        "probe_grid": 41,
        "seq_len": 1024,
        "global_batch": 512,
        "probe_path": "layers/9/mlp/down_proj",
        "probe_grad_batches": 50,
        "probe_eval_batches": 10,
        "probe_batch": 16,
      },
    },
    run=lambda cfg, work_dir, resume: landscape_experiment.run(cfg, work_dir, resume=resume),
    claims=landscape_experiment.claims,
    figures=landscape_figures.figures,
    summary=lambda res: {k: v for k, v in res.items() if k != "surfaces"},
    check=landscape_experiment.check_config,
    refresh=landscape_experiment.recompare,
  ),
)


def experiment_config(experiment: Experiment, scale: str):
  """The config of `experiment` at `scale`: its defaults plus the scale's overrides."""
  if scale not in SCALES:
    raise ValueError(f"scale={scale!r} is not allowed; choose from {', '.join(SCALES)}")
  return experiment.config_cls(**experiment.scales.get(scale, {}))


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
  names = [e.name for e in EXPERIMENTS]
  only = tuple(only) if only else tuple(names)
  unknown = sorted(set(only) - set(names))
  if unknown:
    raise ValueError(
      f"only={','.join(unknown)} is not an experiment; choose from {', '.join(names)}"
    )
  configs = {}
  for exp in EXPERIMENTS:
    if exp.name in only:
      cfg = experiment_config(exp, scale)
      try:
        exp.check(cfg)
      except ValueError as e:
        raise ValueError(f"scale={scale}: {exp.name} config: {e}") from None
      configs[exp.name] = cfg
  return configs


def run_all(
  scale: str,
  out_dir: str,
  *,
  argv: list[str],
  resume: bool = False,
  only: Optional[tuple[str, ...]] = None,
) -> dict:
  """Runs every registered experiment at `scale` into out_dir; writes summary.json + REPORT.md.

  Args:
    scale: "cpu" or "gpu".
    out_dir: the report folder; experiment `name` writes under out_dir/name/.
    argv: the command line, recorded in the provenance.
    resume: reuse experiments whose results.json matches the config (their
      claims and figures are re-derived), let the others resume their own
      finished units, and keep the earlier entries of experiments not in
      `only`.
    only: names of the experiments to run (default all).

  Returns:
    The summary dict (also written, with the report, after each experiment).
  """
  configs = check(scale, only)
  chosen = [e for e in EXPERIMENTS if e.name in configs]
  summary_path = os.path.join(out_dir, SUMMARY_NAME)
  previous = results.load_json(summary_path, {}) if resume else {}
  summary = {
    "scale": scale,
    "provenance": results.provenance(argv),
    "experiments": {
      name: exp
      for name, exp in previous.get("experiments", {}).items()
      if name not in configs and previous.get("scale") == scale
    },
  }
  progress = Progress(len(chosen), f"reproduce ({scale})")
  for exp in chosen:
    folder = os.path.join(out_dir, exp.name)
    full_path = os.path.join(folder, "results.json")
    cfg_json = results.to_json(dataclasses.asdict(configs[exp.name]))
    done = previous.get("experiments", {}).get(exp.name)
    reuse = bool(resume and done and done.get("config") == cfg_json and os.path.exists(full_path))
    if reuse:
      # Claims, figures and the summary are re-derived from the stored results,
      # so a changed judgement applies without recomputing the experiment.
      res, wall_s = exp.refresh(results.load_json(full_path)), done["wall_s"]
      computed_at = done.get("computed_at") or {
        k: previous["provenance"][k] for k in ("commit", "dirty", "started_utc")
      }
    else:
      computed_at = {k: summary["provenance"][k] for k in ("commit", "dirty", "started_utc")}
      start = time.monotonic()
      res = exp.run(configs[exp.name], os.path.join(folder, "work"), resume)
      wall_s = time.monotonic() - start
    claims = exp.claims(res)
    check_claims(claims)
    res["claims"] = claims
    results.atomic_write_json(full_path, results.to_json(res))
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
    if reuse:
      entry["resumed"] = True
    summary["experiments"][exp.name] = results.to_json(entry)
    write(summary, out_dir)
    progress.advance(
      1,
      f"{exp.name}{' (reused)' if reuse else ''} in {wall_s:.0f}s: "
      + ", ".join(f"{c['id']} {c['verdict']}" for c in claims),
    )
  summary["experiments"] = {
    e.name: summary["experiments"][e.name] for e in EXPERIMENTS if e.name in summary["experiments"]
  }
  write(summary, out_dir)
  logging.info("wrote %s and %s", summary_path, os.path.join(out_dir, REPORT_NAME))
  return summary


def write(summary: dict, out_dir: str) -> None:
  """Writes summary.json and the REPORT.md rendered from it (atomically)."""
  results.atomic_write_json(os.path.join(out_dir, SUMMARY_NAME), summary)
  results.atomic_write_bytes(os.path.join(out_dir, REPORT_NAME), render_report(summary).encode())


def _cell(value) -> str:
  text = "" if value is None else str(value)
  return " ".join(text.split()).replace("|", "\\|")


def _reproduces(value) -> str:
  return {True: "yes", False: "**no**", None: "n/a"}[value]


def _clock(seconds: float) -> str:
  m, s = divmod(int(round(seconds)), 60)
  return f"{m}m{s:02d}s"


def render_report(summary: dict) -> str:
  """REPORT.md from a summary: claims table, what was not run, provenance."""
  prov = summary["provenance"]
  lines = [
    f"# Reproduction report: scale {summary['scale']}",
    "",
    "Rendered by `muon_jax.paper.reproduce.render_report` from `summary.json` in this folder. "
    "Exponent claims use `metrics.exponent_verdict` (95% CI inside "
    "±DIMENSION_FREE_DELTA = dimension-free); Muon-vs-AdamW claims hold only if the 95% "
    "CI of the difference excludes 0 in the paper's direction.",
    "",
    "## Claims",
    "",
    "| claim | paper says | criterion | measured | verdict | reproduces | figure |",
    "|---|---|---|---|---|---|---|",
  ]
  for name, exp in summary["experiments"].items():
    for c in exp["claims"]:
      figure = f"[{c['figure']}]({name}/{c['figure']})" if c["figure"] else ""
      lines.append(
        "| "
        + " | ".join(
          [
            _cell(c["id"]),
            _cell(c["paper"]),
            _cell(c["criterion"]),
            _cell(c["measured"]),
            _cell(c["verdict"]),
            _reproduces(c["reproduces"]),
            figure,
          ]
        )
        + " |"
      )
  versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
  dev = prov["device"]
  lines += [
    "",
    "## Provenance",
    "",
    f"- commit: `{prov['commit']}`"
    + (" (working tree had uncommitted changes)" if prov["dirty"] else " (clean tree)"),
    f"- versions: {versions}",
    f"- device: {dev['count']} x {dev['kind']} ({dev['platform']}), {prov['cpu_count']} CPU cores",
    f"- command: `{prov['command']}`",
    f"- started: {prov['started_utc']} UTC",
    "",
    "| experiment | covers | wall time | computed at | config |",
    "|---|---|---|---|---|",
  ]
  total = 0.0
  for name, exp in summary["experiments"].items():
    total += exp["wall_s"]
    config = ", ".join(
      f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in exp["config"].items()
    )
    at = exp["computed_at"]
    lines.append(
      f"| {name} | {exp['paper']} | {_clock(exp['wall_s'])}"
      + (" (earlier run, reused)" if exp.get("resumed") else "")
      + f" | `{(at['commit'] or '?')[:10]}`{' (dirty)' if at['dirty'] else ''} "
      f"{at['started_utc']} | {_cell(config)} |"
    )
  lines += [f"| total | | {_clock(total)} | | |", ""]
  return "\n".join(lines)
