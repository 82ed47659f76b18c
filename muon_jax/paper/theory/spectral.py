"""Section 10 on spiked random matrices: spectral maps and subspace stability.

* Section 10.1: the Newton–Schulz spectral map vs the exact polar factor vs
  Gavish–Donoho optimal singular-value shrinkage (`compare_spectral_maps`).
* Section 10.2 / Lemma 9 / Theorem 1: sin(theta) between the top singular
  vectors of signal + noise and the signal vs SNR and dimension, against the
  Benaych-Georges–Nadakuditi (2012) limit, under three SNR normalizations
  (`subspace_sweep`).

Everything is float64 NumPy; random draws use explicit jax.random keys.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from muon_jax import stats
from muon_jax.infra.progress import Progress
from muon_jax.paper.theory.polynomial import iterate, ns_threshold
from muon_jax.stats import fit_loglog_exponent

NORMALIZATIONS = ("fixed_signal", "proportional", "frobenius")
# Exponent gamma of theta_eff(n) = theta * (n / n_ref)**gamma (signal in units of
# the noise bulk edge): fixed per-entry noise with a fixed signal singular value,
# one growing like sqrt(n) (fixed ||noise||_op / ||signal||), and one growing like
# n (fixed ||noise||_F / ||signal||_F).
_GAMMA = {"fixed_signal": -0.5, "proportional": 0.0, "frobenius": 0.5}
# Lemma 9's two readings of the noise, each one normalization: fixed per-entry
# noise with a fixed signal, and noise whose operator norm is bounded relative
# to the signal (Assumption 1's "global operator norm bound").
LEMMA9_READINGS = {"fixed_entry_noise": "fixed_signal", "operator_norm_bounded": "proportional"}


# ----------------------------------------------------------------------------
# Section 10.1: spectral maps vs optimal shrinkage


def mp_edge(beta: float) -> float:
  """Bulk edge 1 + sqrt(beta) of the singular values of Z / sqrt(n), Z (m, n)
  iid N(0, 1), beta = m / n <= 1 (Marchenko–Pastur)."""
  return 1.0 + np.sqrt(beta)


def debias_singular_value(y, beta: float):
  """Gavish & Donoho (2017, IEEE Trans. IT 63(4), arXiv:1405.7511) inverse of the
  spike map: the signal value x whose top singular value converges to y,
  x(y) = sqrt((y^2 - beta - 1 + sqrt((y^2 - beta - 1)^2 - 4 beta)) / 2) above
  the bulk edge, 0 below."""
  y = np.asarray(y, np.float64)
  t = y * y - beta - 1
  d = np.maximum(t * t - 4 * beta, 0.0)
  return np.where(y > mp_edge(beta), np.sqrt(np.maximum((t + np.sqrt(d)) / 2, 0.0)), 0.0)


def optimal_shrinker(y, beta: float, loss: str = "frobenius"):
  """Gavish–Donoho optimal singular-value shrinkers for white noise (sigma = 1 in
  the Y = X + Z / sqrt(n) scaling), 0 at or below the bulk edge 1 + sqrt(beta):
    frobenius: eta(y) = sqrt((y^2 - beta - 1)^2 - 4 beta) / y,
    operator:  eta(y) = x(y) (the debiased signal value).
  The operator-norm shrinker is the singular-value analogue of the paper's
  eq. (4) (Donoho, Gavish & Johnstone 2018): a hard threshold at the bulk edge
  followed by the inverse of the spike map."""
  y = np.asarray(y, np.float64)
  if loss == "operator":
    return debias_singular_value(y, beta)
  if loss != "frobenius":
    raise ValueError(f"loss must be 'frobenius' or 'operator', got {loss!r}")
  t = y * y - beta - 1
  with np.errstate(divide="ignore", invalid="ignore"):
    eta = np.sqrt(np.maximum(t * t - 4 * beta, 0.0)) / y
  return np.where(y > mp_edge(beta), eta, 0.0)


def bgn_cos2(theta, beta: float):
  """Benaych-Georges & Nadakuditi (2012, J. Multivariate Anal. 111) limits of
  the squared cosines between the top singular vectors of theta u v^T + Z/sqrt(n)
  and (u, v) (u in R^m, v in R^n, beta = m/n <= 1):
    left  (u): (theta^4 - beta) / (theta^4 + beta theta^2),
    right (v): (theta^4 - beta) / (theta^4 + theta^2),
  for theta > beta^(1/4) (the BBP threshold), 0 below."""
  th = np.asarray(theta, np.float64)
  num = th**4 - beta
  above = th > beta**0.25
  safe = np.where(above, th, 1.0)
  left = np.where(above, num / (safe**4 + beta * safe**2), 0.0)
  right = np.where(above, num / (safe**4 + safe**2), 0.0)
  return left, right


def _orthonormal(key, n, k):
  g = np.asarray(jax.random.normal(key, (n, k)), np.float64)
  q, r = np.linalg.qr(g)
  return q * np.sign(np.diag(r))


def spiked_matrix(key, m: int, n: int, signal: Sequence[float], *, coherent: bool = False):
  """Y = U diag(signal) V^T + Z / sqrt(n): U (m, k), V (n, k) Haar-orthonormal
  (incoherent w.h.p.; coherent=True uses coordinate vectors instead), Z iid
  N(0, 1). m <= n. Returns dict y (m, n), u (m, k), v (n, k), signal (k,)."""
  signal = np.asarray(signal, np.float64)
  k = signal.size
  ku, kv, kz = jax.random.split(key, 3)
  if coherent:
    u, v = np.eye(m, k), np.eye(n, k)
  else:
    u, v = _orthonormal(ku, m, k), _orthonormal(kv, n, k)
  z = np.asarray(jax.random.normal(kz, (m, n)), np.float64)
  return {"y": (u * signal) @ v.T + z / np.sqrt(n), "u": u, "v": v, "signal": signal}


def incoherence(u) -> float:
  """mu = (n / k) max_i ||U_i||^2 for U (n, k) orthonormal (1 = fully spread)."""
  n, k = u.shape
  return float(n / k * np.max(np.sum(u * u, axis=1)))


def _alignment(fvals, a_proj, b_proj, signal):
  """Alignment of F = U_Y diag(f) V_Y^T with the signal X = U diag(s) V^T.

  a_proj = U^T U_Y (k, r), b_proj = V^T V_Y (k, r). Returns cosine(F, X),
  cosine(F, U V^T) and the fraction of ||F||_F^2 inside span(U) x span(V).
  """
  norm = np.sqrt(np.sum(fvals**2))
  if norm == 0:
    return 0.0, 0.0, 0.0
  inner = a_proj @ np.diag(fvals) @ b_proj.T  # U^T F V  (k, k)
  cos_x = float(np.sum(np.diag(inner) * signal) / (norm * np.linalg.norm(signal)))
  cos_polar = float(np.trace(inner) / (norm * np.sqrt(len(signal))))
  frac = float(np.sum(inner**2) / norm**2)
  return cos_x, cos_polar, frac


SPECTRAL_METHODS = (
  "raw",
  "newton_schulz",
  "polar",
  "threshold_polar",
  "shrink_frobenius",
  "shrink_operator",
)


def compare_spectral_maps(
  key,
  *,
  m: int = 256,
  n: int = 512,
  thetas=(0.5, 1.0, 2.0, 4.0),
  rank: int = 2,
  trials: int = 3,
  coeffs="kimi",
  steps: int = 5,
) -> dict:
  """Section 10.1: NS spectral map vs polar factor vs Gavish–Donoho shrinkage.

  For each theta, a rank-`rank` signal with all singular values theta (units:
  noise bulk edge 1 + sqrt(m/n)) plus white noise; every method maps the
  singular values of Y (NS acts on Y / ||Y||_F, exactly as Muon; by Lemma 6 this
  equals `orthogonalize(Y)`), and we score alignment with the signal.
  Returns per-method (len(thetas), trials) arrays of cos_signal, cos_polar,
  signal_energy_fraction, plus NS-threshold diagnostics.
  """
  if m > n:
    raise ValueError(f"need m <= n, got m={m}, n={n}")
  beta = m / n
  f5 = iterate(coeffs, steps)
  tau = ns_threshold(coeffs, steps)
  out = {
    meth: {
      k: np.zeros((len(thetas), trials)) for k in ("cos_signal", "cos_polar", "energy_fraction")
    }
    for meth in SPECTRAL_METHODS
  }
  edge_norm = np.zeros((len(thetas), trials))
  bulk_amplified = np.zeros((len(thetas), trials))
  keys = jax.random.split(key, len(thetas) * trials).reshape(len(thetas), trials, -1)
  for i, th in enumerate(thetas):
    for t in range(trials):
      sp = spiked_matrix(keys[i, t], m, n, [th] * rank)
      uy, sy, vyt = np.linalg.svd(sp["y"], full_matrices=False)
      a_proj, b_proj = sp["u"].T @ uy, sp["v"].T @ vyt.T
      xs = sy / np.linalg.norm(sy)
      maps = {
        "raw": sy,
        "newton_schulz": f5(xs),
        "polar": np.ones_like(sy),
        "threshold_polar": (sy > mp_edge(beta)).astype(np.float64),
        "shrink_frobenius": optimal_shrinker(sy, beta, "frobenius"),
        "shrink_operator": optimal_shrinker(sy, beta, "operator"),
      }
      for meth, fv in maps.items():
        c1, c2, fr = _alignment(fv, a_proj, b_proj, sp["signal"])
        out[meth]["cos_signal"][i, t] = c1
        out[meth]["cos_polar"][i, t] = c2
        out[meth]["energy_fraction"][i, t] = fr
      edge_norm[i, t] = mp_edge(beta) / np.linalg.norm(sy)
      bulk = sy <= mp_edge(beta)
      bulk_amplified[i, t] = float(np.mean(f5(xs[bulk]) >= 0.5)) if bulk.any() else np.nan
  return {
    "m": m,
    "n": n,
    "beta": beta,
    "rank": rank,
    "thetas": list(thetas),
    "methods": out,
    "ns_threshold_half": tau,
    "bulk_edge_normalized": edge_norm,
    "bulk_fraction_mapped_above_half": bulk_amplified,
  }


# ----------------------------------------------------------------------------
# Section 10.2 / Lemma 9 / Theorem 1: subspace stability vs dimension


def effective_theta(theta, n, n_ref, normalization: str):
  """Signal strength in bulk-edge units at dimension n for a normalization:
  theta_eff = theta * (n / n_ref)**gamma, gamma = -1/2 ("fixed_signal": fixed
  per-entry noise, fixed signal singular value), 0 ("proportional": signal
  grows like sqrt(n), fixed ||noise||_op / ||signal||), +1/2 ("frobenius":
  signal grows like n, fixed ||noise||_F / ||signal||_F)."""
  if normalization not in _GAMMA:
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
  return theta * (n / n_ref) ** _GAMMA[normalization]


# sin(theta) of the mean top singular vector below this at the largest n counts
# as an Omega(1) overlap retained.
RETAINED_SIN = 0.9


def subspace_sweep(
  key,
  *,
  ns=(64, 128, 256, 512),
  thetas=(1.5, 3.0),
  beta: float = 1.0,
  normalizations=NORMALIZATIONS,
  trials: int = 4,
  coeffs="kimi",
  steps: int = 5,
  n_boot: int = 500,
  coherent_check: bool = True,
  progress: Progress | None = None,
) -> dict:
  """sin(theta) of the top singular vectors of a rank-1 spiked matrix vs n.

  Matrices are (m, n) with m = round(beta n); theta is the signal in bulk-edge
  units at n_ref = ns[0]. For each (normalization, theta, n) and trial: sin of
  the left and right principal angles, their BGN (2012) limits at theta_eff,
  and the overlap u^T NS(Y) v of the Muon update with the signal direction.
  The noise and signal vectors of a (n, trial) pair are shared across
  normalizations and thetas. Exponents of the larger sin vs n come from
  `fit_loglog_exponent` (bootstrap CI), judged by `stats.exponent_verdict`
  and stored with the n range they were fitted on. `progress`, when given,
  advances by one per n.
  """
  ns, n_ref = list(ns), min(ns)
  f5 = iterate(coeffs, steps)
  res = {
    nm: {
      str(th): {
        k: np.zeros((len(ns), trials)) for k in ("sin_left", "sin_right", "sin", "ns_overlap")
      }
      for th in thetas
    }
    for nm in normalizations
  }
  mus = np.zeros((len(ns), trials))
  keys = jax.random.split(key, len(ns) * trials).reshape(len(ns), trials, -1)
  for j, n in enumerate(ns):
    m = max(1, int(round(beta * n)))
    for t in range(trials):
      base = spiked_matrix(keys[j, t], m, n, [0.0])
      u, v, z = base["u"][:, 0], base["v"][:, 0], base["y"]
      mus[j, t] = max(incoherence(base["u"]), incoherence(base["v"]))
      for nm in normalizations:
        for th in thetas:
          th_eff = effective_theta(th, n, n_ref, nm)
          y = th_eff * np.outer(u, v) + z
          uy, sy, vyt = np.linalg.svd(y, full_matrices=False)
          cl, cr = abs(u @ uy[:, 0]), abs(v @ vyt[0])
          r = res[nm][str(th)]
          r["sin_left"][j, t] = np.sqrt(max(1 - cl * cl, 0.0))
          r["sin_right"][j, t] = np.sqrt(max(1 - cr * cr, 0.0))
          r["sin"][j, t] = max(r["sin_left"][j, t], r["sin_right"][j, t])
          r["ns_overlap"][j, t] = float(np.sum((u @ uy) * f5(sy / np.linalg.norm(sy)) * (vyt @ v)))
    if progress is not None:
      progress.advance(1, f"Lemma 9 sweep n={n}")
  summary = {}
  for nm in normalizations:
    summary[nm] = {}
    for th in thetas:
      r = res[nm][str(th)]
      th_eff = np.array([effective_theta(th, n, n_ref, nm) for n in ns])
      betas = np.array([max(1, int(round(beta * n))) / n for n in ns])
      c2l, c2r = zip(*(bgn_cos2(te, b) for te, b in zip(th_eff, betas)))
      sin_theory = np.sqrt(1 - np.minimum(np.array(c2l), np.array(c2r)))
      x_n = np.repeat(np.asarray(ns, np.float64), trials)
      y_s = np.maximum(r["sin"].ravel(), 1e-300)
      fit = fit_loglog_exponent(x_n, y_s, n_boot=n_boot, seed=0)
      fit.update(
        n_range=[min(ns), max(ns)],
        delta=stats.DIMENSION_FREE_DELTA,
        verdict=stats.exponent_verdict(
          fit["ci_low"], fit["ci_high"], delta=stats.DIMENSION_FREE_DELTA
        ),
      )
      fit_theory = (
        fit_loglog_exponent(np.asarray(ns, np.float64), np.maximum(sin_theory, 1e-300), n_boot=0)
        if np.all(sin_theory > 0)
        else None
      )
      summary[nm][str(th)] = {
        "theta_eff": th_eff.tolist(),
        "above_bbp": (th_eff > betas**0.25).tolist(),
        "sin_mean": r["sin"].mean(1).tolist(),
        "sin_std": r["sin"].std(1).tolist(),
        "sin_left_mean": r["sin_left"].mean(1).tolist(),
        "sin_right_mean": r["sin_right"].mean(1).tolist(),
        "sin_bgn_limit": sin_theory.tolist(),
        "ns_overlap_mean": r["ns_overlap"].mean(1).tolist(),
        "exponent": fit,
        "exponent_bgn_limit": None if fit_theory is None else fit_theory["exponent"],
        # Lemma 9 promises an Omega(1) overlap at every n: sin stays below
        # RETAINED_SIN (a log-log slope understates growth once sin saturates
        # at 1 beyond the BBP threshold).
        "retains_overlap": bool(r["sin"].mean(1)[-1] < RETAINED_SIN),
      }
  out = {
    "ns": ns,
    "n_ref": n_ref,
    "beta": beta,
    "thetas": list(thetas),
    "trials": trials,
    "incoherence_mean": mus.mean(1).tolist(),
    "summary": summary,
    "raw": res,
  }
  if coherent_check:
    # Gaussian noise is rotation invariant, so incoherence cannot matter: the
    # coherent signal e1 e1^T must give the same sin(theta) distribution.
    n = ns[-1]
    m = max(1, int(round(beta * n)))
    th = effective_theta(thetas[-1], n, n_ref, "proportional")
    ck = jax.random.split(jax.random.fold_in(key, 1), 2 * trials)
    sins = {"coherent": [], "incoherent": []}
    for t in range(trials):
      for name, coh, kk in (("coherent", True, ck[2 * t]), ("incoherent", False, ck[2 * t + 1])):
        sp = spiked_matrix(kk, m, n, [th], coherent=coh)
        uy, _, vyt = np.linalg.svd(sp["y"], full_matrices=False)
        c = min(abs(sp["u"][:, 0] @ uy[:, 0]), abs(sp["v"][:, 0] @ vyt[0]))
        sins[name].append(float(np.sqrt(max(1 - c * c, 0.0))))
    out["coherence_check"] = {
      "n": n,
      "theta": float(th),
      "sin_coherent_mean": float(np.mean(sins["coherent"])),
      "sin_incoherent_mean": float(np.mean(sins["incoherent"])),
      "sin_coherent": sins["coherent"],
      "sin_incoherent": sins["incoherent"],
    }
  return out
