"""Figures 2a-2d of the matrix-factorization experiment, from its results dict."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from muon_jax.paper import matrix_factorization as mf  # noqa: E402
from muon_jax.paper.figures import panels  # noqa: E402

_STYLES = {"muon": "-", "adamw": "--"}


def _median_steps(summary_opt: dict, n) -> np.ndarray:
  return np.array(
    [np.nan if s is None else s for s in summary_opt["per_n"][str(n)]["median_step_per_kappa"]],
    float,
  )


def _band(ax, x, y_SxR, color, style, label):
  ax.plot(x, np.median(y_SxR, axis=0), style, color=color, label=label, lw=1.4)
  ax.fill_between(x, np.min(y_SxR, axis=0), np.max(y_SxR, axis=0), color=color, alpha=0.15, lw=0)


def figures(res: dict, zoom_steps: int = 200) -> dict:
  """{"fig2a": ..., "fig2d": ...} matplotlib figures of a `matrix_factorization.run` result.

  2a relative expected loss vs step (one panel per kappa); 2b final loss and
  rank-expansion step vs n with the fitted exponent; 2c effective rank vs step
  (first `zoom_steps`) at the largest kappa; 2d rank-expansion step vs kappa
  and effective rank vs step per kappa at the largest n. Lines are seed
  medians, bands the seed min..max.
  """
  cfg, summary = res["config"], res["summary"]
  dims, kappas, optimizers = cfg["dims"], cfg["kappas"], cfg["optimizers"]
  units = mf.units_from_results(res)
  steps_R = np.asarray(res["record_steps"])
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.85, max(len(dims), len(kappas))))
  zoom = steps_R <= zoom_steps
  never = (
    f"no run's effective rank reached {cfg['threshold_factor']:g}x its initial value "
    f"within {cfg['steps']} steps"
  )
  figs = {}

  fig, axes = plt.subplots(
    1, len(kappas), figsize=(4.2 * len(kappas), 3.6), squeeze=False, layout="constrained"
  )
  for k, kappa in enumerate(kappas):
    ax = axes[0, k]
    for opt in optimizers:
      for i, n in enumerate(dims):
        _band(
          ax, steps_R, units[(opt, n)]["rel_loss_R"][:, k], colors[i], _STYLES[opt], f"{opt} n={n}"
        )
    ax.set(yscale="log", xlabel="step", title=f"κ = {kappa:g}")
  axes[0, 0].set_ylabel("expected loss / loss at W=0")
  axes[0, -1].legend(fontsize=7)
  fig.suptitle("Fig 2a: loss curves (solid Muon, dashed AdamW)")
  figs["fig2a"] = fig

  fig, (ax_l, ax_s) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
  for opt in optimizers:
    for k, kappa in enumerate(kappas):
      final = [np.median(units[(opt, n)]["rel_loss_R"][:, k, -1]) for n in dims]
      ax_l.plot(dims, final, _STYLES[opt] + "o", color=colors[k], label=f"{opt} κ={kappa:g}")
      step = [_median_steps(summary[opt], n)[k] for n in dims]
      ax_s.plot(dims, step, _STYLES[opt] + "o", color=colors[k], label=f"{opt} κ={kappa:g}")
    fit = summary[opt]["exponent_vs_n"]
    if fit is not None:
      ax_s.plot(
        dims,
        np.exp(fit["intercept"]) * np.asarray(dims, float) ** fit["exponent"],
        ":",
        color="k" if opt == "muon" else "gray",
        label=f"{opt} fit: n^{fit['exponent']:.2f} [{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]",
      )
  ax_l.set(
    xscale="log",
    yscale="log",
    xlabel="n",
    ylabel="final expected loss / loss at W=0",
    title="final loss vs n",
  )
  ax_s.set(
    xscale="log",
    yscale="log",
    xlabel="n",
    ylabel="rank-expansion step (median over seeds)",
    title="rank-expansion step vs n",
  )
  ax_l.legend(fontsize=7)
  if not panels.note_if_empty(ax_s, never):
    ax_s.legend(fontsize=7)
  fig.suptitle("Fig 2b: dimension scaling (missing points: never expanded)")
  figs["fig2b"] = fig

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
  for opt in optimizers:
    for i, n in enumerate(dims):
      u = units[(opt, n)]
      _band(
        axes[0],
        steps_R[zoom],
        u["erank_R"][:, -1][:, zoom],
        colors[i],
        _STYLES[opt],
        f"{opt} n={n}",
      )
      _band(
        axes[1],
        steps_R[zoom],
        u["erank_normalized_R"][:, -1][:, zoom],
        colors[i],
        _STYLES[opt],
        f"{opt} n={n}",
      )
  axes[0].axvline(mf.WITHIN_STEPS, color="r", lw=0.8, ls=":", label=f"step {mf.WITHIN_STEPS}")
  axes[0].set(xlabel="step", ylabel="effective rank exp(H)", yscale="log")
  axes[1].set(xlabel="step", ylabel="normalized entropy H / log r")
  axes[0].legend(fontsize=7)
  fig.suptitle(f"Fig 2c: effective rank of UVᵀ, κ = {kappas[-1]:g} (solid Muon, dashed AdamW)")
  figs["fig2c"] = fig

  fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
  for opt in optimizers:
    for i, n in enumerate(dims):
      ax_s.plot(
        kappas,
        _median_steps(summary[opt], n),
        _STYLES[opt] + "o",
        color=colors[i],
        label=f"{opt} n={n}",
      )
    for k, kappa in enumerate(kappas):
      _band(
        ax_r,
        steps_R[zoom],
        units[(opt, dims[-1])]["erank_R"][:, k][:, zoom],
        colors[k],
        _STYLES[opt],
        f"{opt} κ={kappa:g}",
      )
  ax_s.set(
    xscale="log",
    yscale="log",
    xlabel="κ",
    ylabel="rank-expansion step (median)",
    title="rank-expansion step vs κ",
  )
  ax_r.set(xlabel="step", ylabel="effective rank exp(H)", yscale="log", title=f"n = {dims[-1]}")
  if not panels.note_if_empty(ax_s, never):
    ax_s.legend(fontsize=7)
  ax_r.legend(fontsize=7)
  fig.suptitle("Fig 2d: condition-number dependence (solid Muon, dashed AdamW)")
  figs["fig2d"] = fig
  return panels.note_empty_panels(figs)
