"""CI width of the censoring-aware exponent against seeds and number of n values.

  python -m experiments.saddle_power --results results/cpu/saddle/results.json

Reads a saddle_escape.json (any run: the binary's, or a reproduce run's
saddle/results.json), and for every group (optimizer, signal, noise, lam,
kappa, lr) at each optimizer's paper lr (all lrs with --noonly_paper_lr)
refits `stats.censored_exponent` on the first k seeds and the smallest m n
values (also the largest m), for every k in --seeds and m >= 2.
Prints and writes saddle_power.json next to the results: the 95 % CI width
and the verdict per (k, m).
"""

import os

from absl import flags, logging

from experiments import cli

flags.DEFINE_string(
  "results",
  "results/cpu/saddle/results.json",
  "A saddle_escape.json (default: the stored CPU run).",
)
flags.DEFINE_list("seeds", ["4", "8", "16", "32"], "Seed counts k to subsample (first k seeds).")
flags.DEFINE_string("criterion", "structural", "Criterion: structural, definition1 or spectral.")
flags.DEFINE_integer("n_boot", 1000, "Bootstrap resamples per fit, in [0, 10^5].")
flags.DEFINE_bool(
  "only_paper_lr", True, "Only the groups at each optimizer's paper lr (the claim rows' groups)."
)
FLAGS = flags.FLAGS


def main(argv):
  from muon_jax import stats
  from muon_jax.infra import results
  from muon_jax.paper import saddle

  with cli.flag_errors():
    if argv[1:]:
      raise ValueError(f"unexpected arguments {argv[1:]}")
    doc = results.load_json(FLAGS.results)
    if doc is None or not doc.get("complete"):
      raise ValueError(f"results={FLAGS.results} is not a complete saddle_escape.json")
    seeds = [int(k) for k in FLAGS.seeds]
    if any(k < 2 for k in seeds):
      raise ValueError(f"seeds={FLAGS.seeds}: each count must be >= 2")
    if FLAGS.criterion not in saddle.ESCAPE_CRITERIA:
      raise ValueError(f"criterion={FLAGS.criterion!r} is not one of {saddle.ESCAPE_CRITERIA}")
    if FLAGS.n_boot < 0:
      raise ValueError(f"n_boot={FLAGS.n_boot} must be >= 0")
  crit = FLAGS.criterion
  cfg = saddle.config_from_results(doc)
  groups: dict = {}
  for c in doc["cells"]:
    if FLAGS.only_paper_lr and c["lr"] != saddle.paper_lr(cfg, c["optimizer"]):
      continue
    groups.setdefault(tuple(c[k] for k in saddle.GROUP_KEYS), []).append(c)
  rows = []
  for key, cells in groups.items():
    ns = sorted({c["n"] for c in cells})
    for k in seeds:
      for m in range(2, len(ns) + 1):
        for side, picked in (("smallest", ns[:m]), ("largest", ns[-m:])):
          if side == "largest" and m == len(ns):
            continue
          sub = [c for c in cells if c["seed"] < k and c["n"] in picked]
          fit = stats.censored_exponent(
            [c["D"] for c in sub],
            [c[f"tau_{crit}"] for c in sub],
            [c[f"hit_{crit}"] for c in sub],
            n_boot=FLAGS.n_boot,
          )
          lo, hi = fit["ci"]
          row = {
            **dict(zip(saddle.GROUP_KEYS, key)),
            "seeds": k,
            "n_values": picked,
            "exponent": saddle.json_bound(fit["exponent"]),
            "ci": [saddle.json_bound(lo), saddle.json_bound(hi)],
            "width": saddle.json_bound(hi - lo),
            "verdict": stats.exponent_verdict(lo, hi),
          }
          rows.append(row)
          logging.info(
            "%s k=%d n=%s: %+.3f [%+.3f, %+.3f] width %.3f %s",
            key,
            k,
            picked,
            fit["exponent"],
            lo,
            hi,
            hi - lo,
            row["verdict"],
          )
  out = os.path.join(os.path.dirname(FLAGS.results), "saddle_power.json")
  results.atomic_write_json(
    out,
    {
      "criterion": crit,
      "source": FLAGS.results,
      "delta": stats.DIMENSION_FREE_DELTA,
      "rows": rows,
    },
  )
  logging.info("wrote %s (%d rows)", out, len(rows))


if __name__ == "__main__":
  cli.run(main)
