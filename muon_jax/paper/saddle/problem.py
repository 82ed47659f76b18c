"""The saddle problem (paper Sec 4.1, App 11.1-11.2): model, noise modalities, optimizers.

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
variance profile of mean 1; `heavy_tail_unspiked`: the same profile at maximum 1;
`student_t`: the same draws, flat columns). kappa is the structural variance
ratio Var<S, G> / sigma^2.

Also the optimizers under test (`make_optimizer`) and the power iterations the
engine uses to track top singular pairs and spectral norms.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from muon_jax.transform import muon

SIGNALS = ("aligned", "incoherent")
NOISES = ("standard", "isotropic", "heavy_tail", "student_t", "heavy_tail_unspiked")
# heavy_tail_unspiked is the second reading of App 11.2's power law: the same Student-t draws
# as heavy_tail (paired), the profile scaled to maximum 1 instead of mean 1.
SAME_DRAWS_AS = {"heavy_tail_unspiked": "heavy_tail"}
OPTIMIZERS = ("muon", "adamw", "sgd")
# First-crossing metrics of one cell, in the order of CellState.tau, with
# Delta = W - W_0 and P_perp Delta = Delta - <S, Delta> S:
#   structural:     |<S, Delta>| >= R (progress along the escape direction).
#   definition1:    ||Delta||_F >= R (Definition 1 read literally).
#   spectral:       ||Delta||_2 >= R.
#   perp_frobenius: ||P_perp Delta||_F >= R_perp (leaving the Taylor
#                   neighbourhood orthogonally: Theorem 3's race).
#   perp_spectral:  ||P_perp Delta||_2 >= R_perp.
#   lock:           top singular pair of the momentum aligned with S.
METRICS = ("structural", "definition1", "spectral", "perp_frobenius", "perp_spectral", "lock")
ESCAPE_CRITERIA = METRICS[:3]
RACE_NORMS = ("frobenius", "spectral")

OptimizerFn = Callable[[Any], optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class SimConfig:
  """Static settings of one compiled grid (everything but the per-cell axes).

  Attributes:
    n: matrix side; D = n^2.
    signal: "aligned" (S = E_11) or "incoherent" (S = u v^T, random unit u, v).
    noise: "standard", "isotropic", "heavy_tail" (Student-t draws with a
      power-law column variance profile of mean 1, App 11.2), "heavy_tail_unspiked"
      (the same profile scaled to maximum 1: no column above the standard variance)
      or "student_t" (the same draws with flat column variance).
    sigma: bulk noise standard deviation per entry (App 11.1: 1).
    radius: Taylor radius R of the escape criteria.
    perp_radius: R_perp of the orthogonal deviation in the race; None means R.
    steps: step budget; times never reached are censored at this value.
    lock_threshold: |u1 . u_S| |v1 . v_S| level that counts as subspace lock.
    power_iters: warm-started power iterations per step for each top pair.
    init_scale: W_0 = init_scale * (standard Gaussian); 0 starts at the saddle.
    bulk_curvature: mu >= 0, positive curvature off the structural direction.
    tail_df: Student-t degrees of freedom (integer >= 3).
    tail_exponent: alpha of the heavy_tail column variance profile j^-alpha.
    chunk: steps per scan chunk between "all escaped?" checks.
  """

  n: int
  signal: str = "aligned"
  noise: str = "standard"
  sigma: float = 1.0
  radius: float = 1.0
  perp_radius: float | None = None
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
    if self.perp_radius is not None and not self.perp_radius > 0:
      raise ValueError(f"perp_radius={self.perp_radius} must be > 0")
    if int(self.tail_df) != self.tail_df or self.tail_df < 3:
      raise ValueError(f"tail_df={self.tail_df} must be an integer >= 3 (finite variance)")

  @property
  def race_radius(self) -> float:
    return self.radius if self.perp_radius is None else self.perp_radius


class Geometry(NamedTuple):
  """Structural direction S = u_S v_S^T and the bulk variance profile."""

  u: jax.Array  # (n,), unit.
  v: jax.Array  # (n,), unit.
  col_var: jax.Array  # (n,), per-column bulk variance / sigma^2 (mean 1).


# ----------------------------------------------------------------------------
# Model: geometry, noise, gradient.


def root_keys(seed: int):
  """Independent key streams of a run: (signal directions, noise)."""
  signal_root, noise_root = jax.random.split(jax.random.key(seed))
  return signal_root, noise_root


def make_geometry(cfg: SimConfig, seed: int) -> Geometry:
  """Structural direction (fixed per run and n) and heavy-tail column profile."""
  n = cfg.n
  if cfg.signal == "aligned":
    u = v = jnp.zeros(n).at[0].set(1.0)
  else:
    ku, kv = jax.random.split(jax.random.fold_in(root_keys(seed)[0], n))
    u = jax.random.normal(ku, (n,))
    v = jax.random.normal(kv, (n,))
    u, v = u / jnp.linalg.norm(u), v / jnp.linalg.norm(v)
  return Geometry(u=u, v=v, col_var=column_variance(n, cfg.noise, cfg.tail_exponent))


def column_variance(n: int, noise: str, exponent: float) -> jax.Array:
  """Bulk variance per column / sigma^2: the power law j^-alpha of App 11.2, else 1.

  The paper says only that the spatial variance "decays via a power-law". heavy_tail
  normalises the profile to mean 1 (the standard total energy), which puts ever more
  variance on column 1 as n grows (n^alpha / H_n(alpha) of it: a spiked column, outside
  Assumption 1); heavy_tail_unspiked scales it to maximum 1, so no column exceeds the
  standard variance. "student_t" keeps the heavy tails with flat columns.
  """
  if noise not in ("heavy_tail", "heavy_tail_unspiked"):
    return jnp.ones(n)
  q = jnp.arange(1, n + 1, dtype=jnp.float32) ** (-exponent)
  return q / jnp.mean(q) if noise == "heavy_tail" else q


def unit_draws(key, cfg: SimConfig) -> jax.Array:
  """(n, n) unit-variance draws X of the modality (before the column profile)."""
  n = cfg.n
  if cfg.noise == "standard":
    return jax.random.normal(key, (n, n))
  if cfg.noise == "isotropic":
    z = jax.random.normal(key, (n, n))
    return z * (n / jnp.linalg.norm(z))  # uniform on the sphere ||X||_F = n = sqrt(D).
  # heavy_tail, heavy_tail_unspiked, student_t: Student-t(nu) as Z / sqrt(chi2_nu / nu) with chi2_nu a sum of nu squared
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


def sample_noise(key, geom: Geometry, kappa, cfg: SimConfig) -> jax.Array:
  """Gradient noise N (n, n): modality bulk off S, variance kappa sigma^2 along S."""
  x = unit_draws(key, cfg)
  bulk = cfg.sigma * jnp.sqrt(geom.col_var)[None, :] * x
  s = jnp.outer(geom.u, geom.v)
  structural = jnp.sqrt(kappa) * cfg.sigma * project(geom, x) - project(geom, bulk)
  return bulk + structural * s


def expected_gradient(w, geom: Geometry, lam, cfg: SimConfig) -> jax.Array:
  """grad f(W) = -lam <S, W> S + mu (W - <S, W> S): the rank-1 drift of eq. (7)."""
  proj = project(geom, w)
  s = jnp.outer(geom.u, geom.v)
  return -lam * proj * s + cfg.bulk_curvature * (w - proj * s)


def stochastic_gradient(key, w, geom: Geometry, lam, kappa, cfg: SimConfig) -> jax.Array:
  """One draw of G = grad f(W) + N (App 11.1 eq. (7))."""
  return expected_gradient(w, geom, lam, cfg) + sample_noise(key, geom, kappa, cfg)


# ----------------------------------------------------------------------------
# Optimizers.


def make_optimizer(name: str, **overrides) -> OptimizerFn:
  """Factory lr -> optax transform with the paper's App 11.1 settings.

  muon: the project's `muon_jax.transform.muon` (beta 0.95 Nesterov, 5 kimi NS
  steps, 0.2 sqrt(max(m, n)) scale); adamw: optax.adamw (b1 0.9, b2 0.999,
  eps 1e-8, no weight decay: the paper names none for this task); sgd:
  optax.sgd. `overrides` are forwarded to the constructor. lr may be a traced
  scalar, which is how `run_grid` batches learning-rate sweeps.
  """
  if name == "muon":
    kw = {"beta": 0.95, "nesterov": True, "coeffs": "kimi", "steps": 5, "scaling": "kimi"}
    kw.update(overrides)
    return lambda lr: muon(lr, **kw)
  if name == "adamw":
    kw = {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    kw.update(overrides)
    return lambda lr: optax.adamw(lr, **kw)
  if name == "sgd":
    return lambda lr: optax.sgd(lr, **overrides)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def find_momentum(opt_state, shape) -> jax.Array | None:
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


def _power_iterate(m: jax.Array, v0: jax.Array, iters: int) -> jax.Array:
  """The right singular vector estimate after `iters` power iterations on m^T m from v0."""
  v = v0
  for _ in range(iters):
    v = m.T @ (m @ v)
    v = v / (jnp.linalg.norm(v) + 1e-30)
  return v


def top_singular_pair(m: jax.Array, v0: jax.Array, iters: int):
  """(u1, v1) of the (n, n) matrix m by `iters` power iterations from v0."""
  v = _power_iterate(m, v0, iters)
  u = m @ v
  return u / (jnp.linalg.norm(u) + 1e-30), v


def top_singular_value(m: jax.Array, v0: jax.Array, iters: int):
  """(||m v||, v): a lower bound on ||m||_2 by `iters` power iterations from v0.

  Warm-started every step from the previous v, it tracks the top singular
  value of a slowly changing matrix.
  """
  v = _power_iterate(m, v0, iters)
  return jnp.linalg.norm(m @ v), v
