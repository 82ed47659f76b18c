"""Every experiment of one scale, then REPORT.md (claims, verdicts, figures, provenance).

  python -m experiments.reproduce --scale=cpu --out_dir=out/report_cpu [--resume]
  python -m experiments.reproduce --scale=gpu --out_dir=results/gpu --list
  python -m experiments.reproduce --scale=gpu --out_dir=SHARED --resume --only=SLICE

cpu: one experiment per paper figure at the binaries' small defaults (estimates per
experiment: --list). gpu: the paper-scale report as slices of at most ~8 device minutes
(muon_jax.paper.registry.GPU_SLICES); run one slice per job against a shared --out_dir, in any
order and on any machine, and re-render with `--resume` and no --only. Without an accelerator,
--scale=gpu finishes only slices whose cells are all stored (pass --allow_cpu to simulate).
Writes <out_dir>/REPORT.md, summary.json and <out_dir>/<experiment>/.
"""

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import flags  # noqa: E402

from experiments import cli  # noqa: E402
from muon_jax.paper import reproduce  # noqa: E402

flags.DEFINE_enum(
  "scale",
  "cpu",
  list(reproduce.SCALES),
  "Which configs to run: cpu, about "
  + f"{sum(e.minutes['cpu'] for e in reproduce.experiments_at('cpu')):.0f} min on 2 CPU cores; "
  + f"gpu, about {sum(e.minutes['gpu'] for e in reproduce.experiments_at('gpu')):.0f} device "
  + "minutes on one H100/H200 in slices (--list gives each experiment's estimate).",
)
flags.DEFINE_string("out_dir", "out/reproduce", "Report folder.")
flags.DEFINE_bool("resume", False, "Reuse finished experiments and stored cells in out_dir.")
flags.DEFINE_list("only", [], "Run only these experiments or slices (default all; see --list).")
flags.DEFINE_bool("list", False, "Print every experiment of --scale with its estimate and state.")
flags.DEFINE_float(
  "max_minutes",
  None,
  "Start no experiment whose estimate exceeds the minutes left of this budget.",
  lower_bound=0,
)
flags.DEFINE_bool(
  "allow_cpu", False, "With --scale=gpu on a machine without an accelerator, simulate anyway."
)
FLAGS = flags.FLAGS


def _print_list(scale: str, out_dir: str) -> None:
  for row in reproduce.slice_states(scale, out_dir):
    state = row["state"]
    if state in ("partial", "stored"):
      state = f"{state} {row['stored']} of {row['total']} cells"
    minutes = "?" if row["minutes"] is None else f"{row['minutes']:.1f}"
    print(f"{row['name']:34s} {minutes:>5s} min ({scale})  {state:28s} {row['paper']}")


def main(argv):
  import jax

  from muon_jax.infra import lock, results

  results.forbid_world_writable()
  with cli.flag_errors():
    if argv[1:]:
      raise ValueError(f"unexpected arguments {argv[1:]}")
    reproduce.check(FLAGS.scale, tuple(FLAGS.only))
  without_accelerator = FLAGS.scale == "gpu" and jax.default_backend() == "cpu"
  if without_accelerator:
    print(
      "warning: --scale=gpu without an accelerator: the estimates are GPU minutes, and a run "
      "finishes only slices whose cells are all stored (--allow_cpu simulates the rest here)",
      file=sys.stderr,
    )
  if FLAGS.list:
    _print_list(FLAGS.scale, FLAGS.out_dir)
    return
  with cli.flag_errors():
    cli.check_out_dir(FLAGS.out_dir)
  compute = not without_accelerator or FLAGS.allow_cpu
  command = ["python", "-m", "experiments.reproduce", *sys.argv[1:]]
  try:
    summary = reproduce.run_all(
      FLAGS.scale,
      FLAGS.out_dir,
      argv=command,
      resume=FLAGS.resume,
      only=tuple(FLAGS.only),
      compute=compute,
      max_minutes=FLAGS.max_minutes,
    )
  except lock.LockHeld as e:  # another job is on this experiment: its own slice stays its own
    print(cli.flag_message(e), file=sys.stderr)
    sys.exit(cli.EXIT_BAD_INPUT)
  rows = [c for e in summary["experiments"].values() for c in e["claims"]]
  print(cli.claims_headline(rows))
  if summary["pending"]:
    print(f"pending: {', '.join(r['name'] for r in summary['pending'])} (see --list)")
  print(
    f"wrote {os.path.join(FLAGS.out_dir, reproduce.REPORT_NAME)} (figures in each experiment's folder)"
  )


if __name__ == "__main__":
  cli.run(main, stoppable=True)
