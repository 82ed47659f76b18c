"""The paper's saddle-escape claims (Fig 1a-d, Fig 5a-b, Theorem 3) as report rows."""

from __future__ import annotations

import math

from muon_jax import stats
from muon_jax.paper.saddle.problem import ESCAPE_CRITERIA, RACE_NORMS
from muon_jax.paper.saddle.statistics import (
  POOLED_KEYS,
  bound_value,
  exponent_entry,
  exponent_text,
)
from muon_jax.paper.saddle.sweep import (
  GROUP_KEYS,
  TAU_STAR_KEYS,
  SaddleConfig,
  config_from_results,
  paper_lr,
  seeds_at,
)

# Claim families: "fig1a/moderate" and "fig1a/pronounced" are Fig 1a's two structural-variance
# regimes (the text cites "Figure 1a, b" for both); "fig1b" is the panel's own subject,
# "Muon: Curvature scaling" (tau against lam).
_EXPECTED = {
  "fig1a/moderate": "dimension-free",
  "fig1a/pronounced": "shrinks",
  "fig1b": "shrinks",
  "fig1c": "grows",
  "thm3": "grows",
}
_PAPER = {
  "fig1a/moderate": "In the pre-locking regime (moderate structural variance) Muon's escape "
  "steps remain invariant to the ambient dimension (Fig 1a, Theorem 2).",
  "fig1a/pronounced": "Under pronounced structural variance Muon's escape steps decrease "
  "monotonically as the dimension grows (Fig 1a, b).",
  "fig1b": "Muon: curvature scaling (Fig 1b's caption; the text prints no law). Our reading: "
  "flatter landscapes suppress the alignment (Remark 2), so Muon's escape steps fall as the "
  "curvature lam grows.",
  "fig1c": "AdamW's residence time scales linearly with the ambient dimension (Fig 1c, Theorem 3).",
  "thm3": "Where the structural drift dominates, AdamW's learning rate must shrink with D to win the "
  "race against orthogonal drift, so its residence time is bounded below by ~D (Theorem 3 (2)).",
  "fig1d": "In pathologically flat landscapes AdamW stagnates at a Brownian floor independent of "
  "further curvature decay (Fig 1d).",
  "fig5a": "At low dimension and pathological flatness heavy-tailed noise increases Muon's escape "
  "steps over standard noise (Fig 5a).",
  "fig5b": "As the dimension grows the gap between noise modalities vanishes: Muon self-heals "
  "(Fig 5b).",
}
# Criteria whose escape time follows from the update norm alone (one Muon step moves
# ||W - W_0||_F by ~0.2 lr n and ||W - W_0||_2 by ~0.2 lr sqrt(n)): a dimension exponent under
# them says nothing about the saddle, so they never count as reproducing or not.
UPDATE_NORM_CRITERIA = ("definition1", "spectral")
UPDATE_NORM_NA = "n/a (update-norm scaling)"
_PAPER_LR_NOTE = "reconstructed; the paper prints no lr"
_CRITERION_TEXT = {
  "definition1": "Definition 1 read literally: ||W - W_0||_F >= R",
  "structural": "structural progress |<S, W - W_0>| >= R",
  "spectral": "spectral deviation ||W - W_0||_2 >= R",
}


def _ci_text(e: dict, axis: str = "D") -> str:
  if e["exponent"] is None:
    return f"no finite fit ({e['censored_frac']:.0%} censored)"
  lo, hi = ("n/a" if v is None else v if isinstance(v, str) else f"{v:+.2f}" for v in e["ci"])
  slope, (s_lo, s_hi) = e["escape_fraction_slope"], e["escape_fraction_slope_ci"]
  fraction = (
    f"; escaped fraction slope vs log {axis} {slope:+.2f} [{s_lo:+.2f}, {s_hi:+.2f}]"
    if e["censored_frac"] > 0 and s_lo is not None and s_hi is not None
    else ""
  )
  unbounded = (
    " (no finite maximum: escapes at one D only)" if isinstance(e["exponent"], str) else ""
  )
  return f"{exponent_text(e)}{unbounded} [{lo}, {hi}] ({e['censored_frac']:.0%} censored{fraction})"


def _km_compare(a: dict, b: dict) -> str:
  """'higher' / 'lower' when the KM median CIs of a and b are disjoint, else 'overlap'."""
  inf = float("inf")
  a_lo, a_hi = (inf if v is None else v for v in a["km_median_ci"])
  b_lo, b_hi = (inf if v is None else v for v in b["km_median_ci"])
  if a_lo > b_hi:
    return "higher"
  if a_hi < b_lo:
    return "lower"
  return "overlap"


def claims(results: dict) -> list[dict]:
  """Rows for the paper report: Fig 1a-d, Theorem 3 and Fig 5a-b.

  Fig 1a (Muon, tau vs D) has a row per structural-variance regime: moderate (the smallest
  kappa, expected dimension-free) and pronounced (the largest kappa > 1, expected to shrink).
  Muon's escape law is the same in both geometries, so its claim is one row pooled over the
  geometries when the config has both, with each geometry as a supporting row. Fig 1b
  (Muon, tau vs lam) needs two curvatures. Fig 1c and Theorem 3 are AdamW's: tau* under
  Theorem 3's Frobenius race (the spectral race a labelled variant) and, at the reconstructed
  paper lr, the escape criteria. Criteria that scale with the update norm alone are reported
  but never count as reproducing. Fig 1d fits AdamW's structural tau against lam over the two
  flattest curvatures. Fig 5 rows compare Kaplan-Meier medians (Muon, structural, paper lr)
  of each heavy-tailed reading against standard noise.
  """
  cfg = config_from_results(results)
  summary = {tuple(s[k] for k in GROUP_KEYS): s for s in results["summary"]}
  stars = {tuple(s[k] for k in TAU_STAR_KEYS): s for s in results["tau_star"]}
  pooled = {tuple(p[k] for k in POOLED_KEYS): p for p in results.get("pooled", [])}
  noise = "standard" if "standard" in cfg.noises else cfg.noises[0]
  return (
    _dimension_rows(cfg, summary, stars, pooled, noise)
    + _curvature_rows(cfg, results, noise)
    + _fig1d_rows(cfg, results, noise)
    + _fig5_rows(cfg, summary)
  )


def _row(cid, criterion, measured, verdict, reproduces, figure, family=None) -> dict:
  """One report row; `family` (default: cid's first part) names the paper's text."""
  return {
    "id": cid,
    "paper": _PAPER[family or cid.split("/")[0]],
    "criterion": criterion,
    "measured": measured,
    "verdict": verdict,
    "reproduces": reproduces,
    "figure": figure,
  }


def _holds(verdict: str) -> bool | None:
  """Whether a holds / does not hold / inconclusive verdict reproduces the paper (None: unknown)."""
  return {"holds": True, "does not hold": False}.get(verdict)


def _dimension_plans(cfg: SaddleConfig) -> list[tuple[str, str, float, str]]:
  """(claim family, optimizer, kappa, figure) of the dimension claims the config can test.

  The smallest kappa is the moderate regime and the largest, when > 1, the pronounced one; a
  config with a single kappa > 1 has only the pronounced regime.
  """
  low, high = min(cfg.kappas), max(cfg.kappas)
  plans = []
  if high == low and low > 1:
    plans += [("fig1a/pronounced", "muon", high, "fig1a_muon_vs_dimension.png")]
  else:
    plans += [("fig1a/moderate", "muon", low, "fig1a_muon_vs_dimension.png")]
    plans += [("fig1c", "adamw", low, "fig1c_adamw_vs_dimension.png")]
    if high > 1:
      plans += [("fig1a/pronounced", "muon", high, "fig1a_muon_vs_dimension.png")]
  if high > 1:
    # Theorem 3's drift-dominated regime: the largest structural variance ratio.
    plans += [("thm3", "adamw", high, "tau_star.png")]
  order = ("fig1a/moderate", "fig1a/pronounced", "fig1c", "thm3")
  return sorted((p for p in plans if p[1] in cfg.optimizers), key=lambda p: order.index(p[0]))


def _dimension_rows(
  cfg: SaddleConfig, summary: dict, stars: dict, pooled: dict, noise: str
) -> list[dict]:
  """Fig 1a, 1c and Theorem 3 per curvature: pooled Muon row, then per geometry tau* and criteria."""
  rows = []
  for family, opt, kappa, figure in _dimension_plans(cfg):
    lr = paper_lr(cfg, opt)
    for lam in cfg.curvatures:
      base = f"{family.split('/')[0]}/kappa={kappa:g}"
      both = pooled.get((opt, noise, lam, kappa, lr))
      if opt == "muon" and both is not None:
        where = f"both geometries pooled, {noise} noise, λ={lam:g}, κ={kappa:g}, {cfg.steps} steps"
        rows += _criterion_rows(
          cfg, family, f"{base}/pooled/lam={lam:g}", opt, lr, both, where, figure, ("structural",)
        )
      for signal in cfg.signals:
        prefix = f"{base}/{signal}/lam={lam:g}"
        where = f"{signal}, {noise} noise, λ={lam:g}, κ={kappa:g}, {cfg.steps} steps"
        star = stars[(opt, signal, noise, lam, kappa)]
        group = summary[(opt, signal, noise, lam, kappa, lr)]
        if len(cfg.lrs(opt)) > 1:  # one lr is no sweep: tau* is that lr's tau
          rows += _tau_star_rows(cfg, family, prefix, star, where)
        rows += _criterion_rows(cfg, family, prefix, opt, lr, group, where, figure)
  return rows


def _lack_of_fit_text(e: dict) -> str:
  """'; lower n 16-32 +0.10 [..] vs upper n 64-128 -0.05 [..]' (flagged when they disagree)."""
  fit = e.get("lack_of_fit")
  if not fit or fit["lower"]["exponent"] is None or fit["upper"]["exponent"] is None:
    return ""  # no check without a fit on both halves
  halves = []
  for half in ("lower", "upper"):
    h = fit[half]
    ci = ", ".join(v if isinstance(v, str) else f"{v:+.2f}" for v in h["ci"] if v is not None)
    axis = "n" if "n" in h else "lam"
    halves.append(f"{half} {axis} {h[axis][0]:g}-{h[axis][-1]:g} {exponent_text(h)} [{ci}]")
  flag = "LACK OF FIT: the halves disagree" if fit["disagree"] else "halves agree"
  return f"; {flag} ({' vs '.join(halves)})"


def _tau_star_rows(
  cfg: SaddleConfig, family: str, prefix: str, star: dict, where: str
) -> list[dict]:
  """The exponent of the lr-optimal tau*: Theorem 3's Frobenius race, then the spectral variant."""
  rows = []
  for norm in RACE_NORMS:
    e = star[norm]
    extra = (
      f"; CI contains 1: {bound_value(e['ci'][0]) <= 1 <= bound_value(e['ci'][1])}"
      if family in ("fig1c", "thm3")
      else ""
    )
    finite = e.get("finite_n")
    rests = "" if finite is None else f"; rests on {finite} n with a finite τ*"
    variant = "" if norm == "frobenius" else " (variant: the proof's race is in Frobenius norm)"
    rows.append(
      _row(
        f"{prefix}/tau_star" + ("" if norm == "frobenius" else f"_{norm}_variant"),
        f"lr-optimal τ*(D): fastest structural escape among lrs winning the {norm} race{variant} "
        f"(R⊥ = {cfg.perp_radius or cfg.radius:g}) with probability ≥ {cfg.success_level:g}, "
        f"{cfg.seeds} seeds per lr and n, lr chosen inside every bootstrap resample; {where}",
        f"exponent {_ci_text(e)}{rests}; arg-min lr slope vs D "
        f"{'n/a' if e['lr_slope'] is None else format(e['lr_slope'], '+.2f')}{extra}"
        f"{_lack_of_fit_text(e)}",
        e["verdict"],
        stats.reproduces(e["verdict"], _EXPECTED[family]),
        "tau_star.png",
        family,
      )
    )
  return rows


def adamw_ou_median_steps(lr: float, lam: float, kappa: float) -> float:
  """Median structural escape of AdamW at a fixed lr, from an Ornstein-Uhlenbeck argument.

  With sign-like steps of size lr the structural coordinate grows at rate lr * lam from a
  stationary spread sqrt(kappa lr / (2 lam)): median escape ~ ln(sqrt(2 lam / (kappa lr)) / |Z|)
  / (lr lam), |Z|'s median 0.6745. It does not depend on n: at a fixed lr AdamW's tau is
  predicted flat in D (about 3e4 steps at lr 1e-3, lam 0.1, kappa 1).
  """
  return math.log(math.sqrt(2 * lam / (kappa * lr)) / 0.6745) / (lr * lam)


def _criterion_rows(
  cfg: SaddleConfig,
  family: str,
  prefix: str,
  opt: str,
  lr: float,
  group: dict,
  where: str,
  figure: str,
  criteria: tuple[str, ...] = ESCAPE_CRITERIA,
) -> list[dict]:
  """The exponent of tau vs D under each escape criterion at the paper lr."""
  rows = []
  lam, kappa = group["lam"], group["kappa"]
  for crit in criteria:
    e, reproduces = group[crit], None
    verdict = e["verdict"]
    if verdict == "untestable":
      measured = f"untestable: {e['reason']}"
    else:
      measured = f"exponent {_ci_text(e)}{_lack_of_fit_text(e)}"
      reproduces = stats.reproduces(verdict, _EXPECTED[family])
    if crit in UPDATE_NORM_CRITERIA:
      reproduces = UPDATE_NORM_NA
    elif opt == "adamw" and verdict != "untestable":
      median = adamw_ou_median_steps(lr, lam, kappa)
      if median > cfg.steps:
        verdict, reproduces = "untestable", None
        measured = (
          f"untestable at this budget: at a fixed lr AdamW's τ is predicted flat in D, median "
          f"≈ {median:.3g} steps > {cfg.steps} (OU argument); the paper's mechanism needs an lr "
          f"that shrinks with D (the τ* rows). Measured: {measured}"
        )
    rows.append(
      _row(
        f"{prefix}/{crit}",
        f"{_CRITERION_TEXT[crit]} at lr {lr:g} ({_PAPER_LR_NOTE}), "
        f"{seeds_at(cfg, opt, lr)} seeds per n; {where}",
        measured,
        verdict,
        reproduces,
        figure,
        family,
      )
    )
  return rows


def _curvature_rows(cfg: SaddleConfig, results: dict, noise: str) -> list[dict]:
  """Fig 1b: Muon's structural tau against lam, pooled over n (needs two curvatures)."""
  if "muon" not in cfg.optimizers:
    return []
  entries = [
    c
    for c in results.get("curvature", [])
    if c["optimizer"] == "muon" and c["noise"] == noise and c["lr"] == paper_lr(cfg, "muon")
  ]
  if len(cfg.curvatures) < 2 or not entries:
    return [
      _row(
        "fig1b",
        "exponent of Muon's structural τ ~ λ^γ",
        "needs at least two curvatures (one λ in this config)",
        "untestable",
        None,
        None,
      )
    ]
  rows = []
  for c in sorted(entries, key=lambda c: (c["kappa"], c["signal"] != "pooled", c["signal"])):
    e = c["pooled_over_n"]
    per_n = ", ".join(f"n={p['n']}: {exponent_text(p)}" for p in c["per_n"])
    rows.append(
      _row(
        f"fig1b/kappa={c['kappa']:g}/{c['signal']}/structural",
        f"exponent γ of Muon's structural τ ~ λ^γ over λ = "
        f"{', '.join(f'{x:g}' for x in sorted(cfg.curvatures))}, all n pooled, lr "
        f"{c['lr']:g} ({_PAPER_LR_NOTE}), {noise} noise, κ={c['kappa']:g}, {cfg.steps} steps",
        f"γ {_ci_text(e, 'λ')}; per n: {per_n}{_lack_of_fit_text(e)}",
        e["verdict"],
        stats.reproduces(e["verdict"], _EXPECTED["fig1b"]),
        "fig1b_muon_vs_curvature.png",
      )
    )
  return rows


def _fig1d_rows(cfg: SaddleConfig, results: dict, noise: str) -> list[dict]:
  """Fig 1d: AdamW's structural tau against lam over the two flattest curvatures."""
  if "adamw" not in cfg.optimizers or len(cfg.curvatures) < 2:
    return [
      _row(
        "fig1d",
        "AdamW's structural τ against λ at the two flattest curvatures",
        "needs AdamW and at least two curvatures",
        "untestable",
        None,
        None,
      )
    ]
  lams, n, kappa, lr = (
    sorted(cfg.curvatures)[:2],
    max(cfg.dims),
    min(cfg.kappas),
    paper_lr(cfg, "adamw"),
  )
  rows = []
  for signal in cfg.signals:
    cells = [
      c
      for c in results["cells"]
      if c["optimizer"] == "adamw"
      and c["signal"] == signal
      and c["noise"] == noise
      and c["n"] == n
      and c["kappa"] == kappa
      and c["lr"] == lr
      and c["lam"] in lams
    ]
    fit = stats.censored_exponent(
      [c["lam"] for c in cells],
      [c["tau_structural"] for c in cells],
      [c["hit_structural"] for c in cells],
      n_boot=cfg.n_boot,
      seed=cfg.seed,
    )
    e = exponent_entry(fit, x_name="lam")
    verdict = {"dimension-free": "holds", "inconclusive": "inconclusive"}.get(
      e["verdict"], "does not hold"
    )
    rows.append(
      _row(
        f"fig1d/{signal}",
        f"exponent β of AdamW's structural τ ~ λ^β over the two flattest λ "
        f"({lams[0]:g}, {lams[1]:g}) at n = {n}, lr {lr:g}, κ = {kappa:g}; holds iff β's CI lies "
        f"in ±{results['delta']:g}",
        f"β {_ci_text(e, 'λ')}",
        verdict,
        _holds(verdict),
        "fig1d_trajectories.png",
      )
    )
  return rows


# Fig 5's heavy-tailed modality under each reading, and the paper's isotropic modality.
_FIG5_NOISES = {
  "heavy_tail": "Student-t with the power-law column profile at mean 1 (a spiked column)",
  "heavy_tail_unspiked": "Student-t with the power-law column profile at maximum 1",
  "student_t": "Student-t with flat columns (our control: the tails alone)",
  "isotropic": "the paper's isotropic modality (uniform on the sphere)",
}


def _fig5_rows(cfg: SaddleConfig, summary: dict) -> list[dict]:
  """Fig 5a/5b per noise reading and geometry: Muon's KM medians against standard noise."""
  if "muon" not in cfg.optimizers or "standard" not in cfg.noises or len(cfg.noises) < 2:
    return [
      _row(
        f"{cid}",
        "heavy-tailed vs standard noise",
        "ablation not run (add heavy_tail to noises)",
        "untestable",
        None,
        None,
      )
      for cid in ("fig5a", "fig5b")
    ]
  rows = []
  lr, lam, kappa = paper_lr(cfg, "muon"), min(cfg.curvatures), min(cfg.kappas)
  for heavy, reading in _FIG5_NOISES.items():
    if heavy not in cfg.noises:
      continue
    for signal in cfg.signals:
      std = summary[("muon", signal, "standard", lam, kappa, lr)]["structural"]
      hv = summary[("muon", signal, heavy, lam, kappa, lr)]["structural"]
      where = (
        f"{heavy}: {reading}; Muon lr {lr:g} ({_PAPER_LR_NOTE}), "
        f"{seeds_at(cfg, 'muon', lr)} seeds per n, {signal}, λ={lam:g}, κ={kappa:g}"
      )
      rows += _noise_gap_rows(heavy, signal, hv, std, where)
  return rows


def _median_text(per_d: dict) -> str:
  median = per_d["km_median"]
  return "not reached (over half censored)" if median is None else f"{median:g}"


def _noise_gap_rows(heavy: str, signal: str, hv: dict, std: dict, where: str) -> list[dict]:
  """Fig 5a (heavy above standard at the smallest D) and 5b (the gap closes with D)."""
  first = _km_compare(hv["per_D"][0], std["per_D"][0])
  verdict_a = {"higher": "holds", "lower": "does not hold", "overlap": "inconclusive"}[first]
  gap = [_km_compare(h, s) for h, s in zip(hv["per_D"], std["per_D"])]
  if first == "higher" and gap[-1] == "overlap":
    verdict_b = "holds"
  elif (
    first == "higher"
    and gap[-1] == "higher"
    and bound_value(hv["exponent"]) >= bound_value(std["exponent"])
  ):
    verdict_b = "does not hold"
  else:
    verdict_b = "inconclusive"
  return [
    _row(
      f"fig5a/{heavy}/{signal}",
      f"KM median structural τ at the smallest D, {heavy} vs standard (95% KM CIs disjoint); {where}",
      f"{heavy} {_median_text(hv['per_D'][0])} vs standard {_median_text(std['per_D'][0])} "
      f"at D = {std['per_D'][0]['D']}: {first}",
      verdict_a,
      _holds(verdict_a),
      "fig5b_noise_vs_dimension.png",
    ),
    _row(
      f"fig5b/{heavy}/{signal}",
      f"gap between {heavy} and standard KM medians closes with D (CIs disjoint at the "
      f"smallest D, overlapping at the largest); {where}",
      f"KM CIs per D: {', '.join(gap)}; exponents {heavy} {_ci_text(hv)} vs standard "
      f"{_ci_text(std)}",
      verdict_b,
      _holds(verdict_b),
      "fig5b_noise_vs_dimension.png",
    ),
  ]
