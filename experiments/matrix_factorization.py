"""Stochastic online matrix factorization (paper Sec 4.2, Figure 2).

  python -m experiments.matrix_factorization --out_dir=out/matrix_factorization

Runs Muon and AdamW on a grid of n (--dims) x kappa (--conditions) x seeds,
one vmapped compile per (optimizer, n), and writes matrix_factorization.json
(traces, rank-expansion steps, exponent fits, verdicts) and fig2a..fig2d.png.
Each finished (optimizer, n) unit is saved at once; --resume skips units whose
settings match. Paper scale: --dims=64,128,256,512,1024 --steps=5000 (see
BUILD_NOTES for the reconstructed constants).
"""

import dataclasses
import os
import time

# jaxlib's CPU LAPACK kernels run on OpenBLAS, whose threads spin under CPU
# contention (a 256x64 QR went 0.4 ms -> 40 ms); one thread is faster here.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import app, flags, logging

from muon_jax import matrix_factorization as mf
from muon_jax import results, validate

FLAGS = flags.FLAGS
flags.DEFINE_string("dims", "64,128,256", "matrix sizes n")
flags.DEFINE_string("conditions", "10,100,1000", "condition numbers kappa of the target spectrum")
flags.DEFINE_integer("rank", 64, "estimator rank r (capped at n)")
flags.DEFINE_integer("batch", 64, "inputs per step")
flags.DEFINE_integer("steps", 2000, "training steps (the cosine schedule spans them); paper: 5000")
flags.DEFINE_integer("seeds", 3, "independent seeds per (n, kappa)")
flags.DEFINE_string("optimizers", "muon,adamw", "subset of muon,adamw")
flags.DEFINE_string("out_dir", "out/matrix_factorization", "output folder")
flags.DEFINE_bool("resume", False, "reuse finished (optimizer, n) units in out_dir")
flags.DEFINE_integer("seed", 0, "root PRNG seed")
flags.DEFINE_integer("active_rank", 2, "columns of U, V with the moderate init")
flags.DEFINE_float("init_active_std", 1e-2, "std of the active columns")
flags.DEFINE_float("init_dormant_std", 1e-5, "std of the dormant columns (microscopic)")
flags.DEFINE_float("mask_decay", 5.0, "feature i survives with p_i = exp(-mask_decay * i / n)")
flags.DEFINE_float("muon_lr", 0.02, "Muon peak learning rate")
flags.DEFINE_float("muon_beta", 0.95, "Muon momentum")
flags.DEFINE_float("adamw_lr", 1e-3, "AdamW peak learning rate")
flags.DEFINE_float("adamw_b1", 0.9, "AdamW beta1")
flags.DEFINE_float("adamw_b2", 0.999, "AdamW beta2")
flags.DEFINE_float("adamw_eps", 1e-8, "AdamW epsilon")
flags.DEFINE_float("adamw_weight_decay", 0.01, "AdamW decoupled weight decay")
flags.DEFINE_integer("dense_steps", 200, "record metrics every step up to here")
flags.DEFINE_integer("log_every", 10, "then every this many steps")
flags.DEFINE_float("threshold_factor", 2.0, "rank expansion = erank >= factor x initial erank")

JSON_NAME = "matrix_factorization.json"


def main(argv):
  del argv
  dims = validate.parse_list("dims", FLAGS.dims, int)
  kappas = validate.parse_list("conditions", FLAGS.conditions, float)
  optimizers = validate.parse_list("optimizers", FLAGS.optimizers, str)
  base = mf.Config(n=0, rank=FLAGS.rank, batch=FLAGS.batch, steps=FLAGS.steps,
                   active_rank=FLAGS.active_rank, active_std=FLAGS.init_active_std,
                   dormant_std=FLAGS.init_dormant_std, mask_decay=FLAGS.mask_decay,
                   muon_lr=FLAGS.muon_lr, muon_beta=FLAGS.muon_beta, adamw_lr=FLAGS.adamw_lr,
                   adamw_b1=FLAGS.adamw_b1, adamw_b2=FLAGS.adamw_b2, adamw_eps=FLAGS.adamw_eps,
                   adamw_weight_decay=FLAGS.adamw_weight_decay, dense_steps=FLAGS.dense_steps,
                   log_every=FLAGS.log_every)
  mf.validate_settings(base, dims, kappas, optimizers, FLAGS.seeds, FLAGS.threshold_factor)

  path = os.path.join(FLAGS.out_dir, JSON_NAME)
  settings = {k: v for k, v in dataclasses.asdict(base).items() if k not in ("n", "optimizer")}
  settings.update(seed=FLAGS.seed, seeds=FLAGS.seeds, conditions=kappas)
  saved = {"units": {}}
  if FLAGS.resume:
    saved = results.load_json(path, saved)
    if saved["units"] and saved.get("settings") != settings:
      raise validate.FlagError(
          f"--resume: {path} was made with different settings {saved.get('settings')}; "
          "use another --out_dir or drop --resume")
  steps_R = mf.record_steps(base)
  doc = {"settings": settings, "record_steps": steps_R.tolist(), "units": dict(saved["units"]),
         "complete": False}
  units = {}
  for opt in optimizers:
    for n in dims:
      name = f"{opt}/n{n}"
      if name in doc["units"]:
        logging.info("resume: %s already done", name)
        units[(opt, n)] = mf.unit_from_json(doc["units"][name])
        continue
      start = time.time()
      out = mf.run_grid(dataclasses.replace(base, n=n, optimizer=opt), FLAGS.seed, FLAGS.seeds,
                        kappas)
      units[(opt, n)] = out
      doc["units"][name] = mf.unit_to_json(out)
      doc.setdefault("nonfinite", {})[name] = mf.nonfinite_count(out)
      results.atomic_write_json(path, doc)
      logging.info("%s: %d runs x %d steps in %.1fs; final erank %.1f, rel loss %.2e", name,
                   FLAGS.seeds * len(kappas), FLAGS.steps, time.time() - start,
                   out["erank_R"][..., -1].mean(), out["rel_loss_R"][..., -1].mean())

  summary = mf.summarize(units, dims, kappas, optimizers, steps_R, FLAGS.threshold_factor,
                         seed=FLAGS.seed)
  doc.update(dims=dims, optimizers=optimizers, threshold_factor=FLAGS.threshold_factor,
             summary=summary, complete=True)
  results.atomic_write_json(path, doc)
  for name, fig in mf.make_figures(units, summary, dims, kappas, optimizers, steps_R).items():
    results.save_figure(fig, os.path.join(FLAGS.out_dir, f"{name}.png"))
  for opt in optimizers:
    s = summary[opt]
    logging.info("%s: max expansion step %s, exponent vs n %s, verdicts %s", opt,
                 s["max_expansion_step"], s["exponent_vs_n"], s["verdicts"])
  print(f"wrote {path}")


if __name__ == "__main__":
  validate.run_or_exit(lambda: app.run(main))
