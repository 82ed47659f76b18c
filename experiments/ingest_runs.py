"""Brings saddle_escape runs made elsewhere into a report folder as the cells of its GPU slices.

  python -m experiments.ingest_runs --source=results/gpu/sources/h200-2026-12-04.json \
      --runs_dir=../shared/gpu-runs/h200-2026-12-04 --out_dir=results/gpu

--source is a JSON file naming, per run folder, the slice it belongs to, the command that made
it and its wall time, plus the machine (device, versions, commit). Each run's config must equal
its slice's config (a field added since, at its default, counts as equal); its cells must lie
on the slice's grid. The cells go to <out_dir>/<slice>/work/cells.json and the run's
provenance to <out_dir>/<slice>/work/provenance.json, where `reproduce --scale=gpu --resume`
reuses them and only the missing cells are simulated.
"""

from absl import flags

from experiments import cli

flags.DEFINE_string("source", None, "JSON description of the runs (machine, commands).")
flags.DEFINE_string("runs_dir", None, "Folder holding one subfolder per run.")
flags.DEFINE_string("out_dir", "results/gpu", "Report folder of the GPU scale.")
FLAGS = flags.FLAGS


def main(argv):
  from muon_jax.infra import results
  from muon_jax.paper import ingest

  with cli.flag_errors():
    if argv[1:]:
      raise ValueError(f"unexpected arguments {argv[1:]}")
    for name in ("source", "runs_dir"):
      if not FLAGS[name].value:
        raise ValueError(f"{name} is required")
    source = results.load_json(FLAGS.source)
    if source is None:
      raise ValueError(f"source={FLAGS.source} does not exist")
    cli.check_out_dir(FLAGS.out_dir)
    lines = ingest.ingest_runs(source, FLAGS.runs_dir, FLAGS.out_dir)
  for line in lines:
    print(line)


if __name__ == "__main__":
  cli.run(main)
