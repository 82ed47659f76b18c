"""Figures 3 and 4 of the landscape experiment, from its results dict."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_COLORS = {"adamw": "tab:blue", "muon": "tab:red"}


def _color(label: str, i: int) -> str:
  return _COLORS.get(label.lower(), f"C{i + 2}")


def kinematics_figure(res: dict):
  """Figure 3: effective rank, spike range and center loss vs training step.

  One thin line per seed and a bold mean line per optimizer (the mean over
  the seeds probed at that step). The spike range is on a log axis (the
  paper reports a two-order collapse) with the bulk range dashed for contrast.
  """
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  for i, (label, runs) in enumerate(res["runs"].items()):
    col = _color(label, i)
    for key, ax in (
      ("effective_rank", axes[0]),
      ("spike_range", axes[1]),
      ("center_loss", axes[2]),
    ):
      by_step: dict[int, list] = {}
      for run in runs:
        steps = [p["step"] for p in run["probes"]]
        values = [p[key] for p in run["probes"]]
        ax.plot(steps, values, "-", color=col, lw=0.6, alpha=0.5)
        for s, v in zip(steps, values):
          by_step.setdefault(s, []).append(v)
      steps = sorted(by_step)
      ax.plot(
        steps,
        [np.mean(by_step[s]) for s in steps],
        "o-",
        color=col,
        lw=1.8,
        label=f"{label} (mean of {len(runs)})",
      )
    bulk = {}
    for run in runs:
      for p in run["probes"]:
        bulk.setdefault(p["step"], []).append(p["bulk_range"])
    axes[1].plot(
      sorted(bulk),
      [np.mean(bulk[s]) for s in sorted(bulk)],
      "s--",
      color=col,
      alpha=0.6,
      lw=1,
      label=f"{label} bulk (β)",
    )
  target = next(
    (p["path"] for runs in res["runs"].values() for r in runs for p in r["probes"]), "?"
  )
  axes[0].set(title="Spectral dispersion", ylabel="effective rank (normalized entropy)")
  axes[1].set(title="Macro curvature", ylabel="loss range along direction", yscale="log")
  axes[2].set(title="Center loss (α = β = 0)", ylabel="eval loss")
  for ax in axes:
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(f"Kinematic metrics of {target} (thin: seeds)")
  fig.tight_layout()
  return fig


def surfaces_figure(res: dict, steps=None):
  """Figure 4: for each optimizer's first run and milestone, a 3D surface and a contour.

  Rows alternate surface / contour per optimizer; columns are milestones.
  Within a column every panel shares one color/z range, so flatness is
  comparable across optimizers at the same step.
  """
  surfaces = res["surfaces"]
  all_steps = sorted({p["step"] for ps in surfaces.values() for p in ps})
  steps = list(steps) if steps is not None else all_steps
  by_step = {label: {p["step"]: p for p in ps} for label, ps in surfaces.items()}
  n_rows, n_cols = 2 * len(surfaces), len(steps)
  fig = plt.figure(figsize=(4.2 * n_cols, 3.6 * n_rows))
  for c, step in enumerate(steps):
    present = [by_step[lb][step] for lb in surfaces if step in by_step[lb]]
    lo = min(np.min(p["loss_grid"]) for p in present) if present else 0.0
    hi = max(np.max(p["loss_grid"]) for p in present) if present else 1.0
    for r, label in enumerate(surfaces):
      p = by_step[label].get(step)
      if p is None:
        continue
      aa, bb = np.meshgrid(p["alpha"], p["beta"], indexing="ij")
      z = np.asarray(p["loss_grid"])
      ax3 = fig.add_subplot(n_rows, n_cols, (2 * r) * n_cols + c + 1, projection="3d")
      ax3.plot_surface(aa, bb, z, cmap="viridis", vmin=lo, vmax=hi, linewidth=0)
      ax3.set(xlabel="α (spike)", ylabel="β (bulk)", zlim=(lo, hi))
      ax3.set_title(f"{label} step {step}", fontsize=9)
      ax2 = fig.add_subplot(n_rows, n_cols, (2 * r + 1) * n_cols + c + 1)
      cs = ax2.contourf(
        aa, bb, z, levels=np.linspace(lo, hi, 21) if hi > lo else 20, cmap="viridis"
      )
      ax2.plot([0], [0], "w+", ms=8)
      m = p["metrics"]
      ax2.set(xlabel="α (spike)", ylabel="β (bulk)")
      ax2.set_title(
        f"center {m['center_loss']:.3f}, spike range {m['spike_range']:.3g}", fontsize=8
      )
      fig.colorbar(cs, ax=ax2, fraction=0.046)
  fig.suptitle("Loss landscape along gradient spike (α) and bulk (β) directions")
  fig.tight_layout()
  return fig


def figures(res: dict) -> dict:
  """{"fig3_kinematics", "fig4_surfaces"} of a landscape experiment result."""
  return {"fig3_kinematics": kinematics_figure(res), "fig4_surfaces": surfaces_figure(res)}
