"""muon_jax: Muon in JAX/optax and a falsifiable reproduction of
"Dimension-Free Saddle-Point Escape in Muon".

`muon_jax.compat` is a drop-in for optax.contrib's Muon (import it explicitly).
"""

from muon_jax.transform import (
  MuonDimensionNumbers,
  ScaleByMuonState,
  describe_routing,
  is_hidden_matrix,
  muon,
  muon_labels,
  muon_with_adamw,
  scale_by_muon,
)
from muon_jax.newton_schulz import orthogonalize, polar_svd, resolve_coeffs

__all__ = [
  "MuonDimensionNumbers",
  "ScaleByMuonState",
  "describe_routing",
  "is_hidden_matrix",
  "muon",
  "muon_labels",
  "muon_with_adamw",
  "orthogonalize",
  "polar_svd",
  "resolve_coeffs",
  "scale_by_muon",
]
__version__ = "0.1.0"
