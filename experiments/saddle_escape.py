"""Saddle-escape grid: is Muon's escape time dimension-free? (Sec 4.1, Figs 1, 5).

  python -m experiments.saddle_escape --out_dir out/saddle_escape
  python -m experiments.saddle_escape --shard=0/4 --out_dir D   # ... 3/4, then:
  python -m experiments.saddle_escape merge --out_dir D

Runs every (optimizer, lr, noise, n, lam, kappa, seed) cell with
`muon_jax.saddle.run_grid` (one compile per optimizer x noise x n), writes
saddle_escape.json after each such group (atomically; --resume skips the cells
already there), then the per-group exponent fits, verdicts and the paper's
claims, and figures fig1a..fig1d, fig5a, fig5b. With --shard=i/N only every
N-th cell runs and the records go to saddle_escape.shard-i-of-N.json; `merge`
combines all N shard files of --out_dir into saddle_escape.json + figures.
Wall-clock numbers go to saddle_escape_timing.json so the results JSON is
identical however the run was split or resumed.
"""

import glob
import os
import re
import time

from absl import app, flags, logging

from muon_jax import validate

flags.DEFINE_list("dims", ["32", "64", "128"], "Matrix sides n (D = n^2), each in [2, 16384].")
flags.DEFINE_list("curvatures", ["0.1", "0.01"], "Negative curvatures lambda, in (0, 1e3].")
flags.DEFINE_list("kappas", ["1", "100"], "Structural variance ratios kappa, in [1, 1e8].")
flags.DEFINE_integer("seeds", 8, "Seeds per cell, in [1, 10000].")
flags.DEFINE_integer("steps", 3000, "Step budget (censoring value), in [1, 10^7].")
flags.DEFINE_list("optimizers", ["muon", "adamw"], "Subset of muon, adamw, sgd.")
flags.DEFINE_list("noise", ["standard"], "Noise modalities: standard, isotropic, heavy_tail.")
flags.DEFINE_float("radius", 1.0, "Taylor radius R of both escape criteria, > 0.")
flags.DEFINE_float("sigma", 1.0, "Bulk noise std per entry, > 0.")
flags.DEFINE_string("signal", "aligned", "Signal geometry: aligned (S = E_11) or incoherent (S = u v^T).")
flags.DEFINE_list("muon_lr", ["0.02"], "Muon learning rates (sweep), each in (0, 10].")
flags.DEFINE_list("adamw_lr", ["0.001", "0.01"], "AdamW learning rates (sweep), each in (0, 10].")
flags.DEFINE_list("sgd_lr", ["0.01"], "SGD learning rates (sweep), each in (0, 10].")
flags.DEFINE_float("lock_threshold", 0.9, "tau_lock level of |u1.u_S||v1.v_S|, in (0, 1].")
flags.DEFINE_integer("power_iters", 3, "Power iterations per step for tau_lock, in [1, 100].")
flags.DEFINE_float("init_scale", 0.0, "W_0 = init_scale * Gaussian, in [0, 1).")
flags.DEFINE_float("bulk_curvature", 0.0, "Positive curvature mu off the structural direction, >= 0.")
flags.DEFINE_integer("tail_df", 3, "heavy_tail Student-t degrees of freedom, integer in [3, 1000].")
flags.DEFINE_float("tail_exponent", 1.0, "heavy_tail column variance profile j^-alpha, alpha in [0, 4].")
flags.DEFINE_integer("chunk", 100, "Steps between 'all escaped?' checks, in [1, 10^5].")
flags.DEFINE_integer("n_boot", 1000, "Seed-bootstrap resamples of each exponent CI, in [0, 10^5].")
flags.DEFINE_float("tolerance", 0.1, "Exponent CI half-width that counts as dimension-free, > 0.")
flags.DEFINE_integer("seed", 0, "Seed of every random draw (jax.random key).")
flags.DEFINE_string("out_dir", "out/saddle_escape", "Output folder.")
flags.DEFINE_bool("resume", False, "Skip cells already in the output JSON (same settings required).")
flags.DEFINE_string("shard", "0/1", "Run only the i-th of N round-robin slices of the cells: i/N.")
FLAGS = flags.FLAGS

RESULT = "saddle_escape.json"
TIMING = "saddle_escape_timing.json"
TRACE_POINTS = 300


def build_config(values: dict) -> dict:
  """Validates raw flag values (a dict of flag name -> value) into the run config.

  Raises validate.FlagError (one line, naming the flag) on any bad value.
  Every key of the result affects the results; --resume and merge demand
  equality.
  """
  from muon_jax import saddle
  v = validate

  def float_list(name, low, high, low_inclusive=True):
    xs = v.parse_list(name, values[name], float)
    v.check_range(name, xs, low=low, high=high, low_inclusive=low_inclusive)
    if len(set(xs)) != len(xs):
      raise v.FlagError(f"--{name} has duplicate values: {values[name]}")
    return xs

  def str_list(name, choices):
    xs = v.parse_list(name, values[name], str)
    v.check_choices(name, xs, choices)
    if len(set(xs)) != len(xs):
      raise v.FlagError(f"--{name} has duplicate values: {values[name]}")
    return xs

  dims = v.parse_list("dims", values["dims"], int)
  v.check_range("dims", dims, low=2, high=16384)
  if len(set(dims)) != len(dims):
    raise v.FlagError(f"--dims has duplicate values: {values['dims']}")
  cfg = {
      "dims": sorted(dims),
      "curvatures": float_list("curvatures", 0, 1e3, low_inclusive=False),
      "kappas": float_list("kappas", 1, 1e8),
      "optimizers": str_list("optimizers", saddle.OPTIMIZERS),
      "noise": str_list("noise", saddle.NOISES),
  }
  cfg["lrs"] = {}
  for name in cfg["optimizers"]:
    cfg["lrs"][name] = float_list(f"{name}_lr", 0, 10, low_inclusive=False)
  for name, low, high, low_inc in (("seeds", 1, 10000, True), ("steps", 1, 10**7, True),
                                   ("power_iters", 1, 100, True), ("tail_df", 3, 1000, True),
                                   ("chunk", 1, 10**5, True), ("n_boot", 0, 10**5, True)):
    v.check_range(name, values[name], low=low, high=high, low_inclusive=low_inc)
    cfg[name] = int(values[name])
  for name, low, high, low_inc in (("radius", 0, None, False), ("sigma", 0, None, False),
                                   ("lock_threshold", 0, 1, False), ("init_scale", 0, 1, True),
                                   ("bulk_curvature", 0, None, True), ("tail_exponent", 0, 4, True),
                                   ("tolerance", 0, None, False)):
    v.check_range(name, values[name], low=low, high=high, low_inclusive=low_inc,
                  high_inclusive=name != "init_scale")
    cfg[name] = float(values[name])
  v.check_choices("signal", values["signal"], saddle.SIGNALS)
  cfg["signal"] = values["signal"]
  cfg["seed"] = int(values["seed"])
  return cfg


def cell_id(c: dict) -> str:
  return (f"{c['optimizer']}|lr={c['lr']!r}|{c['noise']}|n={c['n']}|lam={c['lam']!r}"
          f"|kappa={c['kappa']!r}|seed={c['seed']}")


def all_cells(cfg: dict) -> list[dict]:
  """Every cell in canonical order (optimizer, noise, n, lam, kappa, lr, seed)."""
  return [{"optimizer": o, "lr": lr, "noise": z, "n": n, "lam": lam, "kappa": k, "seed": s}
          for o in cfg["optimizers"] for z in cfg["noise"] for n in cfg["dims"]
          for lam in cfg["curvatures"] for k in cfg["kappas"] for lr in cfg["lrs"][o]
          for s in range(cfg["seeds"])]


def trace_cells(cfg: dict) -> set:
  """Cells whose trajectories feed Fig 1d: seed 0, largest n, smallest lam."""
  return {cell_id(c) for c in all_cells(cfg)
          if c["seed"] == 0 and c["n"] == cfg["dims"][-1] and c["lam"] == min(cfg["curvatures"])}


def saddle_config(cfg: dict, n: int, noise: str):
  from muon_jax import saddle
  return saddle.SaddleConfig(
      n=n, signal=cfg["signal"], noise=noise, sigma=cfg["sigma"], radius=cfg["radius"],
      steps=cfg["steps"], lock_threshold=cfg["lock_threshold"], power_iters=cfg["power_iters"],
      init_scale=cfg["init_scale"], bulk_curvature=cfg["bulk_curvature"], tail_df=cfg["tail_df"],
      tail_exponent=cfg["tail_exponent"], chunk=cfg["chunk"])


def run_cells(cfg: dict, todo: list[dict], doc: dict, path: str, timing: dict, timing_path: str):
  """Runs `todo` group by group, writing `doc` (records, trajectories) after each."""
  import numpy as np
  from muon_jax import results, saddle
  wanted_traces = trace_cells(cfg)
  groups: dict = {}
  for c in todo:
    groups.setdefault((c["optimizer"], c["noise"], c["n"]), []).append(c)
  for (opt, noise, n), cells in groups.items():
    grid = saddle.Grid(*(np.asarray([c[k] for c in cells], dt) for k, dt in (
        ("lam", np.float32), ("kappa", np.float32), ("lr", np.float32), ("seed", np.int32))))
    start = time.perf_counter()
    out = saddle.run_grid(saddle.make_optimizer(opt), saddle_config(cfg, n, noise), grid,
                          seed=cfg["seed"], trace=True)
    seconds = time.perf_counter() - start
    for i, c in enumerate(cells):
      cid = cell_id(c)
      doc["cells"][cid] = {**c, "D": n * n, **{k: int(out[k][i]) for k in (
          "tau_esc", "tau_esc_frob", "tau_lock")}, **{k: bool(out[k][i]) for k in (
              "escaped", "escaped_frob", "locked")}}
      if cid in wanted_traces:
        idx = np.unique(np.geomspace(1, cfg["steps"], TRACE_POINTS).astype(int))
        doc["trajectories"][cid] = {"t": idx.tolist(),
                                    "proj": out["trace"][i, idx - 1, 0].round(6).tolist(),
                                    "frob": out["trace"][i, idx - 1, 1].round(6).tolist()}
    results.atomic_write_json(path, finalize(doc, partial=True))
    timing[f"{opt}|{noise}|n={n}"] = {"cells": len(cells), "seconds": round(seconds, 2),
                                      "cells_per_s": round(len(cells) / seconds, 3)}
    results.atomic_write_json(timing_path, timing)
    logging.info("group %s/%s/n=%d: %d cells in %.1f s (%.2f cells/s incl. compile)",
                 opt, noise, n, len(cells), seconds, len(cells) / seconds)


def finalize(doc: dict, *, partial: bool) -> dict:
  """JSON document with cells sorted canonically (+ summary/claims when complete)."""
  from muon_jax import saddle
  cfg = doc["config"]
  order = {cell_id(c): i for i, c in enumerate(all_cells(cfg))}
  cells = sorted(doc["cells"].values(), key=lambda c: order[cell_id(c)])
  out = {"experiment": "saddle_escape", "config": cfg, **(
      {"shard": doc["shard"]} if "shard" in doc else {}),
         "complete": len(cells) == len(order) and not partial, "cells": cells,
         "trajectories": dict(sorted(doc["trajectories"].items(), key=lambda kv: order[kv[0]]))}
  if out["complete"]:
    summary = saddle.summarize(cells, steps=cfg["steps"], n_boot=cfg["n_boot"], seed=cfg["seed"],
                               tol=cfg["tolerance"])
    out["summary"] = summary
    out["claims"] = saddle.evaluate_claims(summary)
  return out


def load_doc(path: str, cfg: dict) -> dict:
  """Existing records of a run with the same settings (FlagError otherwise)."""
  from muon_jax import results
  old = results.load_json(path)
  if old is None:
    return {"config": cfg, "cells": {}, "trajectories": {}}
  if old.get("config") != cfg:
    diff = sorted(k for k in set(cfg) | set(old.get("config", {}))
                  if cfg.get(k) != old.get("config", {}).get(k))
    raise validate.FlagError(f"--resume: {path} was written with different settings "
                             f"({', '.join(diff)}); use another --out_dir or drop --resume")
  return {"config": cfg, "cells": {cell_id(c): c for c in old["cells"]},
          "trajectories": dict(old.get("trajectories", {}))}


def _index(summary: list) -> dict:
  return {(s["optimizer"], s["lr"], s["noise"], s["lam"], s["kappa"], s["criterion"]): s
          for s in summary}


def _line(ax, x, rows, steps, label, color, style):
  """Median with IQR band; hollow up-triangles mark censored medians (lower bounds)."""
  med = [r["median"] for r in rows]
  ax.plot(x, med, style, color=color, label=label, marker="o", ms=4)
  ax.fill_between(x, [r["q1"] for r in rows], [r["q3"] for r in rows], color=color, alpha=0.15)
  cens = [(xi, m) for xi, m, r in zip(x, med, rows) if r["median_censored"]]
  if cens:
    ax.scatter(*zip(*cens), marker="^", s=90, facecolors="none", edgecolors=color, zorder=3)


def _finish(ax, steps, xlabel, ylabel):
  ax.axhline(steps, color="gray", ls=":", lw=1)
  ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7)


_CRIT_LABEL = {"tau_esc": "structural |<S,W>| >= R", "tau_esc_frob": "Frobenius ||W||_F >= R"}


def _vs_dimension(doc, optimizer, title):
  """tau vs D for every (lam, kappa, lr), both criteria (Figs 1a, 1c)."""
  import matplotlib.pyplot as plt
  cfg, idx = doc["config"], _index(doc["summary"])
  noise = cfg["noise"][0]
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  styles = ["-", "--", "-.", ":"]
  for ax, crit in zip(axes, ("tau_esc", "tau_esc_frob")):
    combos = [(lr, k) for lr in cfg["lrs"][optimizer] for k in cfg["kappas"]]
    for ci, (lr, k) in enumerate(combos):
      for li, lam in enumerate(cfg["curvatures"]):
        s = idx[(optimizer, lr, noise, lam, k, crit)]
        fit = f", α={s['fit']['exponent']:.2f}" if s["fit"] else ", censored"
        _line(ax, [r["D"] for r in s["per_n"]], s["per_n"], cfg["steps"],
              f"lr={lr:g} κ={k:g} λ={lam:g}{fit}", f"C{ci}", styles[li % 4])
    _finish(ax, cfg["steps"], "D = n²", "escape step (median, IQR)")
    ax.set_title(_CRIT_LABEL[crit], fontsize=10)
  fig.suptitle(f"{title} ({cfg['signal']} signal, {noise} noise; ▵ = censored median, "
               f"dotted = budget)")
  fig.tight_layout()
  return fig


def _vs_curvature(doc, optimizer, noises, n_pick, title):
  """tau_esc vs lambda per n (Fig 1b) or per noise modality at one n (Fig 5a)."""
  import matplotlib.pyplot as plt
  cfg, idx = doc["config"], _index(doc["summary"])
  lr = cfg["lrs"][optimizer][0]
  lams = sorted(cfg["curvatures"])
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  styles = ["-", "--", "-.", ":"]
  for ax, crit in zip(axes, ("tau_esc", "tau_esc_frob")):
    series = [(z, n) for z in noises for n in (cfg["dims"] if n_pick is None else [n_pick])]
    for ci, (z, n) in enumerate(series):
      for ki, k in enumerate(cfg["kappas"]):
        rows = [next(r for r in idx[(optimizer, lr, z, lam, k, crit)]["per_n"] if r["n"] == n)
                for lam in lams]
        _line(ax, lams, rows, cfg["steps"], f"{z} n={n} κ={k:g}", f"C{ci}", styles[ki % 4])
    _finish(ax, cfg["steps"], "negative curvature λ", "escape step (median, IQR)")
    ax.set_title(_CRIT_LABEL[crit], fontsize=10)
  fig.suptitle(f"{title} ({optimizer} lr={lr:g}, {cfg['signal']} signal)")
  fig.tight_layout()
  return fig


def _noise_vs_dimension(doc):
  """Fig 5b: Muon tau_esc vs D per noise modality at the smallest lambda."""
  import matplotlib.pyplot as plt
  cfg, idx = doc["config"], _index(doc["summary"])
  lr, lam = cfg["lrs"]["muon"][0], min(cfg["curvatures"])
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  styles = ["-", "--", "-.", ":"]
  for ax, crit in zip(axes, ("tau_esc", "tau_esc_frob")):
    for ci, z in enumerate(cfg["noise"]):
      for ki, k in enumerate(cfg["kappas"]):
        s = idx[("muon", lr, z, lam, k, crit)]
        _line(ax, [r["D"] for r in s["per_n"]], s["per_n"], cfg["steps"], f"{z} κ={k:g}",
              f"C{ci}", styles[ki % 4])
    _finish(ax, cfg["steps"], "D = n²", "escape step (median, IQR)")
    ax.set_title(_CRIT_LABEL[crit], fontsize=10)
  fig.suptitle(f"Fig 5b: noise modalities vs dimension (Muon lr={lr:g}, λ={lam:g})")
  fig.tight_layout()
  return fig


def _trajectories(doc):
  """Fig 1d: |<S, W>|(t) and ||W||_F(t), seed 0, largest n, smallest lambda."""
  import matplotlib.pyplot as plt
  cfg = doc["config"]
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  cells = {cell_id(c): c for c in doc["cells"]}
  labels = sorted({(c["optimizer"], c["lr"]) for c in cells.values()})
  styles = ["-", "--", "-.", ":"]
  for cid, tr in doc["trajectories"].items():
    c = cells[cid]
    if c["noise"] != cfg["noise"][0]:
      continue
    color = f"C{labels.index((c['optimizer'], c['lr']))}"
    style = styles[cfg["kappas"].index(c["kappa"]) % 4]
    lab = f"{c['optimizer']} lr={c['lr']:g} κ={c['kappa']:g}"
    axes[0].plot(tr["t"], tr["proj"], style, color=color, label=lab, lw=1.2)
    axes[1].plot(tr["t"], tr["frob"], style, color=color, label=lab, lw=1.2)
  n, lam = cfg["dims"][-1], min(cfg["curvatures"])
  for ax, name in zip(axes, ("|<S, W_t>|", "||W_t||_F")):
    ax.axhline(cfg["radius"], color="k", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="step t", ylabel=name)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
  fig.suptitle(f"Fig 1d: trajectories (n={n}, λ={lam:g}, seed 0; dotted = R; "
               f"frozen after escaping both criteria)")
  fig.tight_layout()
  return fig


def write_figures(doc: dict, out_dir: str) -> list[str]:
  """Figures 1a-1d, 5a, 5b (those whose optimizer ran) from a complete document."""
  import matplotlib
  matplotlib.use("Agg")
  from muon_jax import results
  cfg = doc["config"]
  figs = {}
  if "muon" in cfg["optimizers"]:
    figs["fig1a_muon_vs_dimension.png"] = _vs_dimension(doc, "muon", "Fig 1a: Muon τ vs D")
    figs["fig1b_muon_vs_curvature.png"] = _vs_curvature(
        doc, "muon", cfg["noise"][:1], None, "Fig 1b: Muon τ vs λ")
    figs["fig5a_noise_vs_curvature.png"] = _vs_curvature(
        doc, "muon", cfg["noise"], cfg["dims"][0], f"Fig 5a: noise modalities at n={cfg['dims'][0]}")
    figs["fig5b_noise_vs_dimension.png"] = _noise_vs_dimension(doc)
  if "adamw" in cfg["optimizers"]:
    figs["fig1c_adamw_vs_dimension.png"] = _vs_dimension(doc, "adamw", "Fig 1c: AdamW τ vs D")
  if doc["trajectories"]:
    figs["fig1d_trajectories.png"] = _trajectories(doc)
  for name, fig in figs.items():
    results.save_figure(fig, os.path.join(out_dir, name))
  return sorted(figs)


def merge(out_dir: str) -> dict:
  """Combines saddle_escape.shard-i-of-N.json files into the full document."""
  from muon_jax import results
  paths = sorted(glob.glob(os.path.join(out_dir, "saddle_escape.shard-*-of-*.json")))
  if not paths:
    raise validate.FlagError(f"merge: no saddle_escape.shard-i-of-N.json files in --out_dir={out_dir}")
  docs = [results.load_json(p) for p in paths]
  cfg = docs[0]["config"]
  totals = {re.search(r"-of-(\d+)\.json$", p).group(1) for p in paths}
  if len(totals) != 1:
    raise validate.FlagError(f"merge: shard files from different N in {out_dir}: {sorted(totals)}")
  for p, d in zip(paths, docs):
    if d["config"] != cfg:
      raise validate.FlagError(f"merge: {p} has different settings from {paths[0]}")
  doc = {"config": cfg, "cells": {}, "trajectories": {}}
  for d in docs:
    doc["cells"].update({cell_id(c): c for c in d["cells"]})
    doc["trajectories"].update(d.get("trajectories", {}))
  missing = len(all_cells(cfg)) - len(doc["cells"])
  if missing:
    raise validate.FlagError(f"merge: {missing} cells missing in {out_dir}; run the remaining shards")
  return finalize(doc, partial=False)


def main(argv):
  from muon_jax import results
  positional = argv[1:]
  if positional not in ([], ["merge"]):
    raise validate.FlagError(f"unexpected arguments {positional}; the only mode is 'merge'")
  out_dir = FLAGS.out_dir
  if positional == ["merge"]:
    final = merge(out_dir)
    results.atomic_write_json(os.path.join(out_dir, RESULT), final)
    written = write_figures(final, out_dir)
    logging.info("merged %d cells; wrote %s and %s", len(final["cells"]), RESULT, written)
    return
  cfg = build_config({name: FLAGS[name].value for name in FLAGS})
  shard_i, shard_n = validate.parse_shard(FLAGS.shard)
  name = RESULT if shard_n == 1 else f"saddle_escape.shard-{shard_i}-of-{shard_n}.json"
  path = os.path.join(out_dir, name)
  doc = load_doc(path, cfg) if FLAGS.resume else {"config": cfg, "cells": {}, "trajectories": {}}
  if shard_n > 1:
    doc["shard"] = f"{shard_i}/{shard_n}"
  mine = [c for i, c in enumerate(all_cells(cfg)) if i % shard_n == shard_i]
  todo = [c for c in mine if cell_id(c) not in doc["cells"]]
  logging.info("%d cells in this shard, %d already done, %d to run", len(mine),
               len(mine) - len(todo), len(todo))
  timing_path = os.path.join(out_dir, TIMING if shard_n == 1 else f"timing.shard-{shard_i}-of-{shard_n}.json")
  timing = results.load_json(timing_path, {}) if FLAGS.resume else {}
  start = time.perf_counter()
  run_cells(cfg, todo, doc, path, timing, timing_path)
  final = finalize(doc, partial=shard_n > 1)
  results.atomic_write_json(path, final)
  if shard_n == 1:
    written = write_figures(final, out_dir)
    timing["total_seconds_this_invocation"] = round(time.perf_counter() - start, 2)
    results.atomic_write_json(timing_path, timing)
    for s in final["summary"]:
      fit = s["fit"]
      logging.info("%s lr=%g %s lam=%g kappa=%g %s: %s%s", s["optimizer"], s["lr"], s["noise"],
                   s["lam"], s["kappa"], s["criterion"], s["verdict"],
                   f" (alpha={fit['exponent']:.3f} [{fit['ci_low']:.3f}, {fit['ci_high']:.3f}])"
                   if fit else "")
    logging.info("wrote %s, figures %s", path, written)


if __name__ == "__main__":
  validate.run_or_exit(lambda: app.run(main))
