"""Statistics of the saddle cells: per-group exponents, the race, tau* and verdict tallies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from muon_jax import stats
from muon_jax.paper.saddle.problem import ESCAPE_CRITERIA, RACE_NORMS
from muon_jax.paper.saddle.sweep import GROUP_KEYS, TAU_STAR_KEYS, SaddleConfig

# Optimizers whose update acts on each coordinate separately: with S = E_11,
# W_11 follows a 1-D process whose law does not depend on n, so their
# structural escape time at a fixed lr cannot test a dimension claim.
SEPARABLE = ("adamw", "sgd")
UNTESTABLE_REASON = (
  "coordinate-separable optimizer with S = E_11: W_11 evolves as a 1-D process "
  "whose law does not depend on n"
)
LINEAR_UNTESTABLE_REASON = (
  "linear optimizer (SGD) under Gaussian noise: <S, W> is a 1-D process driven by <S, N> ~ "
  "N(0, kappa sigma^2) in either geometry, whose law does not depend on n"
)


def race_success(record: dict, norm: str) -> bool:
  """Theorem 3's success event: structural escape strictly before ||P_perp Delta|| >= R_perp."""
  perp = f"perp_{norm}"
  return bool(record["hit_structural"]) and (
    not record[f"hit_{perp}"] or record["tau_structural"] < record[f"tau_{perp}"]
  )


def _finite(x):
  """JSON-safe float: inf and nan become None."""
  return float(x) if np.isfinite(x) else None


def json_bound(x):
  """JSON form of an exponent or CI end: a float, "inf" / "-inf" when unbounded, None for nan."""
  if np.isnan(x):
    return None
  return float(x) if np.isfinite(x) else ("inf" if x > 0 else "-inf")


def bound_value(v) -> float:
  """Inverse of `json_bound`: the JSON value as a float (nan for None)."""
  return float("nan") if v is None else float(v)


def exponent_text(e: dict) -> str:
  """An exponent entry's value: '+0.12', '-inf' / 'inf' (no finite maximum) or 'no fit'."""
  if e["exponent"] is None:
    return "no fit"
  return e["exponent"] if isinstance(e["exponent"], str) else f"{e['exponent']:+.2f}"


def exponent_entry(fit: dict) -> dict:
  """The JSON part of a `stats.censored_exponent` result, with its verdict."""
  ci = fit["ci"]
  return {
    "exponent": json_bound(fit["exponent"]),
    "ci": [json_bound(ci[0]), json_bound(ci[1])],
    "ci_method": fit["ci_method"],
    "converged": fit["converged"],
    "verdict": stats.exponent_verdict(*ci),
    "censored_frac": fit["censored_frac"],
    "escape_fraction_slope": _finite(fit["escape_fraction_slope"]),
    "escape_fraction_slope_ci": [_finite(v) for v in fit["escape_fraction_slope_ci"]],
    "per_D": [
      {
        "D": int(p["D"]),
        "runs": p["runs"],
        "escaped_frac": p["escaped_frac"],
        "km_median": _finite(p["km_median"]),
        "km_median_ci": [_finite(v) for v in p["km_median_ci"]],
      }
      for p in fit["per_D"]
    ],
  }


def untestable_reason(optimizer: str, signal: str, noise: str, criterion: str) -> str | None:
  """Why a group cannot test a dimension claim by construction, or None."""
  if criterion != "structural":
    return None
  if optimizer in SEPARABLE and signal == "aligned":
    return UNTESTABLE_REASON
  if optimizer == "sgd" and noise == "standard":
    return LINEAR_UNTESTABLE_REASON
  return None


def summarize(cfg: SaddleConfig, records: Sequence[dict]) -> list[dict]:
  """One summary per (optimizer, signal, noise, lam, kappa, lr) group.

  Each holds, per criterion of ESCAPE_CRITERIA, the censoring-aware exponent
  of tau vs D (`stats.censored_exponent`) with its verdict, or
  "untestable" with the reason; and per race norm the success probability per
  n and the median structural tau among the successful runs.
  """
  groups: dict = {}
  for r in records:
    groups.setdefault(tuple(r[k] for k in GROUP_KEYS), []).append(r)
  out = []
  for key, rows in groups.items():
    entry = dict(zip(GROUP_KEYS, key))
    d = np.array([r["D"] for r in rows], np.float64)
    for crit in ESCAPE_CRITERIA:
      tau = np.array([r[f"tau_{crit}"] for r in rows], np.float64)
      hit = np.array([r[f"hit_{crit}"] for r in rows], bool)
      fit = exponent_entry(stats.censored_exponent(d, tau, hit, n_boot=cfg.n_boot, seed=cfg.seed))
      reason = untestable_reason(entry["optimizer"], entry["signal"], entry["noise"], crit)
      if reason:
        fit.update(verdict="untestable", reason=reason)
      entry[crit] = fit
    for norm in RACE_NORMS:
      per_n = []
      for n in sorted({r["n"] for r in rows}):
        cell = [r for r in rows if r["n"] == n]
        won = [r for r in cell if race_success(r, norm)]
        per_n.append(
          {
            "n": n,
            "D": n * n,
            "success": len(won) / len(cell),
            "tau_given_success": float(np.median([r["tau_structural"] for r in won]))
            if won
            else None,
          }
        )
      entry[f"race_{norm}"] = per_n
    out.append(entry)
  return out


def tau_star(cfg: SaddleConfig, records: Sequence[dict]) -> list[dict]:
  """The lr-optimal escape time tau*(D) per (optimizer, signal, noise, lam, kappa), both races.

  At each n, tau*(n) is the smallest Kaplan-Meier median structural tau among
  the learning rates whose race-success probability is >= success_level. The
  exponent is `stats.censored_exponent` on the structural taus of the runs
  at the chosen lr of each n; at an n where no lr qualifies, its runs enter
  censored at the budget (no learning rate wins the race within it: evidence
  of growth). The CI is conditional on the chosen learning rates. Only the
  first `seeds` seeds of every lr enter, so the lrs compete on equal sample
  sizes (a minimum over noisier medians would favour the smaller groups).
  """
  groups: dict = {}
  for r in records:
    if r["seed"] < cfg.seeds:
      groups.setdefault(tuple(r[k] for k in TAU_STAR_KEYS), []).append(r)
  out = []
  for key, rows in groups.items():
    entry = dict(zip(TAU_STAR_KEYS, key))
    ns = sorted({r["n"] for r in rows})
    for norm in RACE_NORMS:
      per_n, d, tau, hit = [], [], [], []
      for n in ns:
        options = []
        for lr in sorted({r["lr"] for r in rows}):
          cell = [r for r in rows if r["n"] == n and r["lr"] == lr]
          success = np.mean([race_success(r, norm) for r in cell])
          median, _ = stats.kaplan_meier_median(
            [r["tau_structural"] for r in cell], [r["hit_structural"] for r in cell]
          )
          options.append((lr, success, median, cell))
        ok = [o for o in options if o[1] >= cfg.success_level and np.isfinite(o[2])]
        if ok:
          lr, success, median, cell = min(ok, key=lambda o: (o[2], o[0]))
          tau += [r["tau_structural"] for r in cell]
          hit += [r["hit_structural"] for r in cell]
        else:
          lr, success, median, cell = None, None, None, options[0][3]
          tau += [cfg.steps] * len(cell)
          hit += [False] * len(cell)
        d += [n * n] * len(cell)
        per_n.append(
          {
            "n": n,
            "D": n * n,
            "lr": lr,
            "tau_star": _finite(median) if ok else None,
            "success": success,
            "success_by_lr": {repr(o[0]): o[1] for o in options},
          }
        )
      fit = exponent_entry(stats.censored_exponent(d, tau, hit, n_boot=cfg.n_boot, seed=cfg.seed))
      chosen = [(p["D"], p["lr"]) for p in per_n if p["lr"] is not None]
      lr_slope = (
        float(np.polyfit(np.log([c[0] for c in chosen]), np.log([c[1] for c in chosen]), 1)[0])
        if len({c[0] for c in chosen}) >= 2
        else None
      )
      entry[norm] = {**fit, "per_n": per_n, "lr_slope": lr_slope}
    out.append(entry)
  return out


def tallies(summary: Sequence[dict], stars: Sequence[dict]) -> dict:
  """Verdict counts per geometry: per optimizer and criterion (untestable groups apart)."""
  out: dict = {}
  for s in summary:
    for crit in ESCAPE_CRITERIA:
      slot = out.setdefault(s["signal"], {}).setdefault(s["optimizer"], {}).setdefault(crit, {})
      slot[s[crit]["verdict"]] = slot.get(s[crit]["verdict"], 0) + 1
  for s in stars:
    for norm in RACE_NORMS:
      slot = (
        out.setdefault(s["signal"], {})
        .setdefault(s["optimizer"], {})
        .setdefault(f"tau_star_{norm}", {})
      )
      slot[s[norm]["verdict"]] = slot.get(s[norm]["verdict"], 0) + 1
  return out
