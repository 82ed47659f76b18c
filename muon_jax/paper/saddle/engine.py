"""The batched grid engine: one compiled function per (n, signal, noise, optimizer).

`run_grid` runs every (lam, kappa, lr, seed) cell of one n, signal and noise
modality in a single compiled function: vmap over cells (the learning rate
is a batched axis), a while_loop over chunks of a lax.scan (it stops when
every cell has escaped structurally), cells spread over local devices with
shard_map. First-crossing metrics (METRICS): structural, definition1 (the
paper's Definition 1), spectral, the orthogonal deviation of Theorem 3's race
in Frobenius and spectral norm, and subspace lock; a cell freezes at its
structural escape; never-reached times are censored at `steps` with a False
flag. `make_cell_step` / `run_cell_loop` are the per-cell Python-loop reference.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from muon_jax.paper.saddle.problem import (
  METRICS,
  NOISES,
  SAME_DRAWS_AS,
  Geometry,
  OptimizerFn,
  SimConfig,
  find_momentum,
  make_geometry,
  project,
  root_keys,
  stochastic_gradient,
  top_singular_pair,
  top_singular_value,
)


class CellState(NamedTuple):
  """Per-cell carry of the simulation (leading cell axis when batched)."""

  w: jax.Array  # (n, n) parameters.
  w0: jax.Array  # (n, n) parameters at step 0.
  opt_state: Any
  v_pow: jax.Array  # (n,) warm start of the momentum's power iteration.
  v_delta: jax.Array  # (n,) warm start for ||W - W_0||_2.
  v_perp: jax.Array  # (n,) warm start for ||P_perp (W - W_0)||_2.
  values: jax.Array  # (5,) the first five METRICS after the last step.
  tau: jax.Array  # (6,) int32 first-crossing step of each of METRICS (censored = steps).
  hit: jax.Array  # (6,) bool, whether each of METRICS was reached.


# ----------------------------------------------------------------------------
# One cell: init and step.


def cell_keys(seed: int, n: int, noise: str, seed_index):
  """(init key, per-step stream key) of one cell.

  They depend on (seed, n, noise, seed_index) only, so every lam, kappa, lr
  and optimizer sees the same draws (common random numbers: paired
  comparisons), and a cell's result does not depend on the grid it ran in.
  """
  draws = NOISES.index(SAME_DRAWS_AS.get(noise, noise))
  root = jax.random.fold_in(jax.random.fold_in(root_keys(seed)[1], n), draws)
  init_key, stream_key = jax.random.split(jax.random.fold_in(root, seed_index))
  return init_key, stream_key


def init_cell(optimizer_fn: OptimizerFn, cfg: SimConfig, key, lr) -> CellState:
  """W_0, optimizer state and the power-iteration starts of one cell."""
  kw, kp = jax.random.split(key)
  w = cfg.init_scale * jax.random.normal(kw, (cfg.n, cfg.n))
  starts = jax.random.normal(kp, (3, cfg.n))
  starts = starts / jnp.linalg.norm(starts, axis=1, keepdims=True)
  k = len(METRICS)
  return CellState(
    w=w,
    w0=w,
    opt_state=optimizer_fn(lr).init(w),
    v_pow=starts[0],
    v_delta=starts[1],
    v_perp=starts[2],
    values=jnp.zeros((k - 1,)),
    tau=jnp.full((k,), cfg.steps, jnp.int32),
    hit=jnp.zeros((k,), bool),
  )


def update_metrics(tau, hit, t, values, thresholds, track):
  """Records first crossings at step count t + 1 (pure, per cell).

  values/thresholds: (K,) current metric values and their levels; track: (K,)
  bool, whether each metric may still be recorded. Returns (tau, hit).
  """
  new = track & ~hit & (values >= thresholds)
  return jnp.where(new, t + 1, tau), hit | new


def step_cell(
  optimizer_fn: OptimizerFn,
  cfg: SimConfig,
  geom: Geometry,
  state: CellState,
  t,
  key,
  lam,
  kappa,
  lr,
) -> CellState:
  """One optimizer step (step index t, 0-based) of one cell.

  key is the cell's stream key (step t draws from fold_in(key, t)). The cell
  is frozen once it has escaped structurally (which implies the definition1
  and spectral crossings and decides the race) or t >= steps.
  """
  opt = optimizer_fn(lr)
  g = stochastic_gradient(jax.random.fold_in(key, t), state.w, geom, lam, kappa, cfg)
  updates, opt_state = opt.update(g, state.opt_state, state.w)
  w = optax.apply_updates(state.w, updates)
  mom = find_momentum(opt_state, w.shape)
  u1, v1 = top_singular_pair(updates if mom is None else mom, state.v_pow, cfg.power_iters)
  align = jnp.abs(geom.u @ u1) * jnp.abs(geom.v @ v1)
  delta = w - state.w0
  proj = project(geom, delta)
  perp = delta - proj * jnp.outer(geom.u, geom.v)
  spectral, v_delta = top_singular_value(delta, state.v_delta, cfg.power_iters)
  perp_spectral, v_perp = top_singular_value(perp, state.v_perp, cfg.power_iters)
  # |<S, Delta>| = |u_S^T Delta v_S| <= ||Delta||_2, so the max is still a lower bound.
  values = jnp.stack(
    [
      jnp.abs(proj),
      jnp.linalg.norm(delta),
      jnp.maximum(spectral, jnp.abs(proj)),
      jnp.linalg.norm(perp),
      perp_spectral,
    ]
  )
  r, rp = cfg.radius, cfg.race_radius
  thresholds = jnp.array([r, r, r, rp, rp, cfg.lock_threshold])
  # Lock counts only up to the structural escape (Definition 1 compares them).
  track = jnp.ones(len(METRICS), bool).at[-1].set(~state.hit[0])
  tau, hit = update_metrics(state.tau, state.hit, t, jnp.append(values, align), thresholds, track)
  new = CellState(
    w=w,
    w0=state.w0,
    opt_state=opt_state,
    v_pow=v1,
    v_delta=v_delta,
    v_perp=v_perp,
    values=values,
    tau=tau,
    hit=hit,
  )
  frozen = state.hit[0] | (t >= cfg.steps)
  return jax.tree.map(lambda a, b: jnp.where(frozen, a, b), state, new)


# ----------------------------------------------------------------------------
# The grid.


class Grid(NamedTuple):
  """Flat list of cells (all arrays of shape (C,))."""

  lam: np.ndarray
  kappa: np.ndarray
  lr: np.ndarray
  seed_index: np.ndarray


def make_grid(
  lams: Sequence[float], kappas: Sequence[float], lrs: Sequence[float], seed_indices: Sequence[int]
) -> Grid:
  """Cartesian product in (lam, kappa, lr, seed) order, flattened."""
  mesh = np.meshgrid(
    np.asarray(lams, np.float32),
    np.asarray(kappas, np.float32),
    np.asarray(lrs, np.float32),
    np.asarray(seed_indices, np.int32),
    indexing="ij",
  )
  return Grid(*(a.ravel() for a in mesh))


def _pad(grid: Grid, multiple: int) -> Grid:
  c = len(grid.lam)
  extra = (-c) % multiple
  if not extra:
    return grid
  return Grid(*(np.concatenate([a, np.repeat(a[-1:], extra)]) for a in grid))


def _outputs(tau_CxK: np.ndarray, hit_CxK: np.ndarray, w_final: np.ndarray) -> dict:
  out = {"w_final": w_final}
  for k, name in enumerate(METRICS):
    out[f"tau_{name}"] = tau_CxK[:, k]
    out[f"hit_{name}"] = hit_CxK[:, k]
  return out


def run_grid(
  optimizer_fn: OptimizerFn,
  cfg: SimConfig,
  grid: Grid,
  *,
  seed: int = 0,
  devices: Sequence[Any] | None = None,
  trace: bool = False,
) -> dict:
  """Simulates every cell of `grid` for one n / signal / noise / optimizer in one compile.

  Args:
    optimizer_fn: lr -> optax.GradientTransformation (see `make_optimizer`);
      any transform works: wrap a fixed one as `lambda lr: tx`. The learning
      rate is a traced per-cell scalar, so an lr sweep is one compile.
    cfg: static settings.
    grid: cells (lam, kappa, lr, seed_index), each of shape (C,).
    seed: run seed; every draw comes from keys derived from it.
    devices: devices to spread cells over (default: all local devices); each
      device stops as soon as all of its own cells have escaped.
    trace: also return trace_CxTx5, the per-step values of the first five
      METRICS for t = 1..steps (frozen after the structural escape).

  Returns:
    dict of NumPy arrays with leading axis C: tau_<metric> (int, censored =
    steps) and hit_<metric> (bool) for each of METRICS, w_final (C, n, n),
    and "trace" when asked.
  """
  devices = list(devices or jax.local_devices())
  c = len(grid.lam)
  padded = _pad(grid, len(devices))  # duplicates of the last cell, dropped below.
  fn = build_grid_fn(optimizer_fn, cfg, seed=seed, devices=devices, trace=trace)
  state, buf = fn(padded.lam, padded.kappa, padded.lr, padded.seed_index)
  out = _outputs(np.asarray(state.tau)[:c], np.asarray(state.hit)[:c], np.asarray(state.w)[:c])
  if trace:
    out["trace"] = _forward_fill(np.asarray(buf)[:c])
  return out


def build_grid_fn(
  optimizer_fn: OptimizerFn,
  cfg: SimConfig,
  *,
  seed: int = 0,
  devices: Sequence[Any] | None = None,
  trace: bool = False,
):
  """The jitted grid function behind `run_grid` (for benchmarks that reuse it).

  Returns f(lam_C, kappa_C, lr_C, seed_index_C) -> (CellState batched over C,
  trace_CxTx5 or an empty (C, 0, 5) array); C must be a multiple of the
  device count.
  """
  devices = list(devices or jax.local_devices())
  geom = make_geometry(cfg, seed)
  step_all = jax.vmap(
    functools.partial(step_cell, optimizer_fn, cfg, geom), in_axes=(0, None, 0, 0, 0, 0)
  )
  n_values = len(METRICS) - 1

  def local(lam, kappa, lr, si):
    init_key, stream_key = jax.vmap(lambda i: cell_keys(seed, cfg.n, cfg.noise, i))(si)
    state = jax.vmap(functools.partial(init_cell, optimizer_fn, cfg))(init_key, lr)
    buf = jnp.full((lam.shape[0], cfg.steps if trace else 0, n_values), jnp.nan)

    def scan_body(carry, _):
      state, t, buf = carry
      state = step_all(state, t, stream_key, lam, kappa, lr)
      if trace:  # index clamps at steps - 1, where frozen cells rewrite the same value.
        buf = jax.lax.dynamic_update_slice(buf, state.values[:, None, :], (0, t, 0))
      return (state, t + 1, buf), None

    def cond(carry):
      state, t, _ = carry
      return (t < cfg.steps) & ~jnp.all(state.hit[:, 0])

    def body(carry):
      return jax.lax.scan(scan_body, carry, length=cfg.chunk)[0]

    state, _, buf = jax.lax.while_loop(cond, body, (state, jnp.int32(0), buf))
    return state, buf

  mesh = Mesh(np.asarray(devices), ("cells",))
  return jax.jit(
    jax.shard_map(local, mesh=mesh, in_specs=P("cells"), out_specs=P("cells"), check_vma=False)
  )


def _forward_fill(trace_CxTxV: np.ndarray) -> np.ndarray:
  """Fills the never-written tail (after an all-frozen early exit) with the last values."""
  out = trace_CxTxV.copy()
  for row in out:
    written = np.flatnonzero(np.isfinite(row[:, 0]))
    if written.size and written[-1] + 1 < len(row):
      row[written[-1] + 1 :] = row[written[-1]]
  return out


def make_cell_step(optimizer_fn: OptimizerFn, cfg: SimConfig, *, seed: int = 0):
  """Jitted single-cell (init, step) pair: the per-cell Python-loop baseline."""
  geom = make_geometry(cfg, seed)

  @jax.jit
  def init(si, lr):
    return init_cell(optimizer_fn, cfg, cell_keys(seed, cfg.n, cfg.noise, si)[0], lr)

  @jax.jit
  def step(state, t, si, lam, kappa, lr):
    key = cell_keys(seed, cfg.n, cfg.noise, si)[1]
    return step_cell(optimizer_fn, cfg, geom, state, t, key, lam, kappa, lr)

  return init, step


def run_cell_loop(optimizer_fn: OptimizerFn, cfg: SimConfig, grid: Grid, *, seed: int = 0) -> dict:
  """Reference: each cell separately, one jitted step per Python iteration.

  Stops a cell at its structural escape. Same outputs as `run_grid` (without
  traces).
  """
  init, step = make_cell_step(optimizer_fn, cfg, seed=seed)
  rows = []
  for lam, kappa, lr, si in zip(*grid):
    si, lam, kappa, lr = jnp.int32(si), jnp.float32(lam), jnp.float32(kappa), jnp.float32(lr)
    state = init(si, lr)
    for t in range(cfg.steps):
      state = step(state, jnp.int32(t), si, lam, kappa, lr)
      if bool(state.hit[0]):
        break
    rows.append(jax.device_get(state))
  return _outputs(
    np.stack([r.tau for r in rows]), np.stack([r.hit for r in rows]), np.stack([r.w for r in rows])
  )
