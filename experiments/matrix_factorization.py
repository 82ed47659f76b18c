"""Stochastic online matrix factorization (paper Sec 4.2, Figure 2).

  python -m experiments.matrix_factorization --out_dir=out/matrix_factorization

Runs Muon and AdamW on a grid of n (--dims) x kappa (--kappas) x seeds, one
vmapped compile per (optimizer, n), and writes matrix_factorization.json
(traces, rank-expansion steps, exponents with verdicts, claims) and
fig2a..fig2d.png. Each finished (optimizer, n) unit is saved at once;
--resume reuses units whose settings match. SIGINT / SIGTERM stop after the
unit in progress (exit status 75, printing the command that resumes). Paper scale:
--dims=64,128,256,512,1024 --steps=5000.
"""

import os

# jaxlib's CPU LAPACK kernels run on OpenBLAS, whose threads spin under CPU
# contention (a 256x64 QR went 0.4 ms -> 40 ms); one thread is faster here.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import flags  # noqa: E402

from experiments import cli  # noqa: E402
from muon_jax.paper import matrix_factorization as mf  # noqa: E402
from muon_jax.paper.figures import matrix_factorization as figures  # noqa: E402

FLAGS = cli.define_flags(mf.MatrixFactorizationConfig)
flags.DEFINE_string("out_dir", "out/matrix_factorization", "Output folder.")
flags.DEFINE_bool("resume", False, "Reuse finished (optimizer, n) units in out_dir.")


def main(argv):
  del argv
  with cli.flag_errors():
    cfg = cli.config_from_flags(mf.MatrixFactorizationConfig)
    mf.check_config(cfg)
    state_path = os.path.join(FLAGS.out_dir, "units.json")
    cli.note_fresh_start(FLAGS.resume, state_path)
    cli.claim_out_dir(FLAGS.out_dir)
    res = mf.run(cfg, state_path=state_path, resume=FLAGS.resume)
  res["claims"] = mf.claims(res)
  cli.write_results(FLAGS.out_dir, "matrix_factorization.json", res, figures.figures(res))


if __name__ == "__main__":
  cli.run(main, stoppable=True)
