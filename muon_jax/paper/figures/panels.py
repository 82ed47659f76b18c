"""Notes on panels that have nothing (or nothing informative) to draw, and flat log axes.

A panel whose series are all missing (no run crossed, no learning rate qualified, one value
where a fit needs two) is left with a centred note saying why instead of blank axes; a log
axis with nothing drawable becomes linear so that saving cannot fail. `note_empty_panels`
is every figure module's last step, a safety net behind the specific notes.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PathCollection

NOTE_GID = "panel-note"


def _data_points(ax) -> np.ndarray:
  """(k, 2) finite points that ax's data lines and collections draw (reference lines excluded)."""
  chunks = []
  for line in ax.get_lines():
    if line.get_transform() is not ax.transData:  # axhline / axvline: a reference, not data
      continue
    x = np.asarray(line.get_xdata(), dtype=float).ravel()
    y = np.asarray(line.get_ydata(), dtype=float).ravel()
    if x.size == y.size:
      chunks.append(np.stack([x, y], axis=1))
  for c in ax.collections:
    if isinstance(c, PathCollection):  # scatter: its offsets are the data
      chunks.append(np.asarray(c.get_offsets(), dtype=float).reshape(-1, 2))
    else:
      chunks += [np.asarray(p.vertices, dtype=float).reshape(-1, 2) for p in c.get_paths()]
  if not chunks:
    return np.zeros((0, 2))
  points = np.concatenate(chunks)
  ok = np.all(np.isfinite(points), axis=1)
  if ax.get_xscale() == "log":
    ok &= points[:, 0] > 0
  if ax.get_yscale() == "log":
    ok &= points[:, 1] > 0
  return points[ok]


def has_data(ax) -> bool:
  """Whether ax draws any finite data point (or an image / patch)."""
  return bool(len(_data_points(ax)) or ax.images or ax.patches)


def note(ax, text: str, y: float = 0.5) -> None:
  """A boxed note on ax, centred at height `y` (axes fraction); once per panel."""
  if any(t.get_gid() == NOTE_GID for t in ax.texts):
    return
  ax.text(
    0.5,
    y,
    text,
    transform=ax.transAxes,
    ha="center",
    va="center",
    fontsize=9,
    color="0.25",
    wrap=True,
    gid=NOTE_GID,
    bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
  )


def _shared(axis_group, ax) -> bool:
  return len(axis_group.get_siblings(ax)) > 1


def note_if_empty(ax, reason: str) -> bool:
  """Notes `no data: reason` on ax when it draws nothing; returns whether it did.

  Its axes not shared with another panel become plain tick-free linear axes (an empty
  log axis has no limits to draw and fails on save; ticks would suggest a scale).
  """
  if has_data(ax):
    return False
  if not _shared(ax.get_shared_y_axes(), ax):
    ax.set_yscale("linear")
    ax.set_ylim(0, 1)
    ax.set_yticks([])
  if not _shared(ax.get_shared_x_axes(), ax):
    ax.set_xscale("linear")
    ax.set_xlim(0, 1)
    ax.set_xticks([])
  note(ax, f"no data: {reason}")
  return True


def note_empty_panels(figs: dict, reason: str = "nothing to draw in this configuration") -> dict:
  """`note_if_empty` on every panel of every figure (those noted already keep their note)."""
  for fig in figs.values():
    for ax in fig.axes:
      if not any(t.get_gid() == NOTE_GID for t in ax.texts):
        note_if_empty(ax, reason)
  return figs


def widen_flat_limits(ax, factor: float = 2.0) -> None:
  """Sets y limits around a single drawn y value (call before a log scale is applied).

  A log axis over one value (every median censored at the budget) has identical limits,
  which matplotlib widens with a warning on the terminal.
  """
  points = _data_points(ax)
  ys = points[:, 1][points[:, 1] > 0] if len(points) else points
  if len(ys) and np.min(ys) == np.max(ys):
    ax.set_ylim(ys[0] / factor, ys[0] * factor)
