"""optax's own Muon test file, shipped in the optax wheel, run against muon_jax.compat.

`optax/contrib/_muon_test.py` is loaded from the installed optax and its
module under test (`_muon`) is rebound to a namespace holding muon_jax.compat's
names. Every test case runs. The one test of an optax private helper
(`test_reshape_inverse`, on `_compute_muon_reshape`) keeps optax's helper, as
the file itself tests optax's implementation detail there; our reshaping is
checked against optax's through `orthogonalize_via_newton_schulz` in
tests/test_compat.py. Nothing else is left out.
"""

import importlib.util
import pathlib
import types

from optax.contrib import _muon as optax_muon

from muon_jax import compat

OPTAX_PRIVATE_HELPERS = ("_compute_muon_reshape",)


def _load_optax_suite():
  path = pathlib.Path(optax_muon.__file__).with_name("_muon_test.py")
  spec = importlib.util.spec_from_file_location("optax_muon_test_against_compat", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  under_test = types.SimpleNamespace(**{name: getattr(compat, name) for name in compat.__all__})
  for name in OPTAX_PRIVATE_HELPERS:
    setattr(under_test, name, getattr(optax_muon, name))
  module._muon = under_test
  return module


_suite = _load_optax_suite()


class TestOptaxMuonSuiteOnCompat(_suite.MuonTest):
  """optax's MuonTest, every case, with `_muon` = muon_jax.compat."""
