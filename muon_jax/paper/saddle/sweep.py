"""The saddle-escape experiment's config and its cells (one record per simulated run)."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from muon_jax.infra.config import field
from muon_jax.paper.saddle.problem import NOISES, OPTIMIZERS, SIGNALS, SimConfig

PAPER_LR = {"muon": 0.02, "adamw": 1e-3, "sgd": 1e-2}  # App 11.1.


def _lr_grid(low: float, high: float, count: int = 7) -> tuple[float, ...]:
  return tuple(float(f"{x:.3g}") for x in np.geomspace(low, high, count))


@dataclasses.dataclass(frozen=True)
class SaddleConfig:
  """The saddle-escape experiment (Sec 4.1, App 11.1-11.2, Figures 1 and 5).

  Every (optimizer, signal, noise, n, lam, kappa, lr, seed) cell is simulated;
  one compile per (optimizer, signal, noise, n), the learning rate a batched
  axis of it.
  """

  # Every group's summary is an exponent against D: one n is refused before any compute
  # rather than computed and then unfittable.
  dims: tuple[int, ...] = field(
    (16, 32, 64, 128),
    "matrix sides n (D = n^2)",
    low=2,
    high=16384,
    min_len=2,
    min_len_reason="an exponent of the escape time against D needs two",
  )
  curvatures: tuple[float, ...] = field(
    (0.1,), "negative curvatures lambda", low=0, high=1e3, low_open=True
  )
  kappas: tuple[float, ...] = field(
    (1.0, 100.0), "structural variance ratios kappa", low=1, high=1e8
  )
  seeds: int = field(8, "seeds per (n, lam, kappa, lr) cell of the lr sweep", low=1, high=10000)
  # The claim rows read the paper lr: more seeds there buy a decisive exponent
  # CI (BUILD_NOTES power table) at a fraction of the cost of the whole sweep.
  paper_lr_seeds: int = field(
    32, "seeds at each optimizer's paper lr, where more than seeds", low=1, high=10000
  )
  steps: int = field(1000, "step budget (censoring value)", low=1, high=10**7)
  optimizers: tuple[str, ...] = field(("muon", "adamw"), "optimizers", choices=OPTIMIZERS)
  # Muon's law is the same in both geometries (equivariance, rotation-invariant
  # noise); AdamW's structural tau is only testable in the incoherent one.
  signals: tuple[str, ...] = field(
    ("incoherent",), "signal geometries: aligned S = E_11, incoherent S = u v^T", choices=SIGNALS
  )
  noises: tuple[str, ...] = field(("standard",), "noise modalities (App 11.2)", choices=NOISES)
  muon_lrs: tuple[float, ...] = field(
    _lr_grid(2e-4, 0.2), "Muon learning rates (log grid)", low=0, high=10, low_open=True
  )
  adamw_lrs: tuple[float, ...] = field(
    _lr_grid(1e-4, 0.1), "AdamW learning rates (log grid)", low=0, high=10, low_open=True
  )
  sgd_lrs: tuple[float, ...] = field(
    _lr_grid(1e-3, 1.0), "SGD learning rates (log grid)", low=0, high=10, low_open=True
  )
  radius: float = field(1.0, "Taylor radius R of every escape criterion", low=0, low_open=True)
  # Optional[...] rather than "| None": config.element_type reads typing.Union.
  perp_radius: Optional[float] = field(  # noqa: UP045
    None, "R_perp of the orthogonal deviation in the race (unset: R)", low=0, low_open=True
  )
  success_level: float = field(
    0.5,
    "race-success probability an lr needs to enter tau*",
    low=0,
    high=1,
    low_open=True,
    high_open=True,
  )
  independent_draws: bool = field(
    False, "own random keys per (optimizer, lam, kappa, lr) group instead of common random numbers"
  )
  sigma: float = field(1.0, "bulk noise std per entry", low=0, low_open=True)
  lock_threshold: float = field(
    0.9, "tau_lock level of |u1.u_S||v1.v_S|", low=0, high=1, low_open=True
  )
  power_iters: int = field(
    3, "warm-started power iterations per step and spectral norm", low=1, high=100
  )
  init_scale: float = field(0.0, "W_0 = init_scale * Gaussian", low=0, high=1, high_open=True)
  bulk_curvature: float = field(0.0, "positive curvature mu off the structural direction", low=0)
  tail_df: int = field(
    3, "Student-t degrees of freedom of heavy_tail and student_t", low=3, high=1000
  )
  tail_exponent: float = field(1.0, "heavy_tail column variance profile j^-alpha", low=0, high=4)
  chunk: int = field(100, "steps between 'all escaped?' checks", low=1, high=10**5)
  n_boot: int = field(1000, "seed-bootstrap resamples of each exponent CI", low=0, high=10**5)
  seed: int = field(0, "seed of every random draw")

  def lrs(self, optimizer: str) -> tuple[float, ...]:
    return getattr(self, f"{optimizer}_lrs")

  def sim_config(self, n: int, signal: str, noise: str) -> SimConfig:
    return SimConfig(
      n=n,
      signal=signal,
      noise=noise,
      sigma=self.sigma,
      radius=self.radius,
      perp_radius=self.perp_radius,
      steps=self.steps,
      lock_threshold=self.lock_threshold,
      power_iters=self.power_iters,
      init_scale=self.init_scale,
      bulk_curvature=self.bulk_curvature,
      tail_df=self.tail_df,
      tail_exponent=self.tail_exponent,
      chunk=self.chunk,
    )


CELL_KEYS = ("optimizer", "signal", "noise", "n", "lam", "kappa", "lr", "seed")
GROUP_KEYS = ("optimizer", "signal", "noise", "lam", "kappa", "lr")
TAU_STAR_KEYS = ("optimizer", "signal", "noise", "lam", "kappa")


def all_cells(cfg: SaddleConfig) -> list[dict]:
  """Every cell in canonical order (optimizer, signal, noise, n, lam, kappa, lr, seed)."""
  return [
    dict(zip(CELL_KEYS, (o, g, z, n, lam, k, lr, s)))
    for o in cfg.optimizers
    for g in cfg.signals
    for z in cfg.noises
    for n in cfg.dims
    for lam in cfg.curvatures
    for k in cfg.kappas
    for lr in cfg.lrs(o)
    for s in range(seeds_at(cfg, o, lr))
  ]


def seeds_at(cfg: SaddleConfig, optimizer: str, lr: float) -> int:
  """Seeds of an (optimizer, lr) group: paper_lr_seeds at the paper lr if more, else seeds."""
  if lr == paper_lr(cfg, optimizer):
    return max(cfg.seeds, cfg.paper_lr_seeds)
  return cfg.seeds


def cell_id(c: dict) -> str:
  return "|".join(f"{k}={c[k]!r}" for k in CELL_KEYS)


def stream_index(cfg: SaddleConfig, c: dict) -> int:
  """The cell's random stream (`cell_keys` seed_index).

  Common random numbers (default): the seed alone, so every lam, kappa, lr
  and optimizer of one (n, noise) sees the same draws and comparisons are
  paired. independent_draws: each (optimizer, lam, kappa, lr) group has its
  own streams, so groups are independent evidence.
  """
  if not cfg.independent_draws:
    return c["seed"]
  lrs = sorted({lr for o in OPTIMIZERS if o in cfg.optimizers for lr in cfg.lrs(o)})
  group = (
    (OPTIMIZERS.index(c["optimizer"]) * len(cfg.curvatures) + cfg.curvatures.index(c["lam"]))
    * len(cfg.kappas)
    + cfg.kappas.index(c["kappa"])
  ) * len(lrs) + lrs.index(c["lr"])
  return (group + 1) * max(cfg.seeds, cfg.paper_lr_seeds) + c["seed"]


def paper_lr(cfg: SaddleConfig, optimizer: str) -> float:
  """The grid's learning rate closest (in log) to the paper's App 11.1 value."""
  return min(cfg.lrs(optimizer), key=lambda lr: abs(math.log(lr / PAPER_LR[optimizer])))


def is_traced(cfg: SaddleConfig, c: dict) -> bool:
  """Cells whose trajectories are kept (Fig 1d): seed 0, largest n, smallest lam, paper lr."""
  return (
    c["seed"] == 0
    and c["n"] == max(cfg.dims)
    and c["lam"] == min(cfg.curvatures)
    and c["lr"] == paper_lr(cfg, c["optimizer"])
  )


def config_dict(cfg: SaddleConfig) -> dict:
  """The config as written into the results JSON (tuples as lists)."""
  return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_results(results: dict) -> SaddleConfig:
  """The SaddleConfig a results dict was made with."""
  return SaddleConfig(
    **{k: tuple(v) if isinstance(v, list) else v for k, v in results["config"].items()}
  )
