"""Stochastic online matrix factorization (paper Sec 4.2, App 9, App 11.1, Figure 2).

An over-parameterized estimator W = U V^T (U, V: n x r) recovers a full-rank
target T = U* diag(s) V*^T from a stream of masked Gaussian inputs:

  * T: U*, V* from the SVD of an n x n standard Gaussian matrix; the spectrum
    decays exponentially from 1 to 1/kappa, s_i = kappa^(-i/(n-1)).
  * Init ("born locked", App 9 Thm 5): the first `active_rank` (= 2) columns of
    U and V are N(0, active_std^2), the other r - 2 columns N(0, dormant_std^2)
    with dormant_std microscopic, so W starts in a rank-2 subspace.
  * Stream: x ~ N(0, I_n), x~ = m * x with m_i ~ Bernoulli(p_i),
    p_i = exp(-mask_decay * i / n) (feature i's survival decays exponentially).
  * Loss: mean over the batch of ||W x~ - T x~||^2.

Since E[x~ x~^T] = diag(p), the expected loss is sum_i p_i ||(W - T)[:, i]||^2;
we record it (normalized by its value at W = 0) instead of the noisy batch
loss. The effective rank of W (entropy form, `metrics.effective_rank`) gives
the rank-expansion step: the first step at which it reaches
`threshold_factor` x its initial value.

Runs are batched as a vmapped grid seeds x kappas for one n and one optimizer
(one compile each), with `lax.scan` over steps.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from muon_jax import metrics
from muon_jax.muon import muon

OPTIMIZERS = ("muon", "adamw")

# Verdict tolerances (see BUILD_NOTES): "dimension-free" when the 95% CI upper
# bound of the step-vs-n exponent is below DIM_FREE_MAX_EXPONENT (the step may
# fall with n, as the paper's Fig 1 shows, but must not grow); "kappa-invariant"
# when the step-vs-kappa exponent's CI lies inside +-KAPPA_MAX_EXPONENT.
WITHIN_STEPS = 20
DIM_FREE_MAX_EXPONENT = 0.2
KAPPA_MAX_EXPONENT = 0.1


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything that fixes one (n, optimizer) grid except the seeds and kappas.

  Defaults are the paper's App 11.1 setup as reconstructed in BUILD_NOTES
  (rank 64, batch 64, 5000 cosine steps, Muon lr 0.02 / beta 0.95 / kimi
  scaling / no weight decay, AdamW lr 1e-3 / (0.9, 0.999) / 1e-8 / wd 0.01).
  """
  n: int
  optimizer: str = "muon"
  rank: int = 64
  batch: int = 64
  steps: int = 5000
  active_rank: int = 2
  active_std: float = 1e-2
  dormant_std: float = 1e-5
  mask_decay: float = 5.0
  muon_lr: float = 0.02
  muon_beta: float = 0.95
  adamw_lr: float = 1e-3
  adamw_b1: float = 0.9
  adamw_b2: float = 0.999
  adamw_eps: float = 1e-8
  adamw_weight_decay: float = 0.01
  dense_steps: int = 200
  log_every: int = 10

  @property
  def r(self) -> int:
    """Estimator rank, capped at n."""
    return min(self.rank, self.n)


def target_spectrum(n: int, kappa) -> jax.Array:
  """s_i = kappa^(-i/(n-1)), i = 0..n-1: 1 down to 1/kappa. Shape (n,)."""
  frac = jnp.arange(n, dtype=jnp.float32) / max(n - 1, 1)
  return jnp.power(jnp.asarray(kappa, jnp.float32), -frac)


def make_target(key, n: int, kappa):
  """T = U* diag(s) V*^T with U*, V* the singular vectors of a Gaussian matrix.

  Returns (T_NxN, u_star_NxN, v_star_NxN, s_N). `kappa` may be traced.
  """
  g_NxN = jax.random.normal(key, (n, n), jnp.float32)
  u_star, _, vt_star = jnp.linalg.svd(g_NxN)
  s_N = target_spectrum(n, kappa)
  return (u_star * s_N) @ vt_star, u_star, vt_star.T, s_N


def survival_probs(n: int, mask_decay: float) -> jax.Array:
  """p_i = exp(-mask_decay * i / n), i = 0..n-1. Shape (n,)."""
  return jnp.exp(-mask_decay * jnp.arange(n, dtype=jnp.float32) / n)


def sample_batch(key, batch: int, p_N) -> jax.Array:
  """Masked Gaussian inputs x~_BxN = m * x, m_i ~ Bernoulli(p_i)."""
  k_x, k_m = jax.random.split(key)
  x_BxN = jax.random.normal(k_x, (batch, p_N.shape[0]), jnp.float32)
  keep_BxN = jax.random.uniform(k_m, x_BxN.shape) < p_N
  return jnp.where(keep_BxN, x_BxN, 0.0)


def init_factors(key, n: int, r: int, active_rank: int, active_std: float,
                 dormant_std: float) -> dict:
  """Asymmetric init: columns < active_rank get active_std, the rest dormant_std."""
  k_u, k_v = jax.random.split(key)
  col_std_R = jnp.where(jnp.arange(r) < active_rank, active_std, dormant_std)
  return {"u": jax.random.normal(k_u, (n, r)) * col_std_R,
          "v": jax.random.normal(k_v, (n, r)) * col_std_R}


def loss_fn(params, x_BxN, t_NxN) -> jax.Array:
  """mean_b ||U V^T x~_b - T x~_b||^2 (never forms the n x n estimator)."""
  pred_BxN = (x_BxN @ params["v"]) @ params["u"].T
  resid_BxN = pred_BxN - x_BxN @ t_NxN.T
  return jnp.mean(jnp.sum(resid_BxN**2, axis=-1))


def expected_loss(params, t_NxN, p_N) -> jax.Array:
  """E_x~[loss] = sum_i p_i ||(U V^T - T)[:, i]||^2."""
  err_NxN = params["u"] @ params["v"].T - t_NxN
  return jnp.sum(p_N * jnp.sum(err_NxN**2, axis=0))


def estimator_singular_values(params) -> jax.Array:
  """The r singular values of U V^T from r x r cores: U = Qu Ru, V = Qv Rv.

  One batched QR call, then one SVD: LAPACK calls stay strictly sequential
  (see `run_single`).
  """
  r_2xRxR = jnp.linalg.qr(jnp.stack([params["u"], params["v"]]), mode="r")
  return jnp.linalg.svd(r_2xRxR[0] @ r_2xRxR[1].T, compute_uv=False)


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
  """Muon (kimi scaling, no weight decay) or AdamW, cosine-annealed over cfg.steps."""
  if cfg.optimizer == "muon":
    return muon(optax.cosine_decay_schedule(cfg.muon_lr, cfg.steps), weight_decay=0.0,
                beta=cfg.muon_beta, scaling="kimi")
  if cfg.optimizer == "adamw":
    return optax.adamw(optax.cosine_decay_schedule(cfg.adamw_lr, cfg.steps), b1=cfg.adamw_b1,
                       b2=cfg.adamw_b2, eps=cfg.adamw_eps, weight_decay=cfg.adamw_weight_decay)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {cfg.optimizer!r}")


def record_steps(cfg: Config) -> np.ndarray:
  """Steps at which metrics are taken: 0, every step to dense_steps, then every
  log_every, plus the last step."""
  dense = min(cfg.dense_steps, cfg.steps)
  sparse = list(range(dense + cfg.log_every, cfg.steps + 1, cfg.log_every))
  tail = [cfg.steps] if (cfg.steps - dense) % cfg.log_every else []
  return np.array(list(range(dense + 1)) + sparse + tail, dtype=np.int32)


def run_keys(seed: int, seed_index, n: int):
  """(target, init, stream) keys of one run; independent of kappa and optimizer,
  so optimizers and condition numbers are compared on paired draws."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), seed_index), n)
  return tuple(jax.random.fold_in(key, i) for i in range(3))


def run_single(cfg: Config, seed: int, seed_index, kappa) -> dict:
  """One training run. Traced in seed_index and kappa (vmap-able).

  Returns a dict of arrays over the R = len(record_steps(cfg)) recorded steps:
  rel_loss_R (expected loss / expected loss at W = 0), batch_loss_R (the
  minibatch loss, averaged over the steps since the previous record; NaN at
  step 0), erank_R and erank_normalized_R (effective rank of W, exp-entropy
  and entropy / log r), target_erank (effective rank of T's spectrum) and
  loss0 (the expected loss at W = 0).
  """
  n, r = cfg.n, cfg.r
  k_target, k_init, k_stream = run_keys(seed, seed_index, n)
  t_NxN, _, _, s_N = make_target(k_target, n, kappa)
  p_N = survival_probs(n, cfg.mask_decay)
  params = init_factors(k_init, n, r, cfg.active_rank, cfg.active_std, cfg.dormant_std)
  # Order the target's SVD before the first QR: XLA's CPU runtime may run
  # independent LAPACK custom calls concurrently, and concurrent OpenBLAS
  # calls hung (futex wait, 0% CPU) and once gave a NaN loss under load.
  t_NxN, params = jax.lax.optimization_barrier((t_NxN, params))
  opt = make_optimizer(cfg)
  loss0 = expected_loss(jax.tree.map(jnp.zeros_like, params), t_NxN, p_N)

  def measure(params, batch_loss):
    s_R = estimator_singular_values(params)
    return {"rel_loss": expected_loss(params, t_NxN, p_N) / loss0, "batch_loss": batch_loss,
            "erank": metrics.effective_rank(s_R),
            "erank_normalized": metrics.effective_rank(s_R, normalized=True)}

  def step(carry, t):
    params, opt_state = carry
    x_BxN = sample_batch(jax.random.fold_in(k_stream, t), cfg.batch, p_N)
    loss, grads = jax.value_and_grad(loss_fn)(params, x_BxN, t_NxN)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  def chunk(carry, ts):
    carry, losses = jax.lax.scan(step, carry, ts)
    return carry, measure(carry[0], jnp.mean(losses))

  def dense_step(carry, t):
    carry, loss = step(carry, t)
    return carry, measure(carry[0], loss)

  rec = record_steps(cfg)
  dense = min(cfg.dense_steps, cfg.steps)
  carry = (params, opt.init(params))
  traces = [jax.tree.map(lambda v: v[None], measure(params, jnp.float32(jnp.nan)))]
  carry, out = jax.lax.scan(dense_step, carry, jnp.arange(1, dense + 1))
  traces.append(out)
  n_chunks = (cfg.steps - dense) // cfg.log_every
  if n_chunks:
    ts = dense + 1 + jnp.arange(n_chunks * cfg.log_every).reshape(n_chunks, cfg.log_every)
    carry, out = jax.lax.scan(chunk, carry, ts)
    traces.append(out)
  done = dense + n_chunks * cfg.log_every
  if done < cfg.steps:
    carry, out = chunk(carry, jnp.arange(done + 1, cfg.steps + 1))
    traces.append(jax.tree.map(lambda v: v[None], out))
  result = jax.tree.map(lambda *v: jnp.concatenate(v), *traces)
  assert result["erank"].shape == rec.shape
  result = {k + "_R": v for k, v in result.items()}
  result["target_erank"] = metrics.effective_rank(s_N)
  result["loss0"] = loss0
  return result


def run_grid(cfg: Config, seed: int, n_seeds: int, kappas: Sequence[float]) -> dict:
  """vmap of run_single over seeds (outer) x kappas (inner); one jit per cfg.

  Every array gains leading (n_seeds, len(kappas)) axes. Returns NumPy arrays.
  """
  fn = jax.jit(jax.vmap(jax.vmap(lambda s, k: run_single(cfg, seed, s, k), in_axes=(None, 0)),
                        in_axes=(0, None)))
  args = (jnp.arange(n_seeds), jnp.asarray(kappas, jnp.float32))
  out = jax.tree.map(np.asarray, fn(*args))
  if nonfinite_count(out):
    # Seen twice in ~20 CPU runs under heavy contention before LAPACK calls were
    # serialized (run_single): rel_loss NaN for a whole unit while its batch
    # losses and ranks were finite; re-executing gave finite values. Retry
    # once; what stays NaN is reported.
    logging.warning("n=%d %s: %d non-finite metrics; re-running the unit", cfg.n, cfg.optimizer,
                    nonfinite_count(out))
    out = jax.tree.map(np.asarray, fn(*args))
  return out


def nonfinite_count(out: dict) -> int:
  """Non-finite entries in a run_grid/run_single output (the step-0 batch loss,
  NaN by construction, excluded)."""
  return int(sum(np.sum(~np.isfinite(np.asarray(v)[..., 1:] if k == "batch_loss_R" else v))
                 for k, v in out.items()))


def rank_expansion_steps(erank_SxKxR, steps_R, threshold_factor: float = 2.0):
  """First recorded step with erank >= threshold_factor * erank at step 0.

  Returns (step_SxK as float with NaN where never crossed, crossed_SxK bool).
  """
  erank = np.asarray(erank_SxKxR)
  idx, crossed = metrics.first_crossing(erank, threshold_factor * erank[..., :1], axis=-1)
  idx, crossed = np.asarray(idx), np.asarray(crossed)
  step = np.where(crossed, np.asarray(steps_R)[np.minimum(idx, len(steps_R) - 1)], np.nan)
  return step.astype(np.float64), crossed


def _fit(x, y, seed):
  """Log-log exponent fit of the crossed runs, or None with fewer than 2 distinct x."""
  ok = np.isfinite(y)
  if len(np.unique(np.asarray(x)[ok])) < 2:
    return None
  return metrics.fit_loglog_exponent(np.asarray(x)[ok], np.asarray(y)[ok], seed=seed)


def summarize(units: dict, dims: Sequence[int], kappas: Sequence[float], optimizers: Sequence[str],
              steps_R, threshold_factor: float = 2.0, seed: int = 0) -> dict:
  """Rank-expansion steps, exponent fits and plain verdicts.

  Args:
    units: {(optimizer, n): run_grid output} (arrays (S, K, R)).
    steps_R: record_steps of the config (same for every unit).
  Returns a JSON-ready dict keyed by optimizer: per-n step arrays (S x K, NaN =
  never crossed within the run), final relative loss, exponent of step vs n
  (all seeds and kappas pooled) and vs kappa (all seeds and n pooled), each with
  a 95% bootstrap CI, and verdicts with the rule that produced them (None
  where the grid cannot decide: a single n or a single kappa).
  """
  hits = np.flatnonzero(np.asarray(steps_R) == WITHIN_STEPS)
  at_within = int(hits[0]) if hits.size else None
  out = {}
  for opt in optimizers:
    per_n, xs_n, xs_k, ys = {}, [], [], []
    for n in dims:
      u = units[(opt, n)]
      step_SxK, crossed = rank_expansion_steps(u["erank_R"], steps_R, threshold_factor)
      # A threshold that needs real expansion, not just leaving the rank-2 start.
      half, _ = metrics.first_crossing(u["erank_R"], 0.5 * u["erank_R"][..., -1:], axis=-1)
      per_n[str(n)] = {
          "expansion_step": _nan_to_none(step_SxK),
          "median_step_to_half_final_erank_per_kappa": np.median(
              np.asarray(steps_R)[np.asarray(half)], axis=0).tolist(),
          "crossed_fraction": float(crossed.mean()),
          "median_step_per_kappa": _nan_to_none(_nanmedian(step_SxK, axis=0)),
          "initial_erank": float(np.mean(u["erank_R"][..., 0])),
          f"erank_at_step_{WITHIN_STEPS}_per_kappa": (
              np.median(u["erank_R"][..., at_within], axis=0).tolist() if at_within is not None
              else None),
          "final_erank_per_kappa": np.mean(u["erank_R"][..., -1], axis=0).tolist(),
          "target_erank_per_kappa": np.mean(u["target_erank"], axis=0).tolist(),
          "final_rel_loss_per_kappa": np.mean(u["rel_loss_R"][..., -1], axis=0).tolist(),
      }
      xs_n.append(np.full(step_SxK.shape, n, np.float64))
      xs_k.append(np.broadcast_to(np.asarray(kappas, np.float64), step_SxK.shape))
      ys.append(step_SxK)
    x_n, x_k, y = (np.concatenate([a.ravel() for a in v]) for v in (xs_n, xs_k, ys))
    all_crossed = bool(np.all(np.isfinite(y)))
    fit_n, fit_k = _fit(x_n, y, seed), _fit(x_k, y, seed)
    within = bool(all_crossed and np.max(y) <= WITHIN_STEPS)
    # None: undecidable (fewer than two distinct n or kappa values).
    dim_free = (None if len(set(dims)) < 2 else
                bool(all_crossed and fit_n["ci_high"] < DIM_FREE_MAX_EXPONENT))
    kappa_inv = (None if len(set(kappas)) < 2 else bool(
        all_crossed and -KAPPA_MAX_EXPONENT < fit_k["ci_low"] < fit_k["ci_high"] < KAPPA_MAX_EXPONENT))
    out[opt] = {
        "per_n": per_n,
        "max_expansion_step": None if not np.any(np.isfinite(y)) else float(np.nanmax(y)),
        "all_crossed": all_crossed,
        "exponent_vs_n": fit_n,
        "exponent_vs_kappa": fit_k,
        "verdicts": {
            f"within_{WITHIN_STEPS}_steps": within,
            "dimension_free": dim_free,
            "kappa_invariant": kappa_inv,
        },
        "verdict_rules": {
            f"within_{WITHIN_STEPS}_steps": f"every run crossed {threshold_factor}x its initial "
                                            f"effective rank by step {WITHIN_STEPS}",
            "dimension_free": f"all runs crossed and the 95% CI upper bound of the step-vs-n "
                              f"log-log exponent < {DIM_FREE_MAX_EXPONENT}",
            "kappa_invariant": f"all runs crossed and the 95% CI of the step-vs-kappa exponent "
                               f"lies inside +-{KAPPA_MAX_EXPONENT}",
        },
    }
  return out


def _nanmedian(a, axis):
  """Median over the finite entries; NaN where none is finite."""
  a = np.asarray(a, np.float64)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return np.nanmedian(a, axis=axis)


def _nan_to_none(a):
  a = np.asarray(a, np.float64)
  return [None if not math.isfinite(v) else v for v in a.ravel()] if a.ndim <= 1 else [
      _nan_to_none(row) for row in a]


# Flag name -> (Config field, low, high, low_inclusive, high_inclusive).
_RANGES = {
    "rank": ("rank", 1, None, True, True),
    "batch": ("batch", 1, None, True, True),
    "steps": ("steps", 1, None, True, True),
    "active_rank": ("active_rank", 1, None, True, True),
    "init_active_std": ("active_std", 0.0, None, False, True),
    "init_dormant_std": ("dormant_std", 0.0, None, True, True),
    "mask_decay": ("mask_decay", 0.0, 100.0, True, True),
    "muon_lr": ("muon_lr", 0.0, None, False, True),
    "muon_beta": ("muon_beta", 0.0, 1.0, True, False),
    "adamw_lr": ("adamw_lr", 0.0, None, False, True),
    "adamw_b1": ("adamw_b1", 0.0, 1.0, True, False),
    "adamw_b2": ("adamw_b2", 0.0, 1.0, True, False),
    "adamw_eps": ("adamw_eps", 0.0, None, False, True),
    "adamw_weight_decay": ("adamw_weight_decay", 0.0, None, True, True),
    "dense_steps": ("dense_steps", 0, None, True, True),
    "log_every": ("log_every", 1, None, True, True),
}


def validate_settings(cfg: Config, dims: Sequence[int], kappas: Sequence[float],
                      optimizers: Sequence[str], n_seeds: int, threshold_factor: float) -> None:
  """Raises validate.FlagError (naming the flag and allowed range) on bad settings.

  `cfg` carries the shared settings (its n and optimizer are ignored).
  """
  from muon_jax import validate
  for flag, (field, low, high, lo_inc, hi_inc) in _RANGES.items():
    validate.check_range(flag, getattr(cfg, field), low=low, high=high, low_inclusive=lo_inc,
                         high_inclusive=hi_inc)
  validate.check_range("dims", list(dims), low=2, high=8192)
  if len(set(dims)) != len(dims):
    raise validate.FlagError(f"--dims={','.join(map(str, dims))} has repeated values")
  for n in dims:
    if min(cfg.rank, n) <= cfg.active_rank:
      raise validate.FlagError(
          f"--dims={n}: the estimator rank min(--rank, n) = {min(cfg.rank, n)} must exceed "
          f"--active_rank={cfg.active_rank} so that dormant columns exist")
  validate.check_range("conditions", list(kappas), low=1.0, high=1e12)
  validate.check_choices("optimizers", list(optimizers), OPTIMIZERS)
  validate.check_range("seeds", n_seeds, low=1, high=10_000)
  validate.check_range("threshold_factor", threshold_factor, low=1.0, low_inclusive=False)


TRACES = ("rel_loss_R", "batch_loss_R", "erank_R", "erank_normalized_R")


def unit_to_json(out: dict) -> dict:
  """run_grid output -> JSON lists (NaN -> None)."""
  return {k: _nan_to_none(v) for k, v in out.items()}


def unit_from_json(d: dict) -> dict:
  """Inverse of unit_to_json (None -> NaN)."""
  return {k: np.array(np.asarray(v, dtype=object), dtype=np.float64) for k, v in d.items()}


def make_figures(units: dict, summary: dict, dims: Sequence[int], kappas: Sequence[float],
                 optimizers: Sequence[str], steps_R, zoom_steps: int = 200) -> dict:
  """Figures 2a-2d as matplotlib figures {"fig2a": ..., ...}.

  2a relative expected loss vs step (one panel per kappa); 2b final loss and
  rank-expansion step vs n with the fitted exponent; 2c effective rank vs step
  (first `zoom_steps`) at the largest kappa; 2d rank-expansion step vs kappa and
  effective rank vs step per kappa at the largest n. Lines are seed medians,
  bands the seed min..max.
  """
  import matplotlib.pyplot as plt
  steps_R = np.asarray(steps_R)
  colors = plt.get_cmap("viridis")(np.linspace(0, 0.85, max(len(dims), len(kappas))))
  styles = {"muon": "-", "adamw": "--"}
  zoom = steps_R <= zoom_steps
  figs = {}

  def band(ax, x, y_SxR, color, style, label):
    ax.plot(x, np.median(y_SxR, axis=0), style, color=color, label=label, lw=1.4)
    ax.fill_between(x, np.min(y_SxR, axis=0), np.max(y_SxR, axis=0), color=color, alpha=0.15, lw=0)

  fig, axes = plt.subplots(1, len(kappas), figsize=(4.2 * len(kappas), 3.6), squeeze=False,
                           layout="constrained")
  for k, kappa in enumerate(kappas):
    ax = axes[0, k]
    for opt in optimizers:
      for i, n in enumerate(dims):
        band(ax, steps_R, units[(opt, n)]["rel_loss_R"][:, k], colors[i], styles[opt], f"{opt} n={n}")
    ax.set(yscale="log", xlabel="step", title=f"κ = {kappa:g}")
  axes[0, 0].set_ylabel("expected loss / loss at W=0")
  axes[0, -1].legend(fontsize=7)
  fig.suptitle("Fig 2a: loss curves (solid Muon, dashed AdamW)")
  figs["fig2a"] = fig

  fig, (ax_l, ax_s) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
  for opt in optimizers:
    for k, kappa in enumerate(kappas):
      final = [np.median(units[(opt, n)]["rel_loss_R"][:, k, -1]) for n in dims]
      ax_l.plot(dims, final, styles[opt] + "o", color=colors[k], label=f"{opt} κ={kappa:g}")
      step = [summary[opt]["per_n"][str(n)]["median_step_per_kappa"][k] for n in dims]
      step = [np.nan if s is None else s for s in step]
      ax_s.plot(dims, step, styles[opt] + "o", color=colors[k], label=f"{opt} κ={kappa:g}")
    fit = summary[opt]["exponent_vs_n"]
    if fit is not None:
      ax_s.plot(dims, np.exp(fit["intercept"]) * np.asarray(dims, float) ** fit["exponent"], ":",
                color="k" if opt == "muon" else "gray",
                label=f"{opt} fit: n^{fit['exponent']:.2f} [{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]")
  ax_l.set(xscale="log", yscale="log", xlabel="n", ylabel="final expected loss / loss at W=0",
           title="final loss vs n")
  ax_s.set(xscale="log", yscale="log", xlabel="n", ylabel="rank-expansion step (median over seeds)",
           title="rank-expansion step vs n")
  ax_l.legend(fontsize=7)
  ax_s.legend(fontsize=7)
  fig.suptitle("Fig 2b: dimension scaling (missing points: never expanded)")
  figs["fig2b"] = fig

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
  for opt in optimizers:
    for i, n in enumerate(dims):
      u = units[(opt, n)]
      band(axes[0], steps_R[zoom], u["erank_R"][:, -1][:, zoom], colors[i], styles[opt], f"{opt} n={n}")
      band(axes[1], steps_R[zoom], u["erank_normalized_R"][:, -1][:, zoom], colors[i], styles[opt],
           f"{opt} n={n}")
  axes[0].axvline(WITHIN_STEPS, color="r", lw=0.8, ls=":", label=f"step {WITHIN_STEPS}")
  axes[0].set(xlabel="step", ylabel="effective rank exp(H)", yscale="log")
  axes[1].set(xlabel="step", ylabel="normalized entropy H / log r")
  axes[0].legend(fontsize=7)
  fig.suptitle(f"Fig 2c: effective rank of UVᵀ, κ = {kappas[-1]:g} (solid Muon, dashed AdamW)")
  figs["fig2c"] = fig

  fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
  for opt in optimizers:
    for i, n in enumerate(dims):
      step = summary[opt]["per_n"][str(n)]["median_step_per_kappa"]
      step = [np.nan if s is None else s for s in step]
      ax_s.plot(kappas, step, styles[opt] + "o", color=colors[i], label=f"{opt} n={n}")
    for k, kappa in enumerate(kappas):
      band(ax_r, steps_R[zoom], units[(opt, dims[-1])]["erank_R"][:, k][:, zoom], colors[k],
           styles[opt], f"{opt} κ={kappa:g}")
  ax_s.set(xscale="log", yscale="log", xlabel="κ", ylabel="rank-expansion step (median)",
           title="rank-expansion step vs κ")
  ax_r.set(xlabel="step", ylabel="effective rank exp(H)", yscale="log", title=f"n = {dims[-1]}")
  ax_s.legend(fontsize=7)
  ax_r.legend(fontsize=7)
  fig.suptitle("Fig 2d: condition-number dependence (solid Muon, dashed AdamW)")
  figs["fig2d"] = fig
  return figs
