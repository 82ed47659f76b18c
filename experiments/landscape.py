"""Figures 3 and 4: online landscape probes of AdamW vs Muon LLaMA training, over seeds.

  python -m experiments.landscape                  # tiny LLaMA on CPU, 3 seeds per optimizer
  python -m experiments.landscape --run_dirs=runs/adamw,runs/muon    # draw existing runs

Without --run_dirs, trains --seeds runs per optimizer with probes into
--out_dir/<optimizer>/seed<k>/ (muon_jax.paper.landscape). Either way it
writes to --out_dir: landscape.json (per-run metrics per probe step, the
Muon - AdamW differences with CIs, claims), fig3_kinematics.png and
fig4_surfaces.png. SIGINT / SIGTERM checkpoint the run in progress and stop
(exit status 75, printing the command that resumes).
"""

from absl import flags

from experiments import cli
from muon_jax.paper import landscape as lx
from muon_jax.paper.figures import landscape as figures

FLAGS = cli.define_flags(lx.LandscapeConfig)
flags.DEFINE_list(
  "run_dirs",
  [],
  "Existing run folders to draw instead of training (each "
  "labelled by the optimizer in its summary.json; several per optimizer are "
  "its seeds).",
)
flags.DEFINE_string("out_dir", "out/landscape", "Where runs, figures and landscape.json go.")
flags.DEFINE_bool(
  "resume", False, "Resume runs from their checkpoints; finished probes are not redone."
)


def main(argv):
  del argv
  with cli.flag_errors():
    if not FLAGS.run_dirs:
      cli.note_fresh_start(FLAGS.resume, FLAGS.out_dir)
    cli.claim_out_dir(FLAGS.out_dir)
    if FLAGS.run_dirs:
      res = lx.collect(FLAGS.run_dirs)
    else:
      cfg = cli.config_from_flags(lx.LandscapeConfig)
      lx.check_config(cfg)
  if not FLAGS.run_dirs:
    res = lx.run(cfg, FLAGS.out_dir, resume=FLAGS.resume)
  res["claims"] = lx.claims(res)
  cli.write_results(FLAGS.out_dir, "landscape.json", res, figures.figures(res))


if __name__ == "__main__":
  cli.run(main, stoppable=True)
