"""Every experiment at one scale, then REPORT.md (claims, verdicts, figures, provenance).

  python -m experiments.reproduce --scale=cpu --out_dir=results/cpu [--resume]

cpu: the CPU defaults (11.5 minutes on 2 shared cores); gpu: paper-scale configs
(see muon_jax.paper.reproduce.EXPERIMENTS). Writes <out_dir>/REPORT.md, summary.json
and <out_dir>/<experiment>/ (figures, results.json, work files).
"""

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import flags  # noqa: E402

from experiments import cli  # noqa: E402
from muon_jax.paper import reproduce  # noqa: E402

flags.DEFINE_enum("scale", "cpu", list(reproduce.SCALES), "Which configs to run.")
flags.DEFINE_string("out_dir", "out/reproduce", "Report folder.")
flags.DEFINE_bool("resume", False, "Reuse finished experiments and units in out_dir.")
flags.DEFINE_list(
  "only",
  [],
  "Run only these experiments (default all: "
  + ",".join(e.name for e in reproduce.EXPERIMENTS)
  + ").",
)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  with cli.flag_errors():
    cli.check_out_dir(FLAGS.out_dir)
    reproduce.check(FLAGS.scale, tuple(FLAGS.only))
  command = ["python", "-m", "experiments.reproduce", *sys.argv[1:]]
  summary = reproduce.run_all(
    FLAGS.scale, FLAGS.out_dir, argv=command, resume=FLAGS.resume, only=tuple(FLAGS.only)
  )
  rows = [c for e in summary["experiments"].values() for c in e["claims"]]
  print(
    f"{len(rows)} claims, {sum(c['reproduces'] is True for c in rows)} reproduce; "
    f"wrote {os.path.join(FLAGS.out_dir, reproduce.REPORT_NAME)}"
  )


if __name__ == "__main__":
  cli.run(main)
