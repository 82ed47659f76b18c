"""What `reproduce` runs: the experiments of the CPU report and the slices of the GPU report.

A scale is an ordered tuple of `Experiment`s, each an ordinary experiment config plus how to
run, judge and draw it. The CPU scale is one experiment per paper figure at the binaries'
small defaults. The GPU scale is a list of named slices, each sized to at most ~8 minutes on
one H100/H200, so that a GPU job of any length runs whole slices and a report grows slice by
slice on any machine (`reproduce --scale=gpu --only=NAME`, `--max_minutes`, `--resume`).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any, Callable, Optional

from muon_jax.infra import config as config_lib
from muon_jax.infra import results
from muon_jax.paper import landscape as landscape_experiment
from muon_jax.paper import matrix_factorization, saddle, theory
from muon_jax.paper.figures import landscape as landscape_figures
from muon_jax.paper.figures import matrix_factorization as mf_figures
from muon_jax.paper.figures import polynomial as polynomial_figures
from muon_jax.paper.figures import saddle as saddle_figures

SCALES = ("cpu", "gpu")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One experiment (CPU scale) or slice (GPU scale) as `reproduce.run_all` drives it.

  Attributes:
    name: folder and summary key.
    paper: the paper's figures / statements it covers.
    config_cls: its config dataclass.
    scales: {scale: field overrides of config_cls's defaults}; the scales it belongs to.
    run: run(config, work_dir, resume) -> results dict.
    claims: claims(results) -> list of claim dicts.
    figures: figures(results) -> {name: matplotlib Figure}.
    summary: summary(results) -> the small JSON kept in summary.json.
    check: check(config) raises ValueError naming the field, before any compute.
    refresh: refresh(results) -> results with the statistics recomputed from
      the stored raw measurements (applied when a resume reuses results).
    minutes: estimated wall minutes per backend ("cpu": this project's 2-core CI machine,
      "gpu": one H100/H200), from measured runs.
    cells: cells(config, work_dir) -> (stored, total) units of work, for `--list`'s
      "partial k of K" (None: the experiment does not count units).
    members: names of the slices whose results this one joins (it runs nothing itself and
      is pending until they are all done).
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
  minutes: dict = dataclasses.field(default_factory=dict)
  cells: Optional[Callable[[Any, str], tuple[int, int]]] = None
  members: tuple[str, ...] = ()


SADDLE_CHECKPOINT = "cells.json"


def saddle_cells(cfg, work_dir: str) -> tuple[int, int]:
  """(cells stored in the slice's checkpoint, cells of its grid)."""
  stored = results.load_json(os.path.join(work_dir, SADDLE_CHECKPOINT), {})
  return len(stored.get("cells", [])), len(saddle.all_cells(cfg))


def _covered(cid: str, cfg) -> bool:
  """False for a claim's placeholder row ("fig5a": untestable, not run): a slice covers others."""
  return "/" in cid


def _saddle_experiment(
  name: str,
  paper: str,
  scales: dict,
  keep: Callable[[str, Any], bool] = _covered,
  id_suffix: str = "",
  minutes: Optional[dict] = None,
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
      cfg, checkpoint=os.path.join(work_dir, SADDLE_CHECKPOINT), resume=resume
    ),
    claims=claims,
    figures=saddle_figures.figures,
    summary=lambda res: {k: v for k, v in res.items() if k != "cells"},
    check=config_lib.check,
    refresh=saddle.resummarize,
    minutes=minutes or {},
    cells=saddle_cells,
  )


def _adamw_aligned(cid: str) -> bool:
  """AdamW's rows in the paper's geometry S = E_11 (ids "fig1c/kappa=1/aligned/...")."""
  return cid.startswith(("fig1c/", "thm3/")) and "/aligned/" in cid


# ---------------------------------------------------------------------------------------------
# CPU scale: the binaries' small defaults, minutes measured on the 2-core CI machine.

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
# runs are censored.
_LONG_BUDGET = {
  "optimizers": ("muon",),
  "signals": ("aligned", "incoherent"),
  "kappas": (1.0,),
  "muon_lrs": (0.02,),
  "steps": 3000,
}

CPU_EXPERIMENTS = (
  _saddle_experiment(
    "saddle",
    "Fig 1a-d",
    {"cpu": {}},
    keep=lambda cid, cfg: not cid.startswith("fig5") and not _adamw_aligned(cid),
    minutes={"cpu": 4.9},
  ),
  _saddle_experiment(
    "saddle_aligned",
    "Fig 1c, Theorem 3 (S = E_11)",
    {"cpu": _ADAMW_ALIGNED},
    keep=lambda cid, cfg: _adamw_aligned(cid),
    minutes={"cpu": 1.3},
  ),
  _saddle_experiment(
    "saddle_budget",
    "Fig 1a (3000-step budget)",
    {"cpu": _LONG_BUDGET},
    keep=lambda cid, cfg: cid.startswith("fig1a/") and "tau_star" not in cid,
    id_suffix="/steps=3000",
    minutes={"cpu": 3.6},
  ),
  # Fig 5's noise ablation: Muon at the paper's lr. Its standard-noise group is
  # also Fig 1a in the paper's geometry (no tau* rows: one lr is no sweep).
  _saddle_experiment(
    "saddle_noise",
    "Fig 5a-b (also Fig 1a with S = E_11)",
    {"cpu": _NOISE_ABLATION},
    keep=lambda cid, cfg: (
      cid.startswith("fig5")
      or (cfg.signals == ("aligned",) and cid.startswith("fig1a/") and "tau_star" not in cid)
    ),
    minutes={"cpu": 5.5},
  ),
  # Fig 5 under both readings of the power-law profile and the paper's isotropic modality,
  # in both geometries (the spiked column loads S's column only with S = E_11).
  _saddle_experiment(
    "saddle_noise_readings",
    "Fig 5a-b: readings of the heavy-tail profile, isotropic noise, both geometries",
    {
      "cpu": {
        **_NOISE_ABLATION,
        "signals": ("aligned", "incoherent"),
        "kappas": (1.0,),
        "noises": ("standard", "isotropic", "heavy_tail", "heavy_tail_unspiked"),
      }
    },
    keep=lambda cid, cfg: cid.startswith("fig5"),
    minutes={"cpu": 6.0},
  ),
  Experiment(
    name="polynomial",
    paper="Lemma 2, Lemma 3, Sec 10.1, Lemma 9",
    config_cls=theory.PolynomialConfig,
    scales={"cpu": {}},
    run=lambda cfg, work_dir, resume: theory.run(cfg),
    claims=theory.claims,
    figures=polynomial_figures.figures,
    summary=lambda res: {
      k: v for k, v in res.items() if not k.endswith(".raw") and k not in ("presets", "sec10_1")
    },
    check=theory.check_config,
    minutes={"cpu": 0.2},
  ),
  Experiment(
    name="matrix_factorization",
    paper="Fig 2a-d",
    config_cls=matrix_factorization.MatrixFactorizationConfig,
    scales={"cpu": {}},
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
    minutes={"cpu": 1.0},
  ),
  Experiment(
    name="landscape",
    paper="Fig 3, Fig 4",
    config_cls=landscape_experiment.LandscapeConfig,
    scales={"cpu": {}},
    run=lambda cfg, work_dir, resume: landscape_experiment.run(cfg, work_dir, resume=resume),
    claims=landscape_experiment.claims,
    figures=landscape_figures.figures,
    summary=lambda res: {k: v for k, v in res.items() if k != "surfaces"},
    check=landscape_experiment.check_config,
    refresh=landscape_experiment.recompare,
    minutes={"cpu": 2.1},
  ),
)

# ---------------------------------------------------------------------------------------------
# GPU scale: slices of at most ~8 minutes on one H100/H200, in the order a GPU job should run
# them. The first four equal, field for field, the commands of the H200 runs of 2026-12-04
# (shared/gpu-runs/h200-2026-12-04/README.md), so their stored cells are reused; the
# estimates of the others scale those timings (Muon ~ cells x steps x n^3 where NS
# dominates, AdamW ~ cells x steps x n^2).

_PAPER_LRS = {"muon_lrs": (0.02,), "adamw_lrs": (0.001,)}
_MUON_LARGE_N = {
  "optimizers": ("muon",),
  "signals": ("aligned",),
  "muon_lrs": (0.02,),
  "kappas": (1.0, 100.0),
  "curvatures": (0.1,),
  "dims": (16, 32, 64, 128, 256, 512, 1024),
  "seeds": 64,
  "paper_lr_seeds": 64,
  "steps": 3000,
}
_NOISE_LARGE_N = {
  "optimizers": ("muon",),
  "signals": ("aligned",),
  "muon_lrs": (0.02,),
  "kappas": (1.0, 100.0),
  "curvatures": (0.1,),
  "dims": (16, 32, 64, 128, 256, 512),
  "seeds": 32,
  "paper_lr_seeds": 32,
  "steps": 3000,
  "noises": ("standard", "heavy_tail", "student_t"),
}
_LANDSCAPE_160M = {
  "model": "160m",
  "steps": 1000,
  "global_batch": 64,
  "seq_len": 1024,
  "probe_steps": (100, 1000),
  # 21 x 21 (the paper's 41 x 41 would quadruple the probe's forward passes past the slice size).
  "probe_grid": 21,
  "probe_path": "layers/9/mlp/down_proj",
  "probe_grad_batches": 50,
  "probe_eval_batches": 10,
  "probe_batch": 16,
  "seeds": 1,
}
LANDSCAPE_SEEDS = (0, 1, 2)


def landscape_run(name: str, overrides: dict) -> Experiment:
  """One training run with probes (one optimizer, one seed): a member of a `landscape_join`."""
  return Experiment(
    name=name,
    paper="Fig 3, Fig 4 (one run)",
    config_cls=landscape_experiment.LandscapeConfig,
    scales={"gpu": overrides},
    run=lambda cfg, work_dir, resume: landscape_experiment.run(cfg, work_dir, resume=resume),
    # One optimizer is no comparison: the paired claims live in gpu_landscape_160m.
    claims=lambda res: [],
    figures=lambda res: {},
    summary=lambda res: {k: v for k, v in res.items() if k != "surfaces"},
    check=landscape_experiment.check_config,
    minutes={"gpu": 4.5},
  )


def landscape_join(name: str, paper: str, overrides: dict, members: tuple[str, ...]) -> Experiment:
  """The paired Fig 3/4 comparison over the runs of the landscape slices `members`.

  It trains nothing: its run collects the members' runs (`<out_dir>/<member>/work/<opt>/seed<k>`,
  siblings of its own folder), and it stays pending until every member is done.
  """

  def run(cfg, work_dir: str, resume: bool) -> dict:
    out_dir = os.path.dirname(os.path.dirname(os.path.abspath(work_dir)))
    run_dirs = [
      d for m in members for d in sorted(glob.glob(os.path.join(out_dir, m, "work", "*", "seed*")))
    ]
    res = landscape_experiment.collect(run_dirs)
    res["config"] = results.to_json(dataclasses.asdict(cfg))
    return res

  return Experiment(
    name=name,
    paper=paper,
    config_cls=landscape_experiment.LandscapeConfig,
    scales={"gpu": overrides},
    run=run,
    claims=landscape_experiment.claims,
    figures=landscape_figures.figures,
    summary=lambda res: {k: v for k, v in res.items() if k != "surfaces"},
    check=landscape_experiment.check_config,
    refresh=landscape_experiment.recompare,
    minutes={"gpu": 0.5},
    members=members,
  )


GPU_SLICES = (
  _saddle_experiment(
    "gpu_muon_large_n",
    "Fig 1a (Muon, kappa 1 and 100, n to 1024, S = E_11)",
    {"gpu": _MUON_LARGE_N},
    minutes={"gpu": 2.6},
  ),
  _saddle_experiment(
    "gpu_adamw_thm3",
    "Theorem 3, Fig 1c (AdamW lr sweep, kappa 100, incoherent)",
    {
      "gpu": {
        "optimizers": ("adamw",),
        "signals": ("incoherent",),
        "kappas": (100.0,),
        "curvatures": (0.1,),
        "dims": (16, 32, 64, 128, 256, 512),
        "seeds": 16,
        "paper_lr_seeds": 16,
        "steps": 3000,
      }
    },
    minutes={"gpu": 1.0},
  ),
  _saddle_experiment(
    "gpu_noise_large_n",
    "Fig 5a-b (column-profile reading, S = E_11)",
    {"gpu": _NOISE_LARGE_N},
    minutes={"gpu": 3.5},
  ),
  _saddle_experiment(
    "gpu_fig1bcd",
    "Fig 1b (Muon curvature scaling), Fig 1c, Fig 1d (three lambda)",
    {
      "gpu": {
        **_PAPER_LRS,
        "optimizers": ("muon", "adamw"),
        "signals": ("incoherent",),
        "kappas": (1.0,),
        "curvatures": (0.1, 0.01, 0.001),
        "dims": (32, 64, 128, 256, 512),
        "seeds": 16,
        "paper_lr_seeds": 16,
        "steps": 3000,
      }
    },
    minutes={"gpu": 1.3},
  ),
  # The same Muon runs on another root seed: no draw shared with the CPU report.
  _saddle_experiment(
    "gpu_muon_large_n_seed1",
    "Fig 1a replication (root seed 1)",
    {"gpu": {**_MUON_LARGE_N, "seed": 1}},
    minutes={"gpu": 2.6},
  ),
  _saddle_experiment(
    "gpu_noise_readings",
    "Fig 5a-b under both readings of the power law, both geometries, and isotropic noise",
    {
      "gpu": {
        **_NOISE_LARGE_N,
        "signals": ("aligned", "incoherent"),
        "kappas": (1.0,),
        "dims": (16, 64, 256),
        "noises": ("standard", "isotropic", "heavy_tail", "heavy_tail_unspiked"),
      }
    },
    minutes={"gpu": 3.0},
  ),
  # Fig 5a: "at pathological flatness" (small lambda), where the paper reports the gap.
  _saddle_experiment(
    "gpu_noise_flat",
    "Fig 5a at pathological flatness (lambda 0.01)",
    {
      "gpu": {
        **_NOISE_LARGE_N,
        "kappas": (1.0,),
        "curvatures": (0.01,),
        "dims": (16, 64, 256),
        "noises": ("standard", "isotropic", "heavy_tail", "heavy_tail_unspiked"),
      }
    },
    minutes={"gpu": 3.0},
  ),
  # Theorem 3's mechanism for Fig 1c: at kappa 1 AdamW must shrink its lr with D; a
  # 10000-step budget lets the lrs that win the race escape.
  _saddle_experiment(
    "gpu_fig1c_lr_sweep",
    "Fig 1c / Theorem 3 at kappa 1 (AdamW lr sweep, 10000 steps)",
    {
      "gpu": {
        "optimizers": ("adamw",),
        "signals": ("incoherent",),
        "kappas": (1.0,),
        "curvatures": (0.1,),
        "dims": (16, 32, 64, 128, 256),
        "seeds": 16,
        "paper_lr_seeds": 16,
        "steps": 10000,
      }
    },
    minutes={"gpu": 2.0},
  ),
  *(
    landscape_run(
      f"gpu_landscape_160m_{opt}_seed{seed}",
      {**_LANDSCAPE_160M, "optimizers": (opt,), "seed": seed},
    )
    for seed in LANDSCAPE_SEEDS
    for opt in ("adamw", "muon")
  ),
  landscape_join(
    "gpu_landscape_160m",
    "Fig 3, Fig 4 (LLaMA-160M, Muon - AdamW paired by seed)",
    {**_LANDSCAPE_160M, "seeds": len(LANDSCAPE_SEEDS)},
    tuple(
      f"gpu_landscape_160m_{opt}_seed{seed}"
      for seed in LANDSCAPE_SEEDS
      for opt in ("adamw", "muon")
    ),
  ),
)

EXPERIMENTS = CPU_EXPERIMENTS + GPU_SLICES


def experiment_config(experiment: Experiment, scale: str):
  """The config of `experiment` at `scale`: its defaults plus the scale's overrides."""
  if scale not in SCALES:
    raise ValueError(f"scale={scale!r} is not allowed; choose from {', '.join(SCALES)}")
  return experiment.config_cls(**experiment.scales.get(scale, {}))
