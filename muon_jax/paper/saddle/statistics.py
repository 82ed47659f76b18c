"""Statistics of the saddle cells: per-group exponents, the race, tau*, Muon pooled over the
geometries, tau against the curvature, lack-of-fit checks and verdict tallies."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from muon_jax import stats
from muon_jax.paper.saddle.problem import ESCAPE_CRITERIA, RACE_NORMS
from muon_jax.paper.saddle.sweep import GROUP_KEYS, TAU_STAR_KEYS, SaddleConfig, stream_index
from muon_jax.stats.exponents import (
  censored_exponent_resamples,
  kaplan_meier_medians,
  order_statistic_ci,
)

POOLED_KEYS = ("optimizer", "noise", "lam", "kappa", "lr")
CURVATURE_KEYS = ("optimizer", "signal", "noise", "kappa", "lr")
# Optimizers equivariant under W -> U W V^T: with rotation-invariant noise their escape law is
# the same in both geometries, so their cells pool over the geometries.
EQUIVARIANT = ("muon",)
# Resamples of each half's exponent in a lack-of-fit check (at most cfg.n_boot).
LACK_OF_FIT_BOOT = 200
# tau*'s exponent needs this many n with a finite tau* before its verdict counts.
TAU_STAR_MIN_FINITE_N = 3
TAU_STAR_CI_METHOD = "bootstrap with lr selection per resample"

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


def exponent_entry(fit: dict, x_name: str = "D") -> dict:
  """The JSON part of a `stats.censored_exponent` result, with its verdict.

  Args:
    fit: the `stats.censored_exponent` result.
    x_name: what its D slot held: "D" (per_D with integer D) or e.g. "lam" for a fit
      against the curvature (per_lam with float lam).
  """
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
    f"per_{x_name}": [
      {
        x_name: int(p["D"]) if x_name == "D" else float(p["D"]),
        "runs": p["runs"],
        "escaped_frac": p["escaped_frac"],
        "km_median": _finite(p["km_median"]),
        "km_median_ci": [_finite(v) for v in p["km_median_ci"]],
      }
      for p in fit["per_D"]
    ],
  }


def lack_of_fit(
  values: Sequence, fit_part: Callable[[list], tuple], label: str = "n"
) -> dict | None:
  """The exponent over the lower and the upper half of the x range, and whether they disagree.

  A power law has one exponent over the whole range; halves whose CIs are disjoint say the
  fitted exponent averages a bend (the issue's example: Muon incoherent +0.09 over
  n = 16...128 and -0.05 over n = 32...512). With the k distinct values sorted the lower half
  is the first ceil(k / 2), the upper the last ceil(k / 2) (an odd k shares the middle
  value); each half needs two values, so k >= 3.

  Args:
    values: the x value (n, or lam) of every run of the fit.
    fit_part: fit_part(part) -> (exponent, (ci_low, ci_high)) fitted on the runs whose value
      is in `part`.
    label: the key naming each half's values.

  Returns:
    {"lower": {label: [...], "exponent", "ci"}, "upper": {...}, "disagree": bool} (CI ends
    as `json_bound`; a NaN end never disagrees), or None when k < 3.
  """
  distinct = sorted(set(values))
  if len(distinct) < 3:
    return None
  half = math.ceil(len(distinct) / 2)
  out, cis = {}, []
  for name, part in (("lower", distinct[:half]), ("upper", distinct[-half:])):
    exponent, ci = fit_part(part)
    cis.append(ci)
    out[name] = {label: part, "exponent": json_bound(exponent), "ci": [json_bound(v) for v in ci]}
  (lo_low, lo_high), (up_low, up_high) = cis
  out["disagree"] = bool(lo_high < up_low or up_high < lo_low)
  return out


def _fitted_entry(cfg: SaddleConfig, x, tau, hit, part_of, label: str, x_name: str) -> dict:
  """`exponent_entry` of tau against x with the `lack_of_fit` check over part_of's halves."""
  x, tau, hit = (np.asarray(v) for v in (x, tau, hit))
  entry = exponent_entry(
    stats.censored_exponent(x, tau, hit, n_boot=cfg.n_boot, seed=cfg.seed), x_name
  )

  def fit_part(part):
    m = np.isin(part_of, part)
    fit = stats.censored_exponent(
      x[m], tau[m], hit[m], n_boot=min(cfg.n_boot, LACK_OF_FIT_BOOT), seed=cfg.seed
    )
    return fit["exponent"], fit["ci"]

  entry["lack_of_fit"] = lack_of_fit(part_of, fit_part, label)
  return entry


def _dimension_entry(cfg: SaddleConfig, rows: Sequence[dict], crit: str) -> dict:
  """Exponent of tau_<crit> against D over `rows`, with its lack-of-fit check over n."""
  return _fitted_entry(
    cfg,
    [r["D"] for r in rows],
    [r[f"tau_{crit}"] for r in rows],
    [r[f"hit_{crit}"] for r in rows],
    [r["n"] for r in rows],
    "n",
    "D",
  )


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
  of tau vs D (`stats.censored_exponent`) with its verdict (or "untestable"
  with the reason) and its `lack_of_fit` check; and per race norm the success
  probability per n and the median structural tau among the successful runs.
  """
  groups: dict = {}
  for r in records:
    groups.setdefault(tuple(r[k] for k in GROUP_KEYS), []).append(r)
  out = []
  for key, rows in groups.items():
    entry = dict(zip(GROUP_KEYS, key))
    for crit in ESCAPE_CRITERIA:
      fit = _dimension_entry(cfg, rows, crit)
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


def _resample_counts(rng: np.random.Generator, n_boot: int, size: int) -> np.ndarray:
  """(n_boot, size) multiplicities of `size` seeds drawn with replacement per resample."""
  counts = np.zeros((n_boot, size))
  np.add.at(counts, (np.arange(n_boot)[:, None], rng.integers(0, size, (n_boot, size))), 1.0)
  return counts


def _lr_table(cells: Sequence[dict], lrs: Sequence[float], norm: str) -> dict:
  """One n's runs as (lr, seed) arrays, seeds sorted: structural tau and hit, race won, present."""
  seeds = {s: j for j, s in enumerate(sorted({r["seed"] for r in cells}))}
  rows = {lr: i for i, lr in enumerate(lrs)}
  shape = (len(lrs), len(seeds))
  table = {
    "tau": np.ones(shape),
    "hit": np.zeros(shape, bool),
    "win": np.zeros(shape, bool),
    "present": np.zeros(shape, bool),
  }
  for r in cells:
    at = rows[r["lr"]], seeds[r["seed"]]
    table["tau"][at] = r["tau_structural"]
    table["hit"][at] = r["hit_structural"]
    table["win"][at] = race_success(r, norm)
    table["present"][at] = True
  return table


def _select_lr(table: dict, counts_BxS: np.ndarray, success_level: float):
  """tau*'s choice at one n in each resample: the qualifying lr with the smallest KM median.

  The same seed multiplicities weigh every lr (common random numbers: the lrs of a seed
  share its draws). Ties go to the smaller lr, as in the point estimate.

  Returns:
    (choice_B, weights_BxLxS): the chosen lr's index (-1 where none qualifies) and each
    lr's run weights.
  """
  weights = counts_BxS[:, None, :] * table["present"][None]
  with np.errstate(invalid="ignore"):
    success = (weights * table["win"]).sum(-1) / weights.sum(-1)
  median = np.stack(
    [
      kaplan_meier_medians(table["tau"][i], table["hit"][i], weights[:, i])
      for i in range(weights.shape[1])
    ],
    axis=1,
  )
  ok = (success >= success_level) & np.isfinite(median)
  choice = np.argmin(np.where(ok, median, np.inf), axis=1)
  return np.where(ok.any(axis=1), choice, -1), weights


def _selection_resamples(
  steps: int, tables: dict, selections: dict, ns: Sequence[int], boots: int
) -> tuple[np.ndarray, np.ndarray]:
  """tau*'s exponent and escaped-fraction slope in each of the first `boots` resamples.

  Every run of every lr at each n is a column; a resample weighs the runs of the lr it chose
  there by their seed multiplicities and the rest by 0; where no lr qualifies, the n enters
  as the smallest lr's runs censored at the budget, as in the point estimate.
  """
  d, tau, hit, weights = [], [], [], []
  for n in ns:
    table, (choice, lr_weights) = tables[n], selections[n]
    choice, lr_weights = choice[:boots], lr_weights[:boots]
    present = table["present"]
    for i in range(present.shape[0]):
      d.append(np.full(present[i].sum(), n * n))
      tau.append(table["tau"][i, present[i]])
      hit.append(table["hit"][i, present[i]])
      weights.append((lr_weights[:, i] * (choice == i)[:, None])[:, present[i]])
    d.append(np.full(present[0].sum(), n * n))
    tau.append(np.full(present[0].sum(), float(steps)))
    hit.append(np.zeros(present[0].sum(), bool))
    weights.append((lr_weights[:, 0] * (choice == -1)[:, None])[:, present[0]])
  d, tau, hit, weights = (np.concatenate(v, axis=-1) for v in (d, tau, hit, weights))
  used = weights.any(axis=0)  # Runs no resample chose only slow the fit down.
  d, tau, hit, weights = d[used], tau[used], hit[used], weights[:, used]
  alpha = censored_exponent_resamples(d, tau, hit, weights)
  dims = np.unique(d)
  frac = np.stack(
    [weights[:, d == v] @ hit[d == v] / weights[:, d == v].sum(axis=1) for v in dims], axis=1
  )
  return alpha, np.polyfit(np.log(dims), frac.T, 1)[0]


def _tau_star_fit(
  cfg: SaddleConfig, runs: dict, tables: dict, selections: dict, ns: Sequence[int], boots: int
) -> dict:
  """The censored exponent of the chosen runs at `ns`, its CI from the selection bootstrap.

  The point estimate is `stats.censored_exponent` on the runs tau* chose; the CI (and the
  escaped-fraction slope's) redoes the lr choice in each of `boots` resamples. Without
  resamples, or without any escape to fit, the CI stays censored_exponent's (Wald / none).
  """
  m = np.isin(runs["n"], ns)
  fit = stats.censored_exponent(runs["D"][m], runs["tau"][m], runs["hit"][m], n_boot=0)
  if boots and not math.isnan(fit["exponent"]):
    alpha, slopes = _selection_resamples(cfg.steps, tables, selections, ns, boots)
    fit.update(
      ci=order_statistic_ci(alpha),
      ci_method=TAU_STAR_CI_METHOD,
      escape_fraction_slope_ci=tuple(float(v) for v in np.quantile(slopes, [0.025, 0.975])),
    )
  return fit


def tau_star(cfg: SaddleConfig, records: Sequence[dict]) -> list[dict]:
  """The lr-optimal escape time tau*(D) per (optimizer, signal, noise, lam, kappa), both races.

  At each n, tau*(n) is the smallest Kaplan-Meier median structural tau among
  the learning rates whose race-success probability is >= success_level. The
  exponent is `stats.censored_exponent` on the structural taus of the runs
  at the chosen lr of each n; at an n where no lr qualifies, its runs enter
  censored at the budget (no learning rate wins the race within it: evidence
  of growth). Its CI comes from a bootstrap that redoes the choice in every
  resample (`cfg.n_boot` of them, seeded by `cfg.seed`): at each n the seeds
  are drawn with replacement, the same draw for every lr (they share each
  seed's noise), the lr is chosen again and the exponent refitted. A CI
  conditional on the chosen lrs would ignore that a minimum over noisy
  medians is itself noisy. Only the first `seeds` seeds of every lr enter, so
  the lrs compete on equal sample sizes (a minimum over noisier medians would
  favour the smaller groups).

  Each race norm's entry is `exponent_entry`'s with "per_n", "lr_slope" (the
  chosen lr against D), "finite_n" (the n with a finite tau*) and the
  `lack_of_fit` check over n; with fewer than TAU_STAR_MIN_FINITE_N finite n
  the verdict is "not decided" with the reason.
  """
  groups: dict = {}
  for r in records:
    if r["seed"] < cfg.seeds:
      groups.setdefault(tuple(r[k] for k in TAU_STAR_KEYS), []).append(r)
  out = []
  for key, rows in groups.items():
    entry = dict(zip(TAU_STAR_KEYS, key))
    ns = sorted({r["n"] for r in rows})
    lrs = sorted({r["lr"] for r in rows})
    at_n = {n: [r for r in rows if r["n"] == n] for n in ns}
    rng = np.random.default_rng(cfg.seed)
    counts = {n: _resample_counts(rng, cfg.n_boot, len({r["seed"] for r in at_n[n]})) for n in ns}
    for norm in RACE_NORMS:
      per_n, run_n, d, tau, hit = [], [], [], [], []
      for n in ns:
        options = []
        for lr in lrs:
          cell = [r for r in at_n[n] if r["lr"] == lr]
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
        run_n += [n] * len(cell)
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
      runs = {"n": np.array(run_n), "D": np.array(d), "tau": np.array(tau), "hit": np.array(hit)}
      tables = {n: _lr_table(at_n[n], lrs, norm) for n in ns}
      selections = {n: _select_lr(tables[n], counts[n], cfg.success_level) for n in ns}
      fit = exponent_entry(_tau_star_fit(cfg, runs, tables, selections, ns, cfg.n_boot))

      def fit_part(part):
        part_fit = _tau_star_fit(
          cfg, runs, tables, selections, part, min(cfg.n_boot, LACK_OF_FIT_BOOT)
        )
        return part_fit["exponent"], part_fit["ci"]

      chosen = [(p["D"], p["lr"]) for p in per_n if p["lr"] is not None]
      lr_slope = (
        float(np.polyfit(np.log([c[0] for c in chosen]), np.log([c[1] for c in chosen]), 1)[0])
        if len({c[0] for c in chosen}) >= 2
        else None
      )
      finite_n = sum(p["tau_star"] is not None for p in per_n)
      fit.update(
        per_n=per_n,
        lr_slope=lr_slope,
        finite_n=finite_n,
        lack_of_fit=lack_of_fit(run_n, fit_part),
      )
      if finite_n < TAU_STAR_MIN_FINITE_N:
        fit.update(
          verdict="not decided",
          reason=f"rests on {finite_n} finite n (needs {TAU_STAR_MIN_FINITE_N})",
        )
      entry[norm] = fit
    out.append(entry)
  return out


def _shared_draws(cfg: SaddleConfig, rows: Sequence[dict]) -> dict:
  """Whether each seed of the pooled geometries ran on the same draws, and how it is pooled."""
  shared = all(
    len({stream_index(cfg, {**r, "signal": signal}) for signal in cfg.signals}) == 1 for r in rows
  )
  note = (
    "the random streams ignore the signal (stream_index, cell_keys): seed s of every geometry "
    "sees the same noise draws X, so its runs are correlated through them (the structural "
    "components X_11 and u^T X v alone have correlation u_1 v_1 ~ 1/n)"
    if shared
    else "every geometry has its own random streams"
  )
  return {
    "shared_draws": shared,
    "draws_note": f"{note}; each (signal, seed) pair enters the fit and its bootstrap as its "
    "own run",
  }


def _geometry_pools(cfg: SaddleConfig, records: Sequence[dict], keys: Sequence[str]) -> dict:
  """The records of EQUIVARIANT optimizers grouped by `keys` (no signal) where every
  geometry of the config has cells; {} with one geometry."""
  if len(cfg.signals) < 2:
    return {}
  groups: dict = {}
  for r in records:
    if r["optimizer"] in EQUIVARIANT:
      groups.setdefault(tuple(r[k] for k in keys), []).append(r)
  return {
    key: rows for key, rows in groups.items() if {r["signal"] for r in rows} >= set(cfg.signals)
  }


def pooled(cfg: SaddleConfig, records: Sequence[dict]) -> list[dict]:
  """Muon's exponents per (optimizer, noise, lam, kappa, lr) over both geometries pooled.

  Muon is equivariant under W -> U W V^T and the noise is rotation-invariant, so its
  escape law is the same for S = E_11 and S = u v^T (tests/test_saddle.py checks it with
  a log-rank test) and the two geometries' cells are one sample. Per criterion the entry
  holds the exponent of tau vs D on the union (as `summarize`, with `lack_of_fit`),
  "signals" and `_shared_draws`' "shared_draws" / "draws_note". [] with one geometry.
  """
  out = []
  for key, rows in _geometry_pools(cfg, records, POOLED_KEYS).items():
    entry = {**dict(zip(POOLED_KEYS, key)), "signals": list(cfg.signals)}
    entry.update(_shared_draws(cfg, rows))
    for crit in ESCAPE_CRITERIA:
      entry[crit] = _dimension_entry(cfg, rows, crit)
    out.append(entry)
  return out


def _curvature_fit(cfg: SaddleConfig, rows: Sequence[dict]) -> dict:
  """Exponent of the structural tau against lam over `rows`, lack of fit over the lams."""
  lams = [r["lam"] for r in rows]
  return _fitted_entry(
    cfg,
    lams,
    [r["tau_structural"] for r in rows],
    [r["hit_structural"] for r in rows],
    lams,
    "lam",
    "lam",
  )


def curvature(cfg: SaddleConfig, records: Sequence[dict]) -> list[dict]:
  """The structural tau against the curvature lam (Fig 1b, "Muon: Curvature scaling").

  Per (optimizer, signal, noise, kappa, lr) with at least two lams: "per_n", the
  censored exponent of tau vs lam at each n (lam in the D slot of
  `stats.censored_exponent`; per_lam in place of per_D), and "pooled_over_n", the same
  fit on all n together; each with its verdict and `lack_of_fit` over the lams. For the
  EQUIVARIANT optimizers with several geometries also signal "pooled", the union of the
  geometries (with `_shared_draws`' fields).
  """
  groups: dict = {}
  for r in records:
    groups.setdefault(tuple(r[k] for k in CURVATURE_KEYS), []).append(r)
  pools = _geometry_pools(cfg, records, [k for k in CURVATURE_KEYS if k != "signal"])
  for (opt, noise, kappa, lr), rows in pools.items():
    groups[(opt, "pooled", noise, kappa, lr)] = rows
  out = []
  for key, rows in groups.items():
    if len({r["lam"] for r in rows}) < 2:
      continue
    entry = dict(zip(CURVATURE_KEYS, key))
    if entry["signal"] == "pooled":
      entry.update(signals=list(cfg.signals), **_shared_draws(cfg, rows))
    per_n = []
    for n in sorted({r["n"] for r in rows}):
      at_n = [r for r in rows if r["n"] == n]
      if len({r["lam"] for r in at_n}) >= 2:
        per_n.append({"n": n, **_curvature_fit(cfg, at_n)})
    entry.update(per_n=per_n, pooled_over_n=_curvature_fit(cfg, rows))
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
