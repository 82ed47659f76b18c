"""Executable theory: the Newton–Schulz quintic and spiked-matrix subspace checks.

Makes the stripped numeric facts of "Dimension-Free Saddle-Point Escape in
Muon" computed quantities:

* Lemma 2 (polynomial iteration dynamics): for rho(x) = a x + b x^3 + c x^5 and
  its 5-fold composition rho^(5), the small-input threshold delta0, the minimum
  amplification ratio rho^(5)(x)/x on (0, delta0], the minimum of rho^(5) on the
  "middle" interval, a forward-invariant interval I with its image rho(I), and
  the orbit from x0 = 0.03.
* Lemma 3 (robustness radius): the largest infinity-norm coefficient
  perturbation for which an invariant interval survives and rho^(5) stays
  bounded away from 0, found by bisection over a grid of the eps-box.
* Section 10.1: the Newton–Schulz spectral map vs the exact polar factor vs
  Gavish–Donoho optimal singular-value shrinkage on spiked random matrices.
* Section 10.2 / Lemma 9 / Theorem 1: sin(theta) between the top singular
  vectors of signal + noise and the signal vs SNR and dimension, against the
  Benaych-Georges–Nadakuditi (2012) limit, under three SNR normalizations.

Modules: `polynomial` (Lemmas 2 and 3), `spectral` (Section 10), `experiment`
(PolynomialConfig, `run`, `claims`). A flat surface:
`from muon_jax.paper import theory; theory.lemma2(...)`.

Scalar maps are pure arithmetic (work on NumPy or JAX arrays, jit-able);
everything else is float64 NumPy. Random draws use explicit jax.random keys.
"""

from muon_jax.paper.theory.experiment import PolynomialConfig, check_config, claims, run
from muon_jax.paper.theory.polynomial import (
  CRITERIA,
  PAPER_FIFTH_LOWER,
  PAPER_INTERVAL,
  PAPER_MIDDLE,
  PAPER_ORBIT_LOWER,
  PAPER_RATIO_BOUND,
  PAPER_SMALL,
  PAPER_X0,
  CriticalPoints,
  check_perturbed,
  critical_points,
  interval_image,
  invariant_interval,
  iterate,
  lemma2,
  ns_threshold,
  paper_interval_radius,
  perturbation_grid,
  quintic,
  robustness_radius,
  robustness_slice,
)
from muon_jax.paper.theory.spectral import (
  LEMMA9_READINGS,
  NORMALIZATIONS,
  RETAINED_SIN,
  SPECTRAL_METHODS,
  bgn_cos2,
  compare_spectral_maps,
  debias_singular_value,
  effective_theta,
  incoherence,
  mp_edge,
  optimal_shrinker,
  spiked_matrix,
  subspace_sweep,
)

__all__ = [
  "CRITERIA",
  "LEMMA9_READINGS",
  "NORMALIZATIONS",
  "PAPER_FIFTH_LOWER",
  "PAPER_INTERVAL",
  "PAPER_MIDDLE",
  "PAPER_ORBIT_LOWER",
  "PAPER_RATIO_BOUND",
  "PAPER_SMALL",
  "PAPER_X0",
  "RETAINED_SIN",
  "SPECTRAL_METHODS",
  "CriticalPoints",
  "PolynomialConfig",
  "bgn_cos2",
  "check_config",
  "check_perturbed",
  "claims",
  "compare_spectral_maps",
  "critical_points",
  "debias_singular_value",
  "effective_theta",
  "incoherence",
  "interval_image",
  "invariant_interval",
  "iterate",
  "lemma2",
  "mp_edge",
  "ns_threshold",
  "optimal_shrinker",
  "paper_interval_radius",
  "perturbation_grid",
  "quintic",
  "robustness_radius",
  "robustness_slice",
  "run",
  "spiked_matrix",
  "subspace_sweep",
]
