"""Executable theory: Lemma 2/3 constants, Section 10.1 shrinkage, Section 10.2 / Lemma 9.

  python -m experiments.polynomial --out_dir out/polynomial

Writes polynomial.json (keys named after the lemma: lemma2.delta0,
lemma2.min_ratio_small, ..., lemma3.radius, sec10_1, lemma9) and figures:
rho_<preset>.png (rho and rho^(5)), cobweb.png, robustness.png, bbp.png
(sin theta vs n and vs SNR). All math lives in muon_jax.theory.
"""

import os

# LAPACK on a shared 2-core machine: multithreaded SVDs oversubscribe the cores
# and run several times slower than single-threaded ones.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from muon_jax import validate  # noqa: E402

flags.DEFINE_string("out_dir", "out/polynomial", "Where polynomial.json and the PNGs go.")
flags.DEFINE_integer("seed", 0, "Seed of every random draw (jax.random key).")
flags.DEFINE_list("presets", ["kimi", "dion", "polar_express"], "NS coefficient presets to analyse.")
flags.DEFINE_integer("grid", 200_001, "Grid points for the Lemma 2 minima, in [1001, 10000001].")
flags.DEFINE_integer("levels", 5, "Lemma 3: grid points per axis of the eps-box, in [2, 11] (corners included).")
flags.DEFINE_integer("spike_m", 256, "Section 10.1 rows m, in [8, 4096], m <= spike_n.")
flags.DEFINE_integer("spike_n", 512, "Section 10.1 columns n, in [8, 4096].")
flags.DEFINE_integer("spike_rank", 2, "Section 10.1 signal rank, in [1, spike_m].")
flags.DEFINE_list("spike_thetas", ["0.5", "1", "2", "4"], "Section 10.1 signal strengths (bulk-edge units), > 0.")
flags.DEFINE_integer("spike_trials", 3, "Section 10.1 trials per strength, in [1, 100].")
flags.DEFINE_list("sweep_ns", ["64", "128", "256", "512"], "Section 10.2 dimensions n, in [16, 4096], >= 2 distinct.")
flags.DEFINE_list("sweep_thetas", ["1.5", "3"], "Section 10.2 signal strengths at the smallest n, > 0.")
flags.DEFINE_list("sweep_normalizations", ["fixed_signal", "proportional", "frobenius"],
                  "Section 10.2 SNR scalings with n.")
flags.DEFINE_float("sweep_beta", 1.0, "Section 10.2 aspect ratio m/n, in (0, 1].")
flags.DEFINE_integer("sweep_trials", 4, "Section 10.2 trials per (n, theta), in [2, 100].")
flags.DEFINE_integer("n_boot", 500, "Bootstrap resamples of the exponent CI, in [0, 100000].")
FLAGS = flags.FLAGS


def _validate():
  from muon_jax.newton_schulz import PRESETS
  from muon_jax.theory import NORMALIZATIONS
  presets = validate.parse_list("presets", FLAGS.presets, str)
  validate.check_choices("presets", presets, PRESETS)
  validate.check_range("grid", FLAGS.grid, low=1001, high=10_000_001)
  validate.check_range("levels", FLAGS.levels, low=2, high=11)
  validate.check_range("spike_n", FLAGS.spike_n, low=8, high=4096)
  validate.check_range("spike_m", FLAGS.spike_m, low=8, high=FLAGS.spike_n)
  validate.check_range("spike_rank", FLAGS.spike_rank, low=1, high=FLAGS.spike_m)
  thetas = validate.parse_list("spike_thetas", FLAGS.spike_thetas, float)
  validate.check_range("spike_thetas", thetas, low=0, low_inclusive=False, high=1e6)
  validate.check_range("spike_trials", FLAGS.spike_trials, low=1, high=100)
  ns = validate.parse_list("sweep_ns", FLAGS.sweep_ns, int)
  validate.check_range("sweep_ns", ns, low=16, high=4096)
  if len(set(ns)) < 2:
    raise validate.FlagError("--sweep_ns needs at least 2 distinct dimensions to fit an exponent")
  sweep_thetas = validate.parse_list("sweep_thetas", FLAGS.sweep_thetas, float)
  validate.check_range("sweep_thetas", sweep_thetas, low=0, low_inclusive=False, high=1e6)
  norms = validate.parse_list("sweep_normalizations", FLAGS.sweep_normalizations, str)
  validate.check_choices("sweep_normalizations", norms, NORMALIZATIONS)
  validate.check_range("sweep_beta", FLAGS.sweep_beta, low=0, low_inclusive=False, high=1)
  validate.check_range("sweep_trials", FLAGS.sweep_trials, low=2, high=100)
  validate.check_range("n_boot", FLAGS.n_boot, low=0, high=100_000)
  return dict(
      presets=tuple(presets), grid=FLAGS.grid, levels=FLAGS.levels, n_boot=FLAGS.n_boot,
      spike=dict(m=FLAGS.spike_m, n=FLAGS.spike_n, rank=FLAGS.spike_rank, thetas=tuple(thetas),
                 trials=FLAGS.spike_trials),
      sweep=dict(ns=tuple(sorted(set(ns))), thetas=tuple(sweep_thetas), beta=FLAGS.sweep_beta,
                 normalizations=tuple(norms), trials=FLAGS.sweep_trials))


def _figures(report, out_dir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  from muon_jax import results, theory

  x = np.linspace(0, 1.3, 2001)
  for name, d in report["presets"].items():
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    coeffs = d["lemma2"]["coeffs"]
    for k, row in enumerate(coeffs):
      ax[0].plot(x, theory.quintic(row)(x), lw=1, label=f"step {k + 1}" if len(coeffs) > 1 else "rho")
    ax[0].plot(x, x, "k:", lw=0.8)
    ax[0].set(title=f"{name}: rho(x)", xlabel="x", ylim=(-0.2, 2.0))
    ax[0].legend(fontsize=7)
    xl = np.geomspace(1e-5, 1.0, 2001)
    ax[1].semilogx(xl, theory.iterate(coeffs, len(coeffs))(xl), label="rho^(5)")
    ax[1].axvline(d["lemma2"]["delta0"], color="g", ls="--", lw=0.8, label="delta0")
    ax[1].axhline(theory.PAPER_FIFTH_LOWER, color="r", ls=":", lw=0.8, label="0.03")
    ax[1].axvspan(*theory.PAPER_MIDDLE, color="y", alpha=0.15, label="middle interval")
    ax[1].set(title=f"{name}: rho^(5)(x)", xlabel="x")
    ax[1].legend(fontsize=7)
    results.save_figure(fig, os.path.join(out_dir, f"rho_{name}.png"))

  main = "kimi" if "kimi" in report["presets"] else next(iter(report["presets"]))
  l2 = report["presets"][main]["lemma2"]
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
  results.save_figure(fig, os.path.join(out_dir, "cobweb.png"))

  l3 = report["presets"][main]["lemma3"]
  r = max(l3["radius"], 1e-3)
  worst = l3.get("worst_perturbation") or [0.0, 0.0, 0.0]
  grid = np.linspace(-3 * r, 3 * r, 61)
  mask = theory.robustness_slice(main, da=grid, dc=grid, db=worst[1])
  fig, ax = plt.subplots(figsize=(5, 4.5))
  ax.contourf(grid, grid, mask.astype(float), levels=[-0.5, 0.5, 1.5], colors=["#f4a6a6", "#a6d8a6"])
  ax.plot([-r, r, r, -r, -r], [-r, -r, r, r, -r], "k--", lw=1, label=f"eps-box, radius {l3['radius']:.4f}")
  ax.plot(worst[0], worst[2], "kx", label="worst perturbation")
  ax.set(title=f"{main}: Lemma 3 pass (green) / fail, db={worst[1]:+.4f}", xlabel="da", ylabel="dc")
  ax.legend(fontsize=7)
  results.save_figure(fig, os.path.join(out_dir, "robustness.png"))

  l9 = report["lemma9"]
  fig, ax = plt.subplots(1, 2, figsize=(11, 4))
  for nm, per_theta in l9["summary"].items():
    for th, d in per_theta.items():
      line, = ax[0].loglog(l9["ns"], d["sin_mean"], "o-", label=f"{nm}, theta={th}: n^{d['exponent']['exponent']:.2f}")
      ax[0].loglog(l9["ns"], np.maximum(d["sin_bgn_limit"], 1e-3), "--", color=line.get_color(), lw=0.8)
      ax[1].plot(d["theta_eff"], d["sin_mean"], "o", color=line.get_color())
  te = np.linspace(0.05, max(max(d["theta_eff"]) for v in l9["summary"].values() for d in v.values()), 400)
  c2l, c2r = theory.bgn_cos2(te, l9["beta"])
  ax[1].plot(te, np.sqrt(1 - np.minimum(c2l, c2r)), "k-", lw=1, label="BGN limit")
  ax[1].axvline(l9["beta"] ** 0.25, color="r", ls=":", label="BBP threshold")
  ax[0].set(title="sin theta vs n (dashed: BGN limit)", xlabel="n", ylabel="sin theta")
  ax[0].legend(fontsize=6)
  ax[1].set(title="sin theta vs effective SNR", xlabel="theta_eff (bulk-edge units)", ylabel="sin theta")
  ax[1].legend(fontsize=7)
  results.save_figure(fig, os.path.join(out_dir, "bbp.png"))


def run():
  cfg = _validate()
  import jax

  from muon_jax import results, theory

  start = time.time()
  logging.info("polynomial report: %s", cfg)
  report = theory.polynomial_report(jax.random.PRNGKey(FLAGS.seed), **cfg)
  report["config"] = {**cfg, "seed": FLAGS.seed}
  logging.info("theory done in %.1fs; drawing figures", time.time() - start)
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  _figures(report, FLAGS.out_dir)
  report["runtime_s"] = time.time() - start
  path = os.path.join(FLAGS.out_dir, "polynomial.json")
  results.atomic_write_json(path, report)
  print(f"delta0 {report['lemma2.delta0']:.4g}  min_ratio {report['lemma2.min_ratio_small']:.2f}  "
        f"min_fifth {report['lemma2.min_fifth_iterate_middle']:.4f}  I {report['lemma2.invariant_interval']}  "
        f"radius {report['lemma3.radius']:.4f}  ({report['runtime_s']:.0f}s) -> {path}")


def main(argv):
  del argv
  validate.run_or_exit(run)


if __name__ == "__main__":
  app.run(main)
