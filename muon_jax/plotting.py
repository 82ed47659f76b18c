"""Shared figure helpers for the landscape probe (paper Figures 3 and 4).

Both functions take `runs`: {label: [probe result dicts sorted by step]} as
returned by `landscape.load_probes`, and return a matplotlib Figure (saved by
the caller with `results.save_figure`). They only read the probe JSON fields.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_COLORS = {"adamw": "tab:blue", "muon": "tab:red"}


def _color(label: str, i: int) -> str:
  return _COLORS.get(label.lower(), f"C{i + 2}")


def kinematics_figure(runs: dict[str, list[dict]]):
  """Figure 3: effective rank, spike range and center loss vs training step.

  Spike range is drawn on a log axis (the paper reports a two-order collapse)
  with the bulk range dashed for contrast.
  """
  fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
  for i, (label, probes) in enumerate(runs.items()):
    steps = [p["step"] for p in probes]
    col = _color(label, i)
    mt = lambda key: [p["metrics"][key] for p in probes]
    axes[0].plot(steps, mt("effective_rank"), "o-", color=col, label=label)
    axes[1].plot(steps, mt("spike_range"), "o-", color=col, label=f"{label} spike (α)")
    axes[1].plot(steps, mt("bulk_range"), "s--", color=col, alpha=0.6, lw=1,
                 label=f"{label} bulk (β)")
    axes[2].plot(steps, mt("center_loss"), "o-", color=col, label=label)
  target = next((p["path"] for ps in runs.values() for p in ps), "?")
  axes[0].set(title="Spectral dispersion", ylabel="effective rank (normalized entropy)")
  axes[1].set(title="Macro curvature", ylabel="loss range along direction", yscale="log")
  axes[2].set(title="Center loss (α = β = 0)", ylabel="eval loss")
  for ax in axes:
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(f"Kinematic metrics of {target}")
  fig.tight_layout()
  return fig


def surfaces_figure(runs: dict[str, list[dict]], steps=None):
  """Figure 4: for each run and milestone, a 3D surface and a contour map.

  Rows alternate surface / contour per run; columns are milestones. Within a
  column every panel shares one color/z range, so flatness is comparable
  across optimizers at the same step.
  """
  all_steps = sorted({p["step"] for ps in runs.values() for p in ps})
  steps = list(steps) if steps is not None else all_steps
  by_step = {label: {p["step"]: p for p in ps} for label, ps in runs.items()}
  n_rows, n_cols = 2 * len(runs), len(steps)
  fig = plt.figure(figsize=(4.2 * n_cols, 3.6 * n_rows))
  for c, step in enumerate(steps):
    present = [by_step[lb][step] for lb in runs if step in by_step[lb]]
    lo = min(np.min(p["loss_grid"]) for p in present) if present else 0.0
    hi = max(np.max(p["loss_grid"]) for p in present) if present else 1.0
    for r, label in enumerate(runs):
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
      cs = ax2.contourf(aa, bb, z, levels=np.linspace(lo, hi, 21) if hi > lo else 20,
                        cmap="viridis")
      ax2.plot([0], [0], "w+", ms=8)
      m = p["metrics"]
      ax2.set(xlabel="α (spike)", ylabel="β (bulk)")
      ax2.set_title(f"center {m['center_loss']:.3f}, spike range {m['spike_range']:.3g}",
                    fontsize=8)
      fig.colorbar(cs, ax=ax2, fraction=0.046)
  fig.suptitle("Loss landscape along gradient spike (α) and bulk (β) directions")
  fig.tight_layout()
  return fig
