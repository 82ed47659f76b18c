"""Saddle-escape grid: is Muon's escape time dimension-free? (Sec 4.1, Figs 1, 5).

  python -m experiments.saddle_escape --out_dir out/saddle_escape
  python -m experiments.saddle_escape --out_dir D --resume   # after a kill or Ctrl-C

Maps flags to `muon_jax.paper.saddle.SaddleConfig` (one flag per field; --help
lists them with ranges and defaults), runs `saddle.run` (saddle_escape.json rewritten
atomically after every compiled group; --resume reuses its cells), then
writes the results with the paper's claims (`saddle.claims`) and the figures
of `muon_jax.paper.figures.saddle`. Wall-clock numbers go to
saddle_escape_timing.json so the results JSON is identical however the run
was interrupted. SIGINT / SIGTERM stop it after the group in progress is saved,
with exit status 75 and the command that resumes it.
"""

import os
import time

from absl import flags

from experiments import cli
from muon_jax.paper import saddle

FLAGS = cli.define_flags(saddle.SaddleConfig)
flags.DEFINE_string("out_dir", "out/saddle_escape", "Output folder.")
flags.DEFINE_bool(
  "resume",
  False,
  "Reuse the cells of saddle_escape.json in --out_dir (written with the same settings).",
)

RESULT = "saddle_escape.json"
TIMING = "saddle_escape_timing.json"


def main(argv):
  from muon_jax.infra import results
  from muon_jax.paper.figures import saddle as saddle_figures

  path = os.path.join(FLAGS.out_dir, RESULT)
  with cli.flag_errors():
    if argv[1:]:
      raise ValueError(f"unexpected arguments {argv[1:]}")
    cfg = cli.config_from_flags(saddle.SaddleConfig)
    cli.note_fresh_start(FLAGS.resume, path)
    cli.claim_out_dir(FLAGS.out_dir)
    if FLAGS.resume:
      try:
        saddle.resumable_cells(cfg, path)
      except ValueError as e:
        raise ValueError(f"resume: {e}; use another out_dir or drop resume") from None
  start = time.perf_counter()
  doc = saddle.run(cfg, checkpoint=path, resume=FLAGS.resume)
  doc["claims"] = saddle.claims(doc)
  cli.write_results(FLAGS.out_dir, RESULT, doc, saddle_figures.figures(doc))
  results.atomic_write_json(
    os.path.join(FLAGS.out_dir, TIMING), {"total_seconds": round(time.perf_counter() - start, 2)}
  )


if __name__ == "__main__":
  cli.run(main, stoppable=True)
