"""Saddle-escape figures (Fig 1a-d, Fig 5a-b, race success, tau*) from `saddle.run` results.

Every series has its own colour and marker and is shifted slightly along the
log-x axis (series i of k by a factor exp(DODGE (i - (k - 1) / 2))), so
identical series stay visible side by side; a Kaplan-Meier median that is
never reached (more than half the runs trapped) is drawn as a hollow
up-triangle at the budget; bands are the KM median's 95 % CI (clipped at the
budget); a lower row of panels gives the escaped fraction.
"""

from __future__ import annotations

import itertools
import math

import matplotlib.pyplot as plt

from muon_jax.paper import saddle
from muon_jax.paper.figures import panels

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
DODGE = 0.04


def _dodge(xs, i: int, k: int):
  factor = math.exp(DODGE * (i - (k - 1) / 2))
  return [x * factor for x in xs]


def _styles():
  """(colour, marker) per series: tab10 colours with markers cycling out of phase."""
  return ((f"C{i % 10}", MARKERS[i % len(MARKERS)]) for i in itertools.count())


def _km_series(ax, frac_ax, entry: dict, steps: int, label: str, style, i: int, k: int):
  """KM median vs D (series i of k) with its CI band; censored medians hollow at the budget."""
  color, marker = style
  per = entry["per_D"]
  d = _dodge([p["D"] for p in per], i, k)
  med = [p["km_median"] if p["km_median"] is not None else steps for p in per]
  lo = [p["km_median_ci"][0] if p["km_median_ci"][0] is not None else steps for p in per]
  hi = [p["km_median_ci"][1] if p["km_median_ci"][1] is not None else steps for p in per]
  ax.plot(d, med, "-", color=color, marker=marker, ms=6, label=label, alpha=0.9)
  ax.fill_between(d, lo, hi, color=color, alpha=0.12)
  cens = [(x, steps) for x, p in zip(d, per) if p["km_median"] is None]
  if cens:
    ax.scatter(*zip(*cens), marker="^", s=110, facecolors="none", edgecolors=color, zorder=4)
  frac_ax.plot(d, [p["escaped_frac"] for p in per], "-", color=color, marker=marker, ms=6)


def _finish(ax, steps, ylabel, log_y=True):
  if steps is not None:
    ax.axhline(steps, color="gray", ls=":", lw=1)
  ax.set(xscale="log", ylabel=ylabel)
  # An empty panel keeps linear axes for its note (`panels.note_if_empty`).
  if log_y and panels.has_data(ax):
    panels.widen_flat_limits(ax)
    ax.set_yscale("log")
  ax.grid(alpha=0.3, which="both")


def _label(s: dict, keys) -> str:
  names = {"signal": "", "kappa": "κ=", "lam": "λ=", "lr": "lr=", "noise": "", "optimizer": ""}
  parts = []
  for k in keys:
    v = s[k]
    parts.append(f"{names[k]}{v:g}" if isinstance(v, float) else f"{names[k]}{v}")
  return " ".join(parts)


def _alpha(e: dict) -> str:
  return "no fit" if e["exponent"] is None else f"α={saddle.exponent_text(e)}"


def vs_dimension(results: dict, optimizer: str, title: str):
  """KM median tau vs D, one panel per criterion, at the paper lr; escaped fraction below."""
  cfg = results["config"]
  steps = cfg["steps"]
  lr = saddle.paper_lr(saddle.config_from_results(results), optimizer)
  noise = "standard" if "standard" in cfg["noises"] else cfg["noises"][0]
  groups = [
    s
    for s in results["summary"]
    if s["optimizer"] == optimizer and s["lr"] == lr and s["noise"] == noise
  ]
  fig, axes = plt.subplots(
    2, 3, figsize=(16, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
  )
  for col, crit in enumerate(saddle.ESCAPE_CRITERIA):
    for i, (s, style) in enumerate(zip(groups, _styles())):
      e = s[crit]
      tag = "untestable" if e["verdict"] == "untestable" else _alpha(e)
      _km_series(
        axes[0, col],
        axes[1, col],
        e,
        steps,
        f"{_label(s, ('signal', 'kappa', 'lam'))}: {e['verdict']} ({tag})",
        style,
        i,
        len(groups),
      )
    _finish(axes[0, col], steps, "escape step (KM median, 95% CI)")
    axes[0, col].set_title(saddle_criterion_title(crit), fontsize=10)
    axes[0, col].legend(fontsize=7)
    if groups and all(p["km_median"] is None for s in groups for p in s[crit]["per_D"]):
      panels.note(
        axes[0, col],
        f"no median escape within the {steps}-step budget at any D\n"
        "(every series censored: ▵ at the budget)",
        y=0.25,
      )
    _finish(axes[1, col], None, "escaped fraction", log_y=False)
    axes[1, col].set(xlabel="D = n²", ylim=(-0.05, 1.05))
  fig.suptitle(
    f"{title} (lr {lr:g}, {noise} noise; hollow ▵ = median not reached, dotted = budget {steps})"
  )
  fig.tight_layout()
  return fig


def saddle_criterion_title(crit: str) -> str:
  return {
    "definition1": "definition1 (paper, Def. 1): ||W − W₀||_F ≥ R",
    "structural": "structural (ours): |⟨S, W − W₀⟩| ≥ R",
    "spectral": "spectral: ||W − W₀||₂ ≥ R",
  }[crit]


def race_success(results: dict):
  """Best race-success probability over the lr grid vs D, per race norm.

  From the tau* entries: the same seeds per lr as tau*'s lr selection.
  """
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
  items = sorted(results["tau_star"], key=lambda s: str([s[k] for k in saddle.TAU_STAR_KEYS]))
  for ax, norm in zip(axes, saddle.RACE_NORMS):
    for i, (s, style) in enumerate(zip(items, _styles())):
      per = s[norm]["per_n"]
      ax.plot(
        _dodge([p["D"] for p in per], i, len(items)),
        [max(p["success_by_lr"].values()) for p in per],
        "-",
        color=style[0],
        marker=style[1],
        ms=6,
        label=_label(s, ("optimizer", "signal", "noise", "kappa", "lam")),
      )
    ax.axhline(results["config"]["success_level"], color="gray", ls=":", lw=1)
    _finish(ax, None, "race-success probability (best lr)", log_y=False)
    ax.set(
      xlabel="D = n²",
      ylim=(-0.05, 1.05),
      title=f"Theorem 3's race, {norm}: structural escape before ||P⊥(W − W₀)|| ≥ R⊥",
    )
    ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


def tau_star(results: dict):
  """tau*(D) for both optimizers and the arg-min lr, per race norm; censored points hollow."""
  steps = results["config"]["steps"]
  fig, axes = plt.subplots(
    2, 2, figsize=(14, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
  )
  for col, norm in enumerate(saddle.RACE_NORMS):
    k = len(results["tau_star"])
    for i, (s, (color, marker)) in enumerate(zip(results["tau_star"], _styles())):
      e, per = s[norm], s[norm]["per_n"]
      d = _dodge([p["D"] for p in per], i, k)
      tag = _alpha(e)
      label = (
        f"{_label(s, ('optimizer', 'signal', 'noise', 'kappa', 'lam'))}: {e['verdict']} ({tag})"
      )
      y = [p["tau_star"] if p["tau_star"] is not None else steps for p in per]
      axes[0, col].plot(d, y, "-", color=color, marker=marker, ms=6, label=label)
      cens = [(x, steps) for x, p in zip(d, per) if p["tau_star"] is None]
      if cens:
        axes[0, col].scatter(
          *zip(*cens), marker="^", s=110, facecolors="none", edgecolors=color, zorder=4
        )
      chosen = [(x, p["lr"]) for x, p in zip(d, per) if p["lr"] is not None]
      if chosen:
        axes[1, col].plot(*zip(*chosen), "-", color=color, marker=marker, ms=6)
    if all(p["tau_star"] is None for s in results["tau_star"] for p in s[norm]["per_n"]):
      panels.note(
        axes[0, col],
        f"no learning rate wins the {norm} race at any D\n(every τ* censored: ▵ at the budget)",
        y=0.25,
      )
    _finish(axes[0, col], steps, "τ* (KM median at the best race-winning lr)")
    axes[0, col].set_title(
      f"lr-optimal τ*(D), {norm} race (hollow ▵: no lr wins the race)", fontsize=10
    )
    axes[0, col].legend(fontsize=7)
    panels.note_if_empty(
      axes[1, col],
      f"no learning rate wins the {norm} race (success ≥ "
      f"{results['config']['success_level']:g}) at any D",
    )
    _finish(axes[1, col], None, "arg-min lr")
    axes[1, col].set(xlabel="D = n²")
  fig.tight_layout()
  return fig


def noise_vs_dimension(results: dict):
  """Fig 5b: Muon KM median structural tau vs D per noise modality (paper lr, smallest lam)."""
  cfg = saddle.config_from_results(results)
  lr, lam = saddle.paper_lr(cfg, "muon"), min(cfg.curvatures)
  fig, axes = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
  groups = [
    s for s in results["summary"] if s["optimizer"] == "muon" and s["lr"] == lr and s["lam"] == lam
  ]
  for i, (s, style) in enumerate(zip(groups, _styles())):
    e = s["structural"]
    tag = _alpha(e)
    _km_series(
      axes[0],
      axes[1],
      e,
      cfg.steps,
      f"{_label(s, ('noise', 'signal', 'kappa'))}: {e['verdict']} ({tag})",
      style,
      i,
      len(groups),
    )
  _finish(axes[0], cfg.steps, "structural escape step (KM median, 95% CI)")
  axes[0].legend(fontsize=7)
  axes[0].set_title(
    f"Fig 5b: noise modalities vs D (Muon lr {lr:g}, λ={lam:g}; heavy_tail: "
    f"column profile j^-{cfg.tail_exponent:g}, student_t: flat)",
    fontsize=10,
  )
  _finish(axes[1], None, "escaped fraction", log_y=False)
  axes[1].set(xlabel="D = n²", ylim=(-0.05, 1.05))
  fig.tight_layout()
  return fig


def vs_curvature(results: dict, noises, dims, title: str):
  """Fig 1b / 5a: Muon KM median structural tau vs lam at the paper lr, per (noise, signal, kappa, n)."""
  cfg = saddle.config_from_results(results)
  lr = saddle.paper_lr(cfg, "muon")
  lams = sorted(cfg.curvatures)
  by = {
    (s["noise"], s["signal"], s["kappa"], s["lam"]): s
    for s in results["summary"]
    if s["optimizer"] == "muon" and s["lr"] == lr
  }
  series = [(z, g, k, n) for z in noises for g in cfg.signals for k in cfg.kappas for n in dims]
  fig, axes = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
  for i, ((z, g, k, n), style) in enumerate(zip(series, _styles())):
    per = [
      next(p for p in by[(z, g, k, lam)]["structural"]["per_D"] if p["D"] == n * n) for lam in lams
    ]
    entry = {"per_D": [{**p, "D": lam} for p, lam in zip(per, lams)]}
    _km_series(axes[0], axes[1], entry, cfg.steps, f"{z} {g} κ={k:g} n={n}", style, i, len(series))
  _finish(axes[0], cfg.steps, "structural escape step (KM median, 95% CI)")
  axes[0].legend(fontsize=7)
  axes[0].set_title(f"{title} (Muon lr {lr:g}; hollow ▵ = median not reached)", fontsize=10)
  _finish(axes[1], None, "escaped fraction", log_y=False)
  axes[1].set(xlabel="negative curvature λ", ylim=(-0.05, 1.05))
  fig.tight_layout()
  return fig


def trajectories(results: dict):
  """Fig 1d: structural, definition1 and perp-Frobenius deviation vs t (seed 0, largest n)."""
  cfg = results["config"]
  cells = [c for c in results["cells"] if "trajectory" in c]
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
  for i, (c, (color, marker)) in enumerate(zip(cells, _styles())):
    tr = c["trajectory"]
    label = _label(c, ("optimizer", "signal", "noise", "kappa", "lr"))
    for ax, m in zip(axes, ("structural", "definition1", "perp_frobenius")):
      # Series can coincide (Frobenius norms of kappa 1 and 100): a dash pattern
      # and staggered markers per series keep each one visible.
      ax.plot(
        _dodge(tr["t"], i, len(cells)),
        tr[m],
        ("-", "--", "-.", ":")[i % 4],
        color=color,
        marker=marker,
        markevery=(5 * i % 20, 20),
        ms=5,
        label=label,
      )
  radius = cfg["radius"]
  for ax, m in zip(axes, ("|⟨S, W − W₀⟩|", "||W − W₀||_F", "||P⊥(W − W₀)||_F")):
    ax.axhline(radius, color="k", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="step t", ylabel=m)
    ax.grid(alpha=0.3, which="both")
  axes[0].legend(fontsize=7)
  fig.suptitle(
    f"Fig 1d: trajectories (n={max(cfg['dims'])}, λ={min(cfg['curvatures']):g}, seed 0, "
    f"paper lr; dotted = R; frozen after the structural escape)"
  )
  fig.tight_layout()
  return fig


def figures(results: dict) -> dict:
  """{file name: Figure} for every figure the run's settings support."""
  cfg = results["config"]
  out = {}
  if "muon" in cfg["optimizers"]:
    out["fig1a_muon_vs_dimension"] = vs_dimension(results, "muon", "Fig 1a/1b: Muon τ vs D")
  if "adamw" in cfg["optimizers"]:
    out["fig1c_adamw_vs_dimension"] = vs_dimension(results, "adamw", "Fig 1c: AdamW τ vs D")
  if any("trajectory" in c for c in results["cells"]):
    out["fig1d_trajectories"] = trajectories(results)
  out["race_success"] = race_success(results)
  out["tau_star"] = tau_star(results)
  if "muon" in cfg["optimizers"] and len(cfg["noises"]) > 1:
    out["fig5b_noise_vs_dimension"] = noise_vs_dimension(results)
  if "muon" in cfg["optimizers"] and len(cfg["curvatures"]) > 1:
    noise = "standard" if "standard" in cfg["noises"] else cfg["noises"][0]
    out["fig1b_muon_vs_curvature"] = vs_curvature(
      results, [noise], cfg["dims"], "Fig 1b: Muon τ vs λ"
    )
    if len(cfg["noises"]) > 1:
      out["fig5a_noise_vs_curvature"] = vs_curvature(
        results,
        cfg["noises"],
        [min(cfg["dims"])],
        f"Fig 5a: noise modalities at n={min(cfg['dims'])}",
      )
  return panels.note_empty_panels(out)
