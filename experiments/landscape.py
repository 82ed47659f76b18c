"""Figures 3 and 4: online landscape probes of AdamW vs Muon LLaMA training.

  python -m experiments.landscape                        # tiny LLaMA on CPU, ~10 min
  python -m experiments.landscape --from_runs=runs/adamw,runs/muon   # draw existing runs

Without --from_runs, trains the model once per --optimizers entry through
`muon_jax.train.train` with probes (`muon_jax.landscape.probe`) at
--probe_steps, into --out_dir/<optimizer>/. Then (either way) it reads every
run's probe_step*.json and writes to --out_dir:
  fig3_kinematics.png  effective rank, spike range, center loss vs step (paper Fig 3)
  fig4_surfaces.png    3D surface + contour per run and milestone (paper Fig 4)
  landscape.json       per-run metrics per probe step and the verdicts on the
                       paper's three claims (`landscape.kinematic_claims`).
The CPU defaults shrink the paper's probe (50 grad / 10 eval batches, 41x41
grid, bulk pair 500, layer 10 of 12) to 8 / 4 batches of 8 sequences on the
last of the tiny model's 2 layers; paper scale is --model=160m
--probe_path=layers/9/mlp/down_proj --probe_grad_batches=50 ... on a GPU.
"""

import os
import time

from absl import app, flags, logging

from muon_jax import validate

flags.DEFINE_list("from_runs", [], "Existing run dirs to draw instead of training.")
flags.DEFINE_list("labels", [], "Labels for --from_runs (default: each run's optimizer from "
                  "summary.json, else the dir name). 'adamw' and 'muon' get the claim check.")
flags.DEFINE_string("out_dir", "out/landscape", "Where runs, figures and landscape.json go.")
flags.DEFINE_list("optimizers", ["adamw", "muon"], "Runs to train (adamw, muon).")
flags.DEFINE_enum("model", "tiny", ["tiny", "160m"], "LLaMA preset.")
flags.DEFINE_integer("steps", 300, "Training steps per run, >= 1.")
flags.DEFINE_list("probe_steps", ["10", "100", "300"], "Steps (after the update) to probe at.")
flags.DEFINE_integer("global_batch", 16, "Sequences per step, >= 1.")
flags.DEFINE_integer("seq_len", 128, "Tokens per sequence, >= 1.")
flags.DEFINE_float("lr", 1e-3, "AdamW peak LR (AdamW run), > 0.")
flags.DEFINE_float("muon_lr", 1e-3, "Muon peak LR (Muon run), > 0.")
flags.DEFINE_string("corpus", "stdlib", "Corpus spec (see muon_jax.data).")
flags.DEFINE_string("tokenizer", "bytes", "Tokenizer spec (see muon_jax.data).")
flags.DEFINE_integer("seed", 0, "Seed for init, data order and the probe stream.")
flags.DEFINE_boolean("resume", False, "Resume runs from their checkpoints; finished probes are "
                     "not redone.")
flags.DEFINE_string("probe_path", "layers/1/mlp/down_proj", "Target matrix (0-based layer).")
flags.DEFINE_integer("probe_grad_batches", 8, "Batches averaged for the exact gradient (paper 50).")
flags.DEFINE_integer("probe_eval_batches", 4, "Batches averaged per grid point (paper 10).")
flags.DEFINE_integer("probe_batch", 8, "Sequences per probe batch (0: the trainer's micro batch).")
flags.DEFINE_integer("probe_bulk_index", 500, "1-based bulk singular pair (paper 500; mid-spectrum "
                     "when the matrix is smaller).")
flags.DEFINE_integer("probe_grid", 41, "Grid points per axis (paper 41), >= 3.")
flags.DEFINE_list("probe_alpha_range", ["-1", "1"], "Spike-axis range low,high.")
flags.DEFINE_list("probe_beta_range", ["-1", "1"], "Bulk-axis range low,high.")
flags.DEFINE_string("probe_normalization", "unit", "Direction scale: unit | spectral | frobenius.")
flags.DEFINE_integer("probe_chunk", 32, "Grid points vmapped per device per call, >= 1.")
FLAGS = flags.FLAGS


def _range(name):
  values = validate.parse_list(name, getattr(FLAGS, name), float)
  if len(values) != 2:
    raise validate.FlagError(f"--{name} needs exactly two numbers low,high")
  return tuple(values)


def probe_config():
  from muon_jax import landscape
  cfg = landscape.ProbeConfig(
      path=FLAGS.probe_path, grad_batches=FLAGS.probe_grad_batches,
      eval_batches=FLAGS.probe_eval_batches, bulk_index=FLAGS.probe_bulk_index,
      grid=FLAGS.probe_grid, alpha_range=_range("probe_alpha_range"),
      beta_range=_range("probe_beta_range"), normalization=FLAGS.probe_normalization,
      chunk=FLAGS.probe_chunk)
  landscape.validate_probe_config(cfg)
  return cfg


def train_runs(cfg_probe) -> dict:
  """Trains one run per optimizer with probes; returns {label: run_dir}."""
  from flax import nnx

  from muon_jax import landscape
  from muon_jax import train as train_lib
  from muon_jax.models import llama

  validate.check_choices("optimizers", FLAGS.optimizers, train_lib.OPTIMIZERS)
  probe_steps = tuple(validate.parse_list("probe_steps", FLAGS.probe_steps, int))
  configs = {}
  for opt in FLAGS.optimizers:
    cfg = train_lib.TrainConfig(
        model=FLAGS.model, optimizer=opt, steps=FLAGS.steps, global_batch=FLAGS.global_batch,
        seq_len=FLAGS.seq_len, lr=FLAGS.lr, muon_lr=FLAGS.muon_lr, seed=FLAGS.seed,
        corpus=FLAGS.corpus, tokenizer=FLAGS.tokenizer, resume=FLAGS.resume,
        out_dir=os.path.join(FLAGS.out_dir, opt), ckpt_every=0, probe_steps=probe_steps,
        probe=cfg_probe, probe_batch=FLAGS.probe_batch)
    train_lib.validate_config(cfg)
    configs[opt] = cfg
  # The target path is checked on an abstract model, before anything compiles.
  abstract = nnx.eval_shape(lambda: llama.Llama(llama.PRESETS[FLAGS.model](),
                                                rngs=nnx.Rngs(0)))
  landscape.check_probe(abstract, cfg_probe)
  for opt, cfg in configs.items():
    logging.info("training %s for %d steps, probes at %s", opt, cfg.steps, probe_steps)
    summary = train_lib.train(cfg)
    logging.info("%s: final loss %s (%s)", opt, summary["final_loss"], summary["status"])
  return {opt: cfg.out_dir for opt, cfg in configs.items()}


def label_of(run_dir: str) -> str:
  from muon_jax import results
  summary = results.load_json(os.path.join(run_dir, "summary.json"), {})
  return summary.get("optimizer") or os.path.basename(os.path.normpath(run_dir))


def run():
  t0 = time.time()
  if FLAGS.from_runs:
    for d in FLAGS.from_runs:
      if not os.path.isdir(d):
        raise validate.FlagError(f"--from_runs: {d!r} is not a directory")
    if FLAGS.labels and len(FLAGS.labels) != len(FLAGS.from_runs):
      raise validate.FlagError(f"--labels has {len(FLAGS.labels)} entries for "
                               f"{len(FLAGS.from_runs)} --from_runs")
    labels = FLAGS.labels or [label_of(d) for d in FLAGS.from_runs]
    if len(set(labels)) != len(labels):
      raise validate.FlagError(f"run labels {labels} are not unique; pass --labels")
    run_dirs = dict(zip(labels, FLAGS.from_runs))
    probe_cfg = None
  else:
    validate.check_range("steps", FLAGS.steps, low=1)
    probe_cfg = probe_config()
    run_dirs = train_runs(probe_cfg)

  import dataclasses

  from muon_jax import landscape, plotting, results
  runs = {label: landscape.load_probes(d) for label, d in run_dirs.items()}
  empty = [label for label, probes in runs.items() if not probes]
  if empty:
    raise validate.FlagError(f"no probe_step*.json in the runs of {empty}")
  claims = landscape.kinematic_claims(runs)
  out = {
      "runs": {label: {"dir": run_dirs[label],
                       "final_loss": results.load_json(os.path.join(run_dirs[label],
                                                                    "summary.json"), {})
                       .get("final_loss"),
                       "probes": [{"step": p["step"], "path": p["path"],
                                   "bulk_index_used": p["bulk_index_used"], **p["metrics"]}
                                  for p in probes]}
               for label, probes in runs.items()},
      "claims": claims,
      "probe_config": dataclasses.asdict(probe_cfg) if probe_cfg else next(
          iter(runs.values()))[0]["config"],
      "runtime_s": time.time() - t0,
  }
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  results.save_figure(plotting.kinematics_figure(runs),
                      os.path.join(FLAGS.out_dir, "fig3_kinematics.png"))
  results.save_figure(plotting.surfaces_figure(runs),
                      os.path.join(FLAGS.out_dir, "fig4_surfaces.png"))
  results.atomic_write_json(os.path.join(FLAGS.out_dir, "landscape.json"), out)
  for label, r in out["runs"].items():
    for p in r["probes"]:
      print(f"{label:6s} step {p['step']:6d}  eff.rank {p['effective_rank']:.4f}  spike range "
            f"{p['spike_range']:.4g} (rel {p['spike_range_rel']:.3g})  bulk range "
            f"{p['bulk_range']:.3g}  center loss {p['center_loss']:.4f}")
  if claims["available"]:
    for name in ("higher_effective_rank", "spike_range_collapse", "lower_center_loss"):
      print(f"claim {name}: {'holds' if claims[name]['holds'] else 'does NOT hold'} "
            f"at step {claims['final_step']}")
  print(f"wrote {FLAGS.out_dir}/landscape.json, fig3_kinematics.png, fig4_surfaces.png "
        f"({time.time() - t0:.0f}s)")


def main(argv):
  del argv
  validate.run_or_exit(run)


if __name__ == "__main__":
  app.run(main)
