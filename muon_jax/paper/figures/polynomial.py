"""Figures of the executable-theory experiment (Lemma 2, Lemma 3, Sec 10.1, Lemma 9)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from muon_jax.paper import theory  # noqa: E402


def _rho(name: str, d: dict):
  x = np.linspace(0, 1.3, 2001)
  fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
  coeffs = d["lemma2"]["coeffs"]
  for k, row in enumerate(coeffs):
    ax[0].plot(x, theory.quintic(row)(x), lw=1, label=f"step {k + 1}" if len(coeffs) > 1 else "rho")
  ax[0].plot(x, x, "k:", lw=0.8)
  ax[0].set(title=f"{name}: rho(x)", xlabel="x", ylabel="rho(x)", ylim=(-0.2, 2.0))
  ax[0].legend(fontsize=7)
  xl = np.geomspace(1e-5, 1.0, 2001)
  ax[1].semilogx(xl, theory.iterate(coeffs, len(coeffs))(xl), label="rho^(5)")
  ax[1].axvline(d["lemma2"]["delta0"], color="g", ls="--", lw=0.8, label="delta0")
  ax[1].axhline(theory.PAPER_FIFTH_LOWER, color="r", ls=":", lw=0.8, label="0.03")
  ax[1].axvspan(*theory.PAPER_MIDDLE, color="y", alpha=0.15, label="middle interval")
  ax[1].set(title=f"{name}: rho^(5)(x)", xlabel="x", ylabel="rho^(5)(x)")
  ax[1].legend(fontsize=7)
  return fig


def _cobweb(main: str, l2: dict):
  fig, ax = plt.subplots(figsize=(5, 5))
  xs = np.linspace(0, 1.3, 1001)
  ax.plot(xs, theory.quintic(l2["coeffs"][0])(xs), label="rho")
  ax.plot(xs, xs, "k:", lw=0.8)
  orbit = l2["orbit"]
  for k in range(len(orbit) - 1):
    ax.plot([orbit[k], orbit[k]], [orbit[k], orbit[k + 1]], "r", lw=0.8)
    ax.plot([orbit[k], orbit[k + 1]], [orbit[k + 1], orbit[k + 1]], "r", lw=0.8)
  if l2["invariant_interval"]:
    ax.axvspan(*l2["invariant_interval"], color="g", alpha=0.15, label="computed I")
  ax.axvspan(*l2["paper_interval"], color="b", alpha=0.08, label="paper I")
  ax.set(title=f"{main}: orbit from x0={l2['x0']}", xlabel="x", ylabel="rho(x)")
  ax.legend(fontsize=7)
  return fig


def _robustness(main: str, l3: dict):
  r = max(l3["radius"], 1e-3)
  worst = l3.get("worst_perturbation") or [0.0, 0.0, 0.0]
  grid = np.linspace(-3 * r, 3 * r, 61)
  mask = theory.robustness_slice(main, da=grid, dc=grid, db=worst[1])
  fig, ax = plt.subplots(figsize=(5, 4.5))
  ax.contourf(
    grid, grid, mask.astype(float), levels=[-0.5, 0.5, 1.5], colors=["#f4a6a6", "#a6d8a6"]
  )
  ax.plot(
    [-r, r, r, -r, -r], [-r, -r, r, r, -r], "k--", lw=1, label=f"eps-box, radius {l3['radius']:.4f}"
  )
  ax.plot(worst[0], worst[2], "kx", label="worst perturbation")
  ax.set(title=f"{main}: Lemma 3 pass (green) / fail, db={worst[1]:+.4f}", xlabel="da", ylabel="dc")
  ax.legend(fontsize=7)
  return fig


def _bbp(l9: dict):
  fig, ax = plt.subplots(1, 2, figsize=(11, 4))
  for nm, per_theta in l9["summary"].items():
    for th, d in per_theta.items():
      (line,) = ax[0].loglog(
        l9["ns"], d["sin_mean"], "o-", label=f"{nm}, theta={th}: n^{d['exponent']['exponent']:.2f}"
      )
      ax[0].loglog(
        l9["ns"], np.maximum(d["sin_bgn_limit"], 1e-3), "--", color=line.get_color(), lw=0.8
      )
      ax[1].plot(d["theta_eff"], d["sin_mean"], "o", color=line.get_color())
  top = max(max(d["theta_eff"]) for v in l9["summary"].values() for d in v.values())
  te = np.linspace(0.05, top, 400)
  c2l, c2r = theory.bgn_cos2(te, l9["beta"])
  ax[1].plot(te, np.sqrt(1 - np.minimum(c2l, c2r)), "k-", lw=1, label="BGN limit")
  ax[1].axvline(l9["beta"] ** 0.25, color="r", ls=":", label="BBP threshold")
  ax[0].set(title="sin theta vs n (dashed: BGN limit)", xlabel="n", ylabel="sin theta")
  ax[0].legend(fontsize=6)
  ax[1].set(
    title="sin theta vs effective SNR", xlabel="theta_eff (bulk-edge units)", ylabel="sin theta"
  )
  ax[1].legend(fontsize=7)
  return fig


def figures(res: dict) -> dict:
  """{"rho_<preset>", "cobweb", "robustness", "bbp"} figures of a `theory.run` result.

  rho_<preset>: rho and rho^(5) with delta0, the 0.03 bound and the middle
  interval; cobweb: the orbit from x0 of the paper's polynomial; robustness:
  Lemma 3's pass/fail slice around the radius; bbp: sin theta vs n per
  (normalization, theta) with the BGN limit, and vs the effective SNR.
  """
  figs = {f"rho_{name}": _rho(name, d) for name, d in res["presets"].items()}
  main = "kimi" if "kimi" in res["presets"] else next(iter(res["presets"]))
  figs["cobweb"] = _cobweb(main, res["presets"][main]["lemma2"])
  figs["robustness"] = _robustness(main, res["presets"][main]["lemma3"])
  figs["bbp"] = _bbp(res["lemma9"])
  return figs
