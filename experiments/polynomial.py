"""Executable theory: Lemma 2/3 constants, Section 10.1 shrinkage, Section 10.2 / Lemma 9.

  python -m experiments.polynomial --out_dir out/polynomial

Writes polynomial.json (keys named after the lemma: lemma2.delta0,
lemma2.min_ratio_small, ..., lemma3.radius, sec10_1, lemma9, claims) and
figures rho_<preset>.png, cobweb.png, robustness.png, bbp.png. All math lives
in muon_jax.paper.theory.
"""

import os

# LAPACK on a shared 2-core machine: multithreaded SVDs oversubscribe the cores
# and run several times slower than single-threaded ones.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import flags  # noqa: E402

from experiments import cli  # noqa: E402
from muon_jax.paper import theory  # noqa: E402
from muon_jax.paper.figures import polynomial as figures  # noqa: E402

FLAGS = cli.define_flags(theory.PolynomialConfig)
flags.DEFINE_string("out_dir", "out/polynomial", "Where polynomial.json and the PNGs go.")


def main(argv):
  del argv
  with cli.flag_errors():
    cfg = cli.config_from_flags(theory.PolynomialConfig)
    theory.check_config(cfg)
    cli.claim_out_dir(FLAGS.out_dir)
  res = theory.run(cfg)
  res["claims"] = theory.claims(res)
  cli.write_results(FLAGS.out_dir, "polynomial.json", res, figures.figures(res))


if __name__ == "__main__":
  cli.run(main)
