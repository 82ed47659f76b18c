"""Batched saddle-escape simulator (paper Sec 4.1, App 11.1-11.2, Figures 1, 5).

Model (App 11.1, eqs. (6)-(7), reconstructed in BUILD_NOTES.md): a parameter
W in R^{n x n} (D = n^2) near a flat saddle of

    f(W) = -(lam / 2) <S, W>^2  (+ (mu / 2) ||W - <S, W> S||_F^2, off by default)

with a unit rank-1 structural direction S = u_S v_S^T (`aligned`: u_S = v_S =
e_1, so S = E_11 as in App 11.1; `incoherent`: random unit u_S, v_S, the
delocalized signal of Assumption 1). The stochastic gradient is

    G = grad f(W) + N,   N = B - <S, B> S + sqrt(kappa) sigma <S, X> S,

where X is an n x n matrix of unit-variance draws and B the bulk noise built
from it (`standard`: B = sigma X, X Gaussian, which for S = E_11 is exactly
eq. (7)'s sqrt(Sigma) ⊙ Z with Sigma_ij = sigma^2, Sigma_11 = kappa sigma^2;
`isotropic`: X uniform on the sphere of radius n (same total energy);
`heavy_tail`: X standardized Student-t(nu) draws and a power-law column
variance profile). kappa is the structural variance ratio Var<S, G> / sigma^2.

`run_grid` runs every (lam, kappa, lr, seed) cell of one n and one noise
modality in a single compiled function: vmap over cells, a while_loop over
chunks of a lax.scan (it stops when every cell has escaped under both
criteria), cells spread over local devices with shard_map. Escape-time
metrics (Definition 1): tau_esc (|<S, W>| >= R), tau_esc_frob (||W||_F >= R),
tau_lock (top singular pair of the momentum aligned with S); a cell's state
and metrics freeze once it has escaped under both criteria; never-reached
times are censored at `steps` with a False flag.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec as P

from muon_jax import metrics
from muon_jax.muon import muon

SIGNALS = ("aligned", "incoherent")
NOISES = ("standard", "isotropic", "heavy_tail")
OPTIMIZERS = ("muon", "adamw", "sgd")
CRITERIA = ("tau_esc", "tau_esc_frob")
DEFAULT_LR = {"muon": 0.02, "adamw": 1e-3, "sgd": 1e-2}

OptimizerFn = Callable[[Any], optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class SaddleConfig:
  """Static settings of one compiled grid (everything but the per-cell axes).

  Attributes:
    n: matrix side; D = n^2.
    signal: "aligned" (S = E_11) or "incoherent" (S = u v^T, random unit u, v).
    noise: "standard", "isotropic" or "heavy_tail" (App 11.2).
    sigma: bulk noise standard deviation per entry (App 11.1: 1).
    radius: Taylor radius R of both escape criteria.
    steps: step budget; times never reached are censored at this value.
    lock_threshold: |u1 . u_S| |v1 . v_S| level that counts as subspace lock.
    power_iters: warm-started power iterations per step for the top pair.
    init_scale: W_0 = init_scale * (standard Gaussian); 0 starts at the saddle.
    bulk_curvature: mu >= 0, positive curvature off the structural direction.
    tail_df: Student-t degrees of freedom (integer >= 3) for heavy_tail.
    tail_exponent: alpha of the heavy_tail column variance profile j^-alpha.
    chunk: steps per scan chunk between "all escaped?" checks.
  """
  n: int
  signal: str = "aligned"
  noise: str = "standard"
  sigma: float = 1.0
  radius: float = 1.0
  steps: int = 3000
  lock_threshold: float = 0.9
  power_iters: int = 3
  init_scale: float = 0.0
  bulk_curvature: float = 0.0
  tail_df: int = 3
  tail_exponent: float = 1.0
  chunk: int = 100

  def __post_init__(self):
    if self.n < 2:
      raise ValueError(f"n={self.n} must be >= 2")
    if self.signal not in SIGNALS:
      raise ValueError(f"signal must be one of {SIGNALS}, got {self.signal!r}")
    if self.noise not in NOISES:
      raise ValueError(f"noise must be one of {NOISES}, got {self.noise!r}")
    if self.steps < 1 or self.chunk < 1 or self.power_iters < 1:
      raise ValueError("steps, chunk and power_iters must be >= 1")
    if self.sigma < 0 or self.radius <= 0 or self.bulk_curvature < 0 or self.init_scale < 0:
      raise ValueError("need sigma >= 0, radius > 0, bulk_curvature >= 0, init_scale >= 0")
    if int(self.tail_df) != self.tail_df or self.tail_df < 3:
      raise ValueError(f"tail_df={self.tail_df} must be an integer >= 3 (finite variance)")


class Geometry(NamedTuple):
  """Structural direction S = u_S v_S^T and the bulk variance profile."""
  u: jax.Array  # (n,), unit.
  v: jax.Array  # (n,), unit.
  col_var: jax.Array  # (n,), per-column bulk variance / sigma^2 (mean 1).


class CellState(NamedTuple):
  """Per-cell carry of the simulation (leading cell axis when batched)."""
  w: jax.Array  # (n, n) parameters.
  opt_state: Any
  v_pow: jax.Array  # (n,) warm start of the power iteration.
  tau: jax.Array  # (3,) int32: tau_esc, tau_esc_frob, tau_lock (censored = steps).
  hit: jax.Array  # (3,) bool: escaped, escaped_frob, locked.


# ----------------------------------------------------------------------------
# Model: geometry, noise, gradient.


def _roots(seed: int):
  """Independent key streams of a run: (signal directions, noise)."""
  signal_root, noise_root = jax.random.split(jax.random.key(seed))
  return signal_root, noise_root


def make_geometry(cfg: SaddleConfig, seed: int) -> Geometry:
  """Structural direction (fixed per run and n) and heavy-tail column profile."""
  n = cfg.n
  if cfg.signal == "aligned":
    u = v = jnp.zeros(n).at[0].set(1.0)
  else:
    ku, kv = jax.random.split(jax.random.fold_in(_roots(seed)[0], n))
    u = jax.random.normal(ku, (n,))
    v = jax.random.normal(kv, (n,))
    u, v = u / jnp.linalg.norm(u), v / jnp.linalg.norm(v)
  return Geometry(u=u, v=v, col_var=column_variance(n, cfg.noise, cfg.tail_exponent))


def column_variance(n: int, noise: str, exponent: float) -> jax.Array:
  """Bulk variance per column / sigma^2: j^-alpha (heavy_tail) with mean 1, else 1."""
  if noise != "heavy_tail":
    return jnp.ones(n)
  q = jnp.arange(1, n + 1, dtype=jnp.float32) ** (-exponent)
  return q / jnp.mean(q)


def unit_draws(key, cfg: SaddleConfig) -> jax.Array:
  """(n, n) unit-variance draws X of the modality (before the column profile)."""
  n = cfg.n
  if cfg.noise == "standard":
    return jax.random.normal(key, (n, n))
  if cfg.noise == "isotropic":
    z = jax.random.normal(key, (n, n))
    return z * (n / jnp.linalg.norm(z))  # uniform on the sphere ||X||_F = n = sqrt(D).
  # Student-t(nu) as Z / sqrt(chi2_nu / nu) with chi2_nu a sum of nu squared
  # normals (exact for integer nu, and no rejection loop under vmap), scaled
  # to unit variance (Var t_nu = nu / (nu - 2)).
  nu = int(cfg.tail_df)
  kz, kc = jax.random.split(key)
  z = jax.random.normal(kz, (n, n))
  chi2 = jnp.sum(jnp.square(jax.random.normal(kc, (nu, n, n))), axis=0)
  return z / jnp.sqrt(chi2 / nu) / math.sqrt(nu / (nu - 2))


def project(geom: Geometry, m: jax.Array) -> jax.Array:
  """<S, M> = u_S^T M v_S."""
  return geom.u @ m @ geom.v


def sample_noise(key, geom: Geometry, kappa, cfg: SaddleConfig) -> jax.Array:
  """Gradient noise N (n, n): modality bulk off S, variance kappa sigma^2 along S."""
  x = unit_draws(key, cfg)
  bulk = cfg.sigma * jnp.sqrt(geom.col_var)[None, :] * x
  s = jnp.outer(geom.u, geom.v)
  structural = jnp.sqrt(kappa) * cfg.sigma * project(geom, x) - project(geom, bulk)
  return bulk + structural * s


def expected_gradient(w, geom: Geometry, lam, cfg: SaddleConfig) -> jax.Array:
  """grad f(W) = -lam <S, W> S + mu (W - <S, W> S): the rank-1 drift of eq. (7)."""
  proj = project(geom, w)
  s = jnp.outer(geom.u, geom.v)
  return -lam * proj * s + cfg.bulk_curvature * (w - proj * s)


def stochastic_gradient(key, w, geom: Geometry, lam, kappa, cfg: SaddleConfig) -> jax.Array:
  """One draw of G = grad f(W) + N (App 11.1 eq. (7))."""
  return expected_gradient(w, geom, lam, cfg) + sample_noise(key, geom, kappa, cfg)


# ----------------------------------------------------------------------------
# Optimizers.


def make_optimizer(name: str, **overrides) -> OptimizerFn:
  """Factory lr -> optax transform with the paper's App 11.1 settings.

  muon: the project's `muon_jax.muon.muon` (beta 0.95 Nesterov, 5 kimi NS
  steps, 0.2 sqrt(max(m, n)) scale); adamw: optax.adamw (b1 0.9, b2 0.999,
  eps 1e-8, no weight decay: the paper names none for this task); sgd:
  optax.sgd. `overrides` are forwarded to the constructor. lr may be a traced
  scalar, which is how `run_grid` batches learning-rate sweeps.
  """
  if name == "muon":
    kw = dict(beta=0.95, nesterov=True, coeffs="kimi", steps=5, scaling="kimi")
    kw.update(overrides)
    return lambda lr: muon(lr, **kw)
  if name == "adamw":
    kw = dict(b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0)
    kw.update(overrides)
    return lambda lr: optax.adamw(lr, **kw)
  if name == "sgd":
    return lambda lr: optax.sgd(lr, **overrides)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def find_momentum(opt_state, shape) -> Optional[jax.Array]:
  """First momentum-like buffer (`mu` or `trace` field) of param shape, or None.

  Covers ScaleByMuonState, ScaleByAdamState, TraceState and any other optax
  state that names its first moment `mu` or `trace`.
  """
  found = []

  def visit(node):
    if not found and hasattr(node, "_fields"):
      for name in ("mu", "trace"):
        value = getattr(node, name, None)
        if isinstance(value, jax.Array) and value.shape == shape:
          found.append(value)
          return True
    return False

  jax.tree_util.tree_map(lambda x: x, opt_state, is_leaf=visit)
  return found[0] if found else None


def top_singular_pair(m: jax.Array, v0: jax.Array, iters: int):
  """(u1, v1) of the (n, n) matrix m by `iters` power iterations from v0."""
  v = v0
  for _ in range(iters):
    v = m.T @ (m @ v)
    v = v / (jnp.linalg.norm(v) + 1e-30)
  u = m @ v
  return u / (jnp.linalg.norm(u) + 1e-30), v


# ----------------------------------------------------------------------------
# One cell: init and step.


def cell_keys(seed: int, n: int, noise: str, seed_index):
  """(init key, per-step stream key) of one cell.

  They depend on (seed, n, noise, seed_index) only, so every lam, kappa, lr
  and optimizer sees the same draws (common random numbers: paired
  comparisons), and a cell's result does not depend on the grid it ran in.
  """
  root = jax.random.fold_in(jax.random.fold_in(_roots(seed)[1], n), NOISES.index(noise))
  init_key, stream_key = jax.random.split(jax.random.fold_in(root, seed_index))
  return init_key, stream_key


def init_cell(optimizer_fn: OptimizerFn, cfg: SaddleConfig, key, lr) -> CellState:
  """W_0, optimizer state and the power-iteration start of one cell."""
  kw, kp = jax.random.split(key)
  w = cfg.init_scale * jax.random.normal(kw, (cfg.n, cfg.n))
  v_pow = jax.random.normal(kp, (cfg.n,))
  return CellState(w=w, opt_state=optimizer_fn(lr).init(w), v_pow=v_pow / jnp.linalg.norm(v_pow),
                   tau=jnp.full((3,), cfg.steps, jnp.int32), hit=jnp.zeros((3,), bool))


def update_metrics(tau, hit, t, values, thresholds, track):
  """Records first crossings at step count t + 1 (pure, per cell).

  values/thresholds: (3,) current metric values and their levels; track: (3,)
  bool, whether each metric may still be recorded. Returns (tau, hit).
  """
  new = track & ~hit & (values >= thresholds)
  return jnp.where(new, t + 1, tau), hit | new


def step_cell(optimizer_fn: OptimizerFn, cfg: SaddleConfig, geom: Geometry, state: CellState,
              t, key, lam, kappa, lr) -> tuple[CellState, jax.Array]:
  """One optimizer step (step index t, 0-based) of one cell.

  key is the cell's stream key (step t draws from fold_in(key, t)). The cell
  is frozen once it has escaped under both criteria or t >= steps. Returns the new state and (|<S, W>|, ||W||_F) after the step.
  """
  opt = optimizer_fn(lr)
  g = stochastic_gradient(jax.random.fold_in(key, t), state.w, geom, lam, kappa, cfg)
  updates, opt_state = opt.update(g, state.opt_state, state.w)
  w = optax.apply_updates(state.w, updates)
  mom = find_momentum(opt_state, w.shape)
  u1, v1 = top_singular_pair(updates if mom is None else mom, state.v_pow, cfg.power_iters)
  align = jnp.abs(geom.u @ u1) * jnp.abs(geom.v @ v1)
  proj, frob = jnp.abs(project(geom, w)), jnp.linalg.norm(w)
  values = jnp.stack([proj, frob, align])
  thresholds = jnp.array([cfg.radius, cfg.radius, cfg.lock_threshold])
  # Lock counts only up to the structural escape (Definition 1 compares them).
  track = jnp.stack([True, True, ~state.hit[0]])
  tau, hit = update_metrics(state.tau, state.hit, t, values, thresholds, track)
  new = CellState(w=w, opt_state=opt_state, v_pow=v1, tau=tau, hit=hit)
  frozen = (state.hit[0] & state.hit[1]) | (t >= cfg.steps)
  new = jax.tree.map(lambda a, b: jnp.where(frozen, a, b), state, new)
  return new, jnp.stack([jnp.abs(project(geom, new.w)), jnp.linalg.norm(new.w)])


# ----------------------------------------------------------------------------
# The grid.


class Grid(NamedTuple):
  """Flat list of cells (all arrays of shape (C,))."""
  lam: np.ndarray
  kappa: np.ndarray
  lr: np.ndarray
  seed_index: np.ndarray


def make_grid(lams: Sequence[float], kappas: Sequence[float], lrs: Sequence[float],
              seed_indices: Sequence[int]) -> Grid:
  """Cartesian product in (lam, kappa, lr, seed) order, flattened."""
  mesh = np.meshgrid(np.asarray(lams, np.float32), np.asarray(kappas, np.float32),
                     np.asarray(lrs, np.float32), np.asarray(seed_indices, np.int32),
                     indexing="ij")
  return Grid(*(a.ravel() for a in mesh))


def _pad(grid: Grid, multiple: int) -> Grid:
  c = len(grid.lam)
  extra = (-c) % multiple
  if not extra:
    return grid
  return Grid(*(np.concatenate([a, np.repeat(a[-1:], extra)]) for a in grid))


def run_grid(optimizer_fn: OptimizerFn, cfg: SaddleConfig, grid: Grid, *, seed: int = 0,
             devices: Optional[Sequence[Any]] = None, trace: bool = False) -> dict:
  """Simulates every cell of `grid` for one n / noise / optimizer in one compile.

  Args:
    optimizer_fn: lr -> optax.GradientTransformation (see `make_optimizer`);
      any transform works: wrap a fixed one as `lambda lr: tx`.
    cfg: static settings.
    grid: cells (lam, kappa, lr, seed_index), each of shape (C,).
    seed: run seed; every draw comes from keys derived from it.
    devices: devices to spread cells over (default: all local devices); each
      device stops as soon as all of its own cells have escaped.
    trace: also return trace_CxTx2, the per-step (|<S, W_t>|, ||W_t||_F) for
      t = 1..steps (steps after an early exit hold the frozen final values).

  Returns:
    dict of NumPy arrays with leading axis C: tau_esc, tau_esc_frob,
    tau_lock (int, censored = steps), escaped, escaped_frob, locked (bool),
    w_final (C, n, n), and "trace" when asked.
  """
  devices = list(devices or jax.local_devices())
  c = len(grid.lam)
  padded = _pad(grid, len(devices))  # duplicates of the last cell, dropped below.
  fn = build_grid_fn(optimizer_fn, cfg, seed=seed, devices=devices, trace=trace)
  state, buf = fn(padded.lam, padded.kappa, padded.lr, padded.seed_index)
  tau, hit = np.asarray(state.tau)[:c], np.asarray(state.hit)[:c]
  out = {"tau_esc": tau[:, 0], "tau_esc_frob": tau[:, 1], "tau_lock": tau[:, 2],
         "escaped": hit[:, 0], "escaped_frob": hit[:, 1], "locked": hit[:, 2],
         "w_final": np.asarray(state.w)[:c]}
  if trace:
    out["trace"] = _forward_fill(np.asarray(buf)[:c])
  return out


def build_grid_fn(optimizer_fn: OptimizerFn, cfg: SaddleConfig, *, seed: int = 0,
                  devices: Optional[Sequence[Any]] = None, trace: bool = False):
  """The jitted grid function behind `run_grid` (for benchmarks that reuse it).

  Returns f(lam_C, kappa_C, lr_C, seed_index_C) -> (CellState batched over C,
  trace_CxTx2 or an empty (C, 0, 2) array); C must be a multiple of the
  device count.
  """
  devices = list(devices or jax.local_devices())
  geom = make_geometry(cfg, seed)
  step_all = jax.vmap(functools.partial(step_cell, optimizer_fn, cfg, geom),
                      in_axes=(0, None, 0, 0, 0, 0))

  def local(lam, kappa, lr, si):
    init_key, stream_key = jax.vmap(lambda i: cell_keys(seed, cfg.n, cfg.noise, i))(si)
    state = jax.vmap(functools.partial(init_cell, optimizer_fn, cfg))(init_key, lr)
    buf = jnp.full((lam.shape[0], cfg.steps if trace else 0, 2), jnp.nan)

    def scan_body(carry, _):
      state, t, buf = carry
      state, obs = step_all(state, t, stream_key, lam, kappa, lr)
      if trace:  # index clamps at steps - 1, where frozen cells rewrite the same value.
        buf = jax.lax.dynamic_update_slice(buf, obs[:, None, :], (0, t, 0))
      return (state, t + 1, buf), None

    def cond(carry):
      state, t, _ = carry
      return (t < cfg.steps) & ~jnp.all(state.hit[:, 0] & state.hit[:, 1])

    def body(carry):
      return jax.lax.scan(scan_body, carry, length=cfg.chunk)[0]

    state, _, buf = jax.lax.while_loop(cond, body, (state, jnp.int32(0), buf))
    return state, buf

  mesh = Mesh(np.asarray(devices), ("cells",))
  return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P("cells"), out_specs=P("cells"),
                               check_vma=False))


def _forward_fill(trace_CxTx2: np.ndarray) -> np.ndarray:
  """Fills the never-written tail (after an all-frozen early exit) with the last values."""
  out = trace_CxTx2.copy()
  for row in out:
    written = np.flatnonzero(np.isfinite(row[:, 0]))
    if written.size and written[-1] + 1 < len(row):
      row[written[-1] + 1:] = row[written[-1]]
  return out


def make_cell_step(optimizer_fn: OptimizerFn, cfg: SaddleConfig, *, seed: int = 0):
  """Jitted single-cell (init, step) pair: the per-cell Python-loop baseline."""
  geom = make_geometry(cfg, seed)

  @jax.jit
  def init(si, lr):
    return init_cell(optimizer_fn, cfg, cell_keys(seed, cfg.n, cfg.noise, si)[0], lr)

  @jax.jit
  def step(state, t, si, lam, kappa, lr):
    key = cell_keys(seed, cfg.n, cfg.noise, si)[1]
    return step_cell(optimizer_fn, cfg, geom, state, t, key, lam, kappa, lr)[0]

  return init, step


def run_cell_loop(optimizer_fn: OptimizerFn, cfg: SaddleConfig, grid: Grid, *,
                  seed: int = 0) -> dict:
  """Reference: each cell separately, one jitted step per Python iteration.

  Stops a cell when it has escaped under both criteria. Same outputs as
  `run_grid` (without traces).
  """
  init, step = make_cell_step(optimizer_fn, cfg, seed=seed)
  rows = []
  for lam, kappa, lr, si in zip(*grid):
    si, lam, kappa, lr = jnp.int32(si), jnp.float32(lam), jnp.float32(kappa), jnp.float32(lr)
    state = init(si, lr)
    for t in range(cfg.steps):
      state = step(state, jnp.int32(t), si, lam, kappa, lr)
      if bool(state.hit[0] & state.hit[1]):
        break
    rows.append(jax.device_get(state))
  tau = np.stack([r.tau for r in rows])
  hit = np.stack([r.hit for r in rows])
  return {"tau_esc": tau[:, 0], "tau_esc_frob": tau[:, 1], "tau_lock": tau[:, 2],
          "escaped": hit[:, 0], "escaped_frob": hit[:, 1], "locked": hit[:, 2],
          "w_final": np.stack([r.w for r in rows])}


# ----------------------------------------------------------------------------
# Summaries: medians, exponent fits, verdicts, claims.


def median_censored(taus, escaped) -> tuple[float, bool]:
  """Median of times with censored entries at the budget; True if the median
  itself is censored (fewer than floor(k/2) + 1 escapes)."""
  taus = np.asarray(taus, np.float64)
  k = taus.size
  return float(np.median(taus)), int(np.sum(escaped)) < k // 2 + 1


def fit_median_exponent(dims, taus_by_dim, *, n_boot: int = 1000, seed: int = 0,
                        ci: float = 0.95) -> dict:
  """Exponent alpha of median tau ~ D^alpha, with a seed-bootstrap CI.

  dims: distinct D values; taus_by_dim: list of 1-D arrays (one per D, the
  seeds). The point estimate is `metrics.fit_loglog_exponent` on the per-D
  medians; the CI resamples seeds within each D (stratified bootstrap),
  recomputes the medians and refits.
  """
  dims = np.asarray(dims, np.float64)
  taus_by_dim = [np.asarray(t, np.float64) for t in taus_by_dim]
  medians = np.array([np.median(t) for t in taus_by_dim])
  point = metrics.fit_loglog_exponent(dims, medians, n_boot=0)
  rng = np.random.default_rng(seed)
  boots = []
  for _ in range(n_boot):
    med = [np.median(t[rng.integers(0, t.size, t.size)]) for t in taus_by_dim]
    boots.append(metrics.fit_loglog_exponent(dims, med, n_boot=0)["exponent"])
  lo, hi = np.quantile(boots, [(1 - ci) / 2, (1 + ci) / 2]) if boots else (np.nan, np.nan)
  return {"exponent": point["exponent"], "intercept": point["intercept"],
          "ci_low": float(lo), "ci_high": float(hi)}


def verdict(fit: Optional[dict], censored_dims: Sequence[int], *, tol: float = 0.1,
            n_dims: int = 2) -> str:
  """Verdict string for one group's tau vs D."""
  if censored_dims:
    return f"not escaped within budget (median censored at n={','.join(map(str, censored_dims))})"
  if fit is None or n_dims < 2:
    return "single dimension: no fit"
  a, lo, hi = fit["exponent"], fit["ci_low"], fit["ci_high"]
  if lo >= -tol and hi <= tol:
    return f"dimension-free: exponent CI within ±{tol:g}"
  if lo > 0:
    return f"grows ~D^{a:.2f}"
  if hi < 0:
    return f"shrinks ~D^{a:.2f}"
  return f"inconclusive: CI [{lo:.2f}, {hi:.2f}] includes 0 but exceeds ±{tol:g}"


GROUP_KEYS = ("optimizer", "lr", "noise", "lam", "kappa")


def summarize(records: Sequence[dict], *, steps: int, n_boot: int = 1000, seed: int = 0,
              tol: float = 0.1) -> list[dict]:
  """One summary per (optimizer, lr, noise, lam, kappa) and criterion.

  records: per-cell dicts with GROUP_KEYS, "n", "tau_esc", "tau_esc_frob",
  "escaped", "escaped_frob". Each summary holds per-n median / quartiles /
  escaped fraction, the fitted exponent of median tau vs D = n^2 with its CI
  (None when a median is censored or only one n ran) and the verdict.
  """
  groups: dict = {}
  for r in records:
    groups.setdefault(tuple(r[k] for k in GROUP_KEYS), []).append(r)
  out = []
  for key in sorted(groups, key=lambda k: tuple(str(x) if isinstance(x, str) else x for x in k)):
    rows = groups[key]
    ns = sorted({r["n"] for r in rows})
    for crit, flag in (("tau_esc", "escaped"), ("tau_esc_frob", "escaped_frob")):
      per_n, taus_by_dim, censored = [], [], []
      for n in ns:
        cell = [r for r in rows if r["n"] == n]
        taus = np.array([r[crit] for r in cell], np.float64)
        esc = np.array([r[flag] for r in cell], bool)
        med, cens = median_censored(taus, esc)
        q1, q3 = np.quantile(taus, [0.25, 0.75])
        per_n.append({"n": n, "D": n * n, "median": med, "q1": float(q1), "q3": float(q3),
                      "escaped_frac": float(esc.mean()), "median_censored": cens,
                      "seeds": int(taus.size)})
        taus_by_dim.append(taus)
        if cens:
          censored.append(n)
      fit = None
      if len(ns) >= 2 and not censored:
        fit = fit_median_exponent([n * n for n in ns], taus_by_dim, n_boot=n_boot, seed=seed)
      out.append({**dict(zip(GROUP_KEYS, key)), "criterion": crit, "per_n": per_n, "fit": fit,
                  "verdict": verdict(fit, censored, tol=tol, n_dims=len(ns)), "steps": steps})
  return out


def evaluate_claims(summaries: Sequence[dict]) -> dict:
  """The paper's three Sec 4.1 claims, checked group by group per criterion.

  muon_dimension_free: Muon's verdict is "dimension-free".
  muon_faster_with_n_at_high_kappa: for the largest kappa (> 1), Muon's
    exponent CI lies below 0.
  adamw_grows_with_D: AdamW's exponent CI lies above 0; `linear` notes whether
    the CI contains 1 (the paper's ~D).
  """
  claims = {}
  kappa_max = max((s["kappa"] for s in summaries), default=1.0)
  for crit in CRITERIA:
    rows = [s for s in summaries if s["criterion"] == crit]
    checks = {
        "muon_dimension_free": [
            (s, s["verdict"].startswith("dimension-free")) for s in rows if s["optimizer"] == "muon"],
        "muon_faster_with_n_at_high_kappa": [
            (s, s["fit"] is not None and s["fit"]["ci_high"] < 0) for s in rows
            if s["optimizer"] == "muon" and s["kappa"] == kappa_max and kappa_max > 1],
        "adamw_grows_with_D": [
            (s, s["fit"] is not None and s["fit"]["ci_low"] > 0) for s in rows
            if s["optimizer"] == "adamw"],
    }
    for name, items in checks.items():
      groups = [{**{k: s[k] for k in GROUP_KEYS}, "verdict": s["verdict"], "reproduces": bool(ok),
                 **({"exponent": s["fit"]["exponent"], "ci": [s["fit"]["ci_low"], s["fit"]["ci_high"]]}
                    if s["fit"] else {}),
                 **({"linear": s["fit"]["ci_low"] <= 1 <= s["fit"]["ci_high"]}
                    if name == "adamw_grows_with_D" and s["fit"] else {})}
                for s, ok in items]
      k = sum(g["reproduces"] for g in groups)
      claims.setdefault(name, {})[crit] = {
          "reproduces_in": f"{k}/{len(groups)} groups", "groups": groups}
  return claims
