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
variance profile; `student_t`: the same draws, flat columns). kappa is the
structural variance ratio Var<S, G> / sigma^2.

`run_grid` runs every (lam, kappa, lr, seed) cell of one n, signal and noise
modality in a single compiled function: vmap over cells (the learning rate
is a batched axis), a while_loop over chunks of a lax.scan (it stops when
every cell has escaped structurally), cells spread over local devices with
shard_map. First-crossing metrics (METRICS): structural, definition1 (the
paper's Definition 1), spectral, the orthogonal deviation of Theorem 3's race
in Frobenius and spectral norm, and subspace lock; a cell freezes at its
structural escape; never-reached times are censored at `steps` with a False
flag. `SaddleConfig` / `run` / `claims` are the experiment on top of it.

A flat surface, `from muon_jax.paper import saddle; saddle.run(...)`, over the
subsystems: `problem` (model, noise, optimizers), `engine` (the batched grid),
`sweep` (SaddleConfig and its cells), `statistics` (exponents, the race, tau*),
`experiment` (run, resume) and `claims` (the paper-claim rows).
"""

from muon_jax.paper.saddle.claims import claims
from muon_jax.paper.saddle.engine import (
  CellState,
  Grid,
  build_grid_fn,
  cell_keys,
  init_cell,
  make_cell_step,
  make_grid,
  run_cell_loop,
  run_grid,
  step_cell,
  update_metrics,
)
from muon_jax.paper.saddle.experiment import (
  TRACE_POINTS,
  resumable_cells,
  resummarize,
  run,
  simulate,
)
from muon_jax.paper.saddle.problem import (
  ESCAPE_CRITERIA,
  Geometry,
  METRICS,
  NOISES,
  OPTIMIZERS,
  OptimizerFn,
  RACE_NORMS,
  SIGNALS,
  SimConfig,
  column_variance,
  expected_gradient,
  find_momentum,
  make_geometry,
  make_optimizer,
  project,
  sample_noise,
  stochastic_gradient,
  top_singular_pair,
  top_singular_value,
  unit_draws,
)
from muon_jax.paper.saddle.statistics import (
  LINEAR_UNTESTABLE_REASON,
  SEPARABLE,
  UNTESTABLE_REASON,
  bound_value,
  exponent_text,
  json_bound,
  race_success,
  summarize,
  tallies,
  tau_star,
  untestable_reason,
)
from muon_jax.paper.saddle.sweep import (
  CELL_KEYS,
  GROUP_KEYS,
  PAPER_LR,
  SaddleConfig,
  TAU_STAR_KEYS,
  all_cells,
  cell_id,
  config_dict,
  config_from_results,
  is_traced,
  paper_lr,
  seeds_at,
  stream_index,
)

__all__ = [
  "CELL_KEYS",
  "CellState",
  "ESCAPE_CRITERIA",
  "GROUP_KEYS",
  "Geometry",
  "Grid",
  "LINEAR_UNTESTABLE_REASON",
  "METRICS",
  "NOISES",
  "OPTIMIZERS",
  "OptimizerFn",
  "PAPER_LR",
  "RACE_NORMS",
  "SEPARABLE",
  "SIGNALS",
  "SaddleConfig",
  "SimConfig",
  "TAU_STAR_KEYS",
  "TRACE_POINTS",
  "UNTESTABLE_REASON",
  "all_cells",
  "bound_value",
  "build_grid_fn",
  "cell_id",
  "cell_keys",
  "claims",
  "column_variance",
  "config_dict",
  "config_from_results",
  "expected_gradient",
  "exponent_text",
  "find_momentum",
  "init_cell",
  "is_traced",
  "json_bound",
  "make_cell_step",
  "make_geometry",
  "make_grid",
  "make_optimizer",
  "paper_lr",
  "project",
  "race_success",
  "resumable_cells",
  "resummarize",
  "run",
  "run_cell_loop",
  "run_grid",
  "sample_noise",
  "seeds_at",
  "simulate",
  "step_cell",
  "stochastic_gradient",
  "stream_index",
  "summarize",
  "tallies",
  "tau_star",
  "top_singular_pair",
  "top_singular_value",
  "unit_draws",
  "untestable_reason",
  "update_metrics",
]
