"""The Newton–Schulz quintic: Lemma 2 (iteration dynamics) and Lemma 3 (robustness).

For rho(x) = a x + b x^3 + c x^5 and its 5-fold composition rho^(5): critical
points, exact ranges on intervals, forward-invariant intervals, every quantity
of Lemma 2 (`lemma2`), and Lemma 3's coefficient-perturbation radius
(`robustness_radius`, `paper_interval_radius`).

Scalar maps are pure arithmetic (work on NumPy or JAX arrays, jit-able);
everything else is float64 NumPy.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from muon_jax.newton_schulz import resolve_coeffs

# Constants the paper's Lemma 2 / Lemma 3 use (reconstructed; see BUILD_NOTES).
PAPER_SMALL = 0.02  # Case 1: intermediate iterates stay in (0, 0.02].
PAPER_RATIO_BOUND = 483.0  # Statement 1: rho^(5)(x) >= 483 x on (0, delta0].
PAPER_MIDDLE = (1e-4, 0.6)  # Statement 2: the "middle interval".
PAPER_FIFTH_LOWER = 0.03  # Statement 2: rho^(5) > 0.03 there.
PAPER_X0 = 0.03  # Statement 3: the orbit's starting point.
PAPER_ORBIT_LOWER = 0.681  # Statement 3: fifth iterate >= 0.681.
PAPER_INTERVAL = (0.6, 1.205)  # Case 3: the forward-invariant interval I.


# ----------------------------------------------------------------------------
# Scalar maps


def _poly(x, a, b, c):
  x2 = x * x
  return x * (a + x2 * (b + c * x2))


def quintic(coeffs="kimi", step: int = 0):
  """rho(x) = a x + b x^3 + c x^5 as a callable on arrays (NumPy or JAX).

  coeffs: preset name, (a, b, c) or a per-step schedule; `step` picks the
  step's polynomial of a schedule (all steps of "kimi" are equal).
  """
  a, b, c = resolve_coeffs(coeffs)[step]
  return lambda x: _poly(x, a, b, c)


def iterate(coeffs="kimi", steps: int = 5):
  """rho_steps o ... o rho_1 as a callable on arrays: the scalar map Newton–Schulz
  applies to every Frobenius-normalized singular value (paper Lemma 6)."""
  schedule = resolve_coeffs(coeffs, steps)

  def composed(x):
    for a, b, c in schedule:
      x = _poly(x, a, b, c)
    return x

  return composed


class CriticalPoints(NamedTuple):
  local_max: float | None  # first positive zero of rho' (rho rises before it)
  local_min: float | None  # second positive zero of rho'


def _critical(a, b, c):
  """Positive zeros of rho'(x) = a + 3b x^2 + 5c x^4 (arrays; NaN when absent).

  With a > 0, rho' > 0 near 0, so the first simple positive zero is a local max
  and the second a local min.
  """
  a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
  disc = 9 * b * b - 20 * a * c
  with np.errstate(invalid="ignore", divide="ignore"):
    root = np.sqrt(np.where(disc > 0, disc, np.nan))
    t = np.stack([(-3 * b - root) / (10 * c), (-3 * b + root) / (10 * c)])
    t = np.where(c != 0, t, np.where(b != 0, -a / (3 * b), np.nan)[None])
    t = np.sort(np.where(t > 0, t, np.nan), axis=0)  # NaNs last
    x = np.sqrt(t)
  valid = a > 0
  return np.where(valid, x[0], np.nan), np.where(valid, x[1], np.nan)


def critical_points(coeffs="kimi", step: int = 0) -> CriticalPoints:
  """Local max / local min of rho on x > 0 (closed form; None when absent)."""
  a, b, c = resolve_coeffs(coeffs)[step]
  xmax, xmin = _critical(a, b, c)
  as_float = lambda v: None if np.isnan(v) else float(v)
  return CriticalPoints(as_float(xmax), as_float(xmin))


def _range_on(a, b, c, lo, hi):
  """Exact (min, max) of rho over [lo, hi]: endpoints and interior critical points."""
  xmax, xmin = _critical(a, b, c)
  vals = [_poly(lo, a, b, c), _poly(hi, a, b, c)]
  for x in (xmax, xmin):
    inside = (x > lo) & (x < hi)
    vals.append(_poly(np.where(inside, x, lo), a, b, c))
  vals = np.stack(vals)
  return vals.min(0), vals.max(0)


def _minimize(f, lo, hi, grid: int, *, log: bool = False, refine: int = 80):
  """Global min of a scalar function on [lo, hi]: dense grid + golden section
  in the bracket around the grid minimum. Returns (f_min, x_min)."""
  x = np.linspace(lo, hi, grid)
  if log:
    x = np.unique(np.concatenate([x, np.geomspace(lo, hi, grid)]))
  y = f(x)
  i = int(np.argmin(y))
  l, r = x[max(i - 1, 0)], x[min(i + 1, x.size - 1)]
  g = (np.sqrt(5) - 1) / 2
  best_x, best_y = x[i], y[i]
  for _ in range(refine):
    m1, m2 = r - g * (r - l), l + g * (r - l)
    f1, f2 = f(np.array([m1, m2]))
    if f1 < f2:
      r = m2
    else:
      l = m1
    for xm, fm in ((m1, f1), (m2, f2)):
      if fm < best_y:
        best_x, best_y = xm, fm
  return float(best_y), float(best_x)


def ns_threshold(coeffs="kimi", steps: int = 5, level: float = 0.5) -> float:
  """Smallest normalized singular value x with rho^(5)(x) >= level (bisection
  below the first local max, where rho^(5) is increasing)."""
  f = iterate(coeffs, steps)
  lo, hi = 0.0, 1e-12
  while f(hi) < level and hi < 1.0:
    lo, hi = hi, hi * 2
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if f(mid) < level else (lo, mid)
  return hi


# ----------------------------------------------------------------------------
# Invariant intervals


def _minimal_invariant(A, B, C, *, cap: float = 10.0, tol: float = 1e-13, max_iter: int = 3000):
  """Smallest interval J containing the seed with rho_k(J) in J for every step k.

  A, B, C: (P, S) coefficients of S step polynomials for P candidate
  polynomials. Seed: {1} and, for each step with both critical points, its
  trapping interval [rho(x_min), rho(x_max)] (orbits from the middle interval
  sweep through both critical points, so an interval absorbing them must
  contain both critical values). J grows monotonically: J <- hull(J, rho_k(J));
  any invariant interval containing the seed contains every iterate, so
  divergence (J leaves (0, cap)) proves no such interval exists.
  Returns (lo, hi, exists), each of shape (P,).
  """
  A, B, C = (np.asarray(v, np.float64) for v in (A, B, C))
  P, S = A.shape
  lo, hi = np.ones(P), np.ones(P)
  with np.errstate(over="ignore", invalid="ignore"):
    for k in range(S):
      xmax, xmin = _critical(A[:, k], B[:, k], C[:, k])
      both = ~np.isnan(xmax) & ~np.isnan(xmin)
      lo = np.where(
        both, np.minimum(lo, _poly(np.where(both, xmin, 1.0), A[:, k], B[:, k], C[:, k])), lo
      )
      hi = np.where(
        both, np.maximum(hi, _poly(np.where(both, xmax, 1.0), A[:, k], B[:, k], C[:, k])), hi
      )
    done = np.zeros(P, bool)
    exists = np.zeros(P, bool)
    for _ in range(max_iter):
      new_lo, new_hi = lo.copy(), hi.copy()
      for k in range(S):
        rmin, rmax = _range_on(A[:, k], B[:, k], C[:, k], lo, hi)
        new_lo, new_hi = np.minimum(new_lo, rmin), np.maximum(new_hi, rmax)
      bad = ~(new_lo > 0) | ~(new_hi < cap)
      conv = (lo - new_lo <= tol) & (new_hi - hi <= tol) & ~bad
      exists = np.where(done, exists, conv)
      done |= conv | bad
      lo, hi = np.where(done, lo, new_lo), np.where(done, hi, new_hi)
      if done.all():
        break
  return lo, hi, exists


def invariant_interval(coeffs="kimi", steps: int = 5):
  """Smallest interval containing 1 and every step's trapping interval that
  each step polynomial maps into itself, or None when none exists in (0, 10).
  """
  s = np.asarray(resolve_coeffs(coeffs, steps))
  lo, hi, ok = _minimal_invariant(s[None, :, 0], s[None, :, 1], s[None, :, 2])
  return (float(lo[0]), float(hi[0])) if ok[0] else None


def interval_image(coeffs, interval, steps: int = 5):
  """Exact hull of the images rho_k(interval) over the schedule's steps."""
  lo, hi = interval
  mins, maxs = [], []
  for a, b, c in resolve_coeffs(coeffs, steps):
    rmin, rmax = _range_on(a, b, c, np.float64(lo), np.float64(hi))
    mins.append(float(rmin))
    maxs.append(float(rmax))
  return min(mins), max(maxs)


# ----------------------------------------------------------------------------
# Lemma 2


def lemma2(
  coeffs="kimi",
  *,
  steps: int = 5,
  x_small: float = PAPER_SMALL,
  middle: Sequence[float] = PAPER_MIDDLE,
  x0: float = PAPER_X0,
  paper_interval: Sequence[float] = PAPER_INTERVAL,
  grid: int = 200_001,
  orbit_steps: int | None = None,
) -> dict:
  """Every quantity of the paper's Lemma 2, computed for a preset or schedule.

  delta0 = x_small / (a_1 a_2 a_3 a_4): then all intermediate iterates of
  x <= delta0 stay below x_small (rho_k(x) <= a_k x while b_k x^2 + c_k x^4 <= 0),
  so rho^(5)(x) >= prod_k h_k(x_small) x with h_k(x) = a_k + b_k x^2 + c_k x^4
  (the paper's analytic bound; for kimi h(0.02)^5 = 483.5, its "483").
  Minima are over a dense grid refined by golden section.
  """
  schedule = np.asarray(resolve_coeffs(coeffs, steps))
  a = schedule[:, 0]
  f5 = iterate(coeffs, steps)
  delta0 = x_small / float(np.prod(a[:-1]))
  h_small = schedule[:, 0] + schedule[:, 1] * x_small**2 + schedule[:, 2] * x_small**4
  # Case-1 premises: h_k decreasing on [0, x_small] and rho_k(x) <= a_k x there.
  case1_premises = bool(
    np.all(schedule[:, 1] < 0)
    and np.all(schedule[:, 1] * x_small**2 + schedule[:, 2] * x_small**4 <= 0)
  )
  ratio = lambda x: f5(x) / x
  min_ratio, argmin_ratio = _minimize(ratio, delta0 * 1e-9, delta0, grid, log=True)
  # The review's rendering of statement 1 reads "(0, 0.02]" instead of (0, delta0].
  min_ratio_x_small, _ = _minimize(ratio, x_small * 1e-9, x_small, grid, log=True)
  min_mid, argmin_mid = _minimize(f5, middle[0], middle[1], grid, log=True)

  crit = [critical_points(schedule, k) for k in range(len(schedule))]
  computed = invariant_interval(schedule, len(schedule))
  image = interval_image(schedule, computed, len(schedule)) if computed else None
  paper_image = interval_image(schedule, paper_interval, len(schedule))
  # A schedule whose steps differ need not have a common invariant interval;
  # its last polynomial is the one a longer run would settle on.
  tail = invariant_interval(schedule[-1:], 1)
  tail_image = interval_image(schedule[-1:], tail, 1) if tail else None
  paper_invariant = paper_image[0] >= paper_interval[0] and paper_image[1] <= paper_interval[1]

  # Orbit from x0: kimi can run on; a fixed schedule runs its own length.
  n_orbit = orbit_steps or len(schedule)
  try:
    orbit_schedule = resolve_coeffs(coeffs, n_orbit)
  except ValueError:
    orbit_schedule = tuple(map(tuple, schedule))
  orbit = [float(x0)]
  for a_k, b_k, c_k in orbit_schedule:
    orbit.append(float(_poly(orbit[-1], a_k, b_k, c_k)))

  def entry(interval):
    if interval is None:
      return None
    hits = [k for k, x in enumerate(orbit) if interval[0] <= x <= interval[1]]
    return hits[0] if hits else None

  # Case-2 split of the proof: below x_max / (a_1...a_4) the first four
  # iterates stay in the monotone region [0, x_max] of the first polynomial.
  xmax0 = crit[0].local_max
  x_split = None if xmax0 is None else xmax0 / float(np.prod(a[:-1]))
  return {
    "coeffs": [list(map(float, row)) for row in schedule],
    "critical_points": [{"local_max": c.local_max, "local_min": c.local_min} for c in crit],
    "critical_values": [
      {
        "at_local_max": None if c.local_max is None else float(_poly(c.local_max, *row)),
        "at_local_min": None if c.local_min is None else float(_poly(c.local_min, *row)),
      }
      for c, row in zip(crit, schedule)
    ],
    "x_small": x_small,
    "delta0": delta0,
    "min_ratio_small": min_ratio,
    "min_ratio_small_argmin": argmin_ratio,
    "ratio_limit_at_zero": float(np.prod(a)),
    "ratio_bound_analytic": float(np.prod(h_small)),
    "case1_premises_hold": case1_premises,
    "min_ratio_up_to_x_small": min_ratio_x_small,
    "middle_interval": list(middle),
    "min_fifth_iterate_middle": min_mid,
    "min_fifth_iterate_middle_argmin": argmin_mid,
    "case2_split": x_split,
    "invariant_interval": None if computed is None else list(computed),
    "invariant_image": None if image is None else list(image),
    "invariant_holds": bool(
      image is not None and image[0] >= computed[0] - 1e-12 and image[1] <= computed[1] + 1e-12
    ),
    "tail_invariant_interval": None if tail is None else list(tail),
    "tail_invariant_image": None if tail_image is None else list(tail_image),
    "paper_interval": list(paper_interval),
    "paper_interval_image": list(paper_image),
    "paper_interval_invariant": bool(paper_invariant),
    "x0": x0,
    "orbit": orbit,
    "orbit_entry_step": entry(computed),
    "orbit_entry_step_tail_interval": entry(tail),
    "orbit_entry_step_paper_interval": entry(paper_interval),
    "fifth_iterate_from_x0": orbit[min(5, len(orbit) - 1)],
  }


# ----------------------------------------------------------------------------
# Lemma 3


def perturbation_grid(levels: int) -> np.ndarray:
  """(levels^3, 3) directions with entries in linspace(-1, 1, levels): the
  corners of the unit infinity-ball plus a regular grid of its interior."""
  t = np.linspace(-1.0, 1.0, levels)
  return np.stack(np.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)


def check_perturbed(
  coeffs,
  deltas,
  *,
  steps: int = 5,
  middle=PAPER_MIDDLE,
  fifth_lower: float = PAPER_FIFTH_LOWER,
  paper_interval=PAPER_INTERVAL,
  grid: int = 4001,
  tail: bool = False,
) -> dict:
  """Lemma 3's conditions for every perturbed polynomial coeffs + delta.

  deltas: (P, 3) additive (da, db, dc), applied to every step of the schedule.
  Returns (P,) arrays: "exists" (an invariant interval containing the seed of
  `_minimal_invariant` exists in (0, 10)), "middle_min" (min of the perturbed
  rho^(5) on the middle interval), "middle_ok" (middle_min >= fifth_lower),
  "paper_interval_ok" (every step maps the paper's I into itself).
  """
  schedule = np.asarray(resolve_coeffs(coeffs, steps))
  deltas = np.atleast_2d(np.asarray(deltas, np.float64))
  coef = schedule[None] + deltas[:, None, :]  # (P, S, 3)
  A, B, C = coef[..., 0], coef[..., 1], coef[..., 2]
  x = np.unique(np.concatenate([np.linspace(*middle, grid), np.geomspace(*middle, grid)]))
  x = np.broadcast_to(x, (len(deltas), x.size))
  with np.errstate(over="ignore", invalid="ignore"):
    for k in range(A.shape[1]):
      x = _poly(x, A[:, k : k + 1], B[:, k : k + 1], C[:, k : k + 1])
    middle_min = np.nan_to_num(x.min(1), nan=-np.inf)
  # Invariance only needs each distinct step polynomial once.
  rows = schedule[-1:] if tail else np.unique(schedule, axis=0)
  inv = rows[None] + deltas[:, None, :]
  _, _, exists = _minimal_invariant(inv[..., 0], inv[..., 1], inv[..., 2])
  lo, hi = paper_interval
  fixed_ok = np.ones(len(deltas), bool)
  for k in range(A.shape[1]):
    rmin, rmax = _range_on(
      A[:, k], B[:, k], C[:, k], np.full(len(deltas), lo), np.full(len(deltas), hi)
    )
    fixed_ok &= (rmin >= lo) & (rmax <= hi)
  return {
    "exists": exists,
    "middle_min": middle_min,
    "middle_ok": middle_min >= fifth_lower,
    "paper_interval_ok": fixed_ok,
  }


CRITERIA = ("exists", "paper_interval")


def robustness_radius(
  coeffs="kimi",
  *,
  criterion: str = "exists",
  steps: int = 5,
  levels: int = 5,
  eps_max: float = 1.0,
  tol: float = 1e-7,
  middle=PAPER_MIDDLE,
  fifth_lower: float = PAPER_FIFTH_LOWER,
  paper_interval=PAPER_INTERVAL,
  tail: bool = False,
) -> dict:
  """Lemma 3's robustness radius by bisection on eps.

  criterion "exists": some invariant interval (containing 1 and the critical
  values) survives and rho^(5) >= fifth_lower on the middle interval;
  "paper_interval": the paper's I itself stays invariant and the same middle
  bound holds. At every eps all levels^3 grid points of the eps-box (its 8
  corners included) are checked; the radius is the largest eps where all pass
  (up to tol, assuming the failing set grows with eps). Returns the radius and
  the failing perturbation(s) found just beyond it. tail=True asks for an
  interval invariant under the last step only (schedules whose steps differ
  have no common one).
  """
  if criterion not in CRITERIA:
    raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
  directions = perturbation_grid(levels)
  kw = dict(
    steps=steps, middle=middle, fifth_lower=fifth_lower, paper_interval=paper_interval, tail=tail
  )

  def failing(eps):
    r = check_perturbed(coeffs, eps * directions, **kw)
    ok = r["middle_ok"] & (r["exists"] if criterion == "exists" else r["paper_interval_ok"])
    return ~ok, r

  fail0, _ = failing(0.0)
  if fail0.any():
    return {"criterion": criterion, "tail": tail, "radius": 0.0, "nominal_passes": False}
  lo, hi = 0.0, eps_max
  fail_hi, res_hi = failing(hi)
  if not fail_hi.any():
    return {
      "criterion": criterion,
      "tail": tail,
      "radius": eps_max,
      "nominal_passes": True,
      "radius_is_lower_bound": True,
    }
  while hi - lo > tol:
    mid = 0.5 * (lo + hi)
    fail_mid, res_mid = failing(mid)
    if fail_mid.any():
      hi, fail_hi, res_hi = mid, fail_mid, res_mid
    else:
      lo = mid
  idx = np.flatnonzero(fail_hi)
  worst = idx[np.argmin(res_hi["middle_min"][idx])]
  reasons = []
  if not res_hi["middle_ok"][worst]:
    reasons.append("middle_min_below_bound")
  key = "exists" if criterion == "exists" else "paper_interval_ok"
  if not res_hi[key][worst]:
    reasons.append(
      "no_invariant_interval" if criterion == "exists" else "paper_interval_not_invariant"
    )
  return {
    "criterion": criterion,
    "tail": tail,
    "radius": lo,
    "radius_bracket": [lo, hi],
    "nominal_passes": True,
    "searched_directions": int(len(directions)),
    "worst_perturbation": (hi * directions[worst]).tolist(),
    "worst_direction": directions[worst].tolist(),
    "worst_fails_because": reasons,
    "failing_directions_beyond": directions[idx].tolist(),
  }


def paper_interval_radius(coeffs="kimi", *, interval=PAPER_INTERVAL, grid: int = 200_001) -> dict:
  """Exact infinity-norm radius keeping a fixed interval I invariant.

  For x > 0 all monomials x, x^3, x^5 are positive, so over the eps-box the
  perturbed rho(x) ranges exactly over rho(x) -+ eps s(x), s(x) = x + x^3 + x^5,
  attained at the corners -+(1,1,1). I stays invariant iff eps <= margin(x)/s(x)
  for all x in I, margin(x) = min(rho(x) - lo, hi - rho(x)). Also returns the
  paper's proof bound: the worst margin over I divided by the Cauchy–Schwarz
  bound sqrt(3)*||(hi, hi^3, hi^5)||_2 (a sufficient, smaller radius).
  """
  lo, hi = interval
  x = np.linspace(lo, hi, grid)
  s = x + x**3 + x**5
  best, best_x, best_side = np.inf, None, None
  margins = []
  for a, b, c in resolve_coeffs(coeffs):
    y = _poly(x, a, b, c)
    for side, m in (("lower", y - lo), ("upper", hi - y)):
      r = m / s
      i = int(np.argmin(r))
      margins.append(m.min())
      if r[i] < best:
        best, best_x, best_side = float(r[i]), float(x[i]), side
  margin = float(min(margins))
  cs = np.sqrt(3.0) * np.linalg.norm([hi, hi**3, hi**5])
  sign = -1.0 if best_side == "lower" else 1.0
  return {
    "radius": max(best, 0.0),
    "binding_x": best_x,
    "binding_side": best_side,
    "worst_perturbation": [sign * max(best, 0.0)] * 3,
    "min_margin": margin,
    "paper_proof_bound": max(margin, 0.0) / cs,
  }


def robustness_slice(
  coeffs="kimi", *, da, dc, db: float = 0.0, steps: int = 5, tail: bool = False
) -> np.ndarray:
  """Lemma 3 pass mask ("exists" criterion) on the (da, dc) grid at fixed db.

  da: (A,), dc: (C,) perturbation values. Returns a (C, A) boolean array.
  """
  ga, gc = np.meshgrid(np.asarray(da, np.float64), np.asarray(dc, np.float64))
  deltas = np.stack([ga.ravel(), np.full(ga.size, db), gc.ravel()], -1)
  r = check_perturbed(coeffs, deltas, steps=steps, tail=tail)
  return (r["exists"] & r["middle_ok"]).reshape(ga.shape)
