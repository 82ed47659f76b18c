"""muon_jax.compat against the installed optax.contrib Muon: API, function, state."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from optax import contrib
from optax.contrib import _muon as optax_muon

from muon_jax import compat

PUBLIC_FUNCTIONS = ("muon", "scale_by_muon", "scale_by_shape", "orthogonalize_via_newton_schulz")


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_signatures_and_defaults_are_optax(name):
  ours = inspect.signature(getattr(compat, name)).parameters
  ref = inspect.signature(getattr(optax_muon, name)).parameters
  assert list(ours) == list(ref)
  for p in ref:
    assert ours[p].kind == ref[p].kind, p
    assert ours[p].default == ref[p].default, p


def test_exports_cover_optax_contrib_muon_names():
  exported = {
    n for n in dir(contrib) if getattr(getattr(contrib, n), "__module__", "") == optax_muon.__name__
  }
  assert exported <= set(compat.__all__), exported - set(compat.__all__)
  assert compat.MuonDimensionNumbers._fields == contrib.MuonDimensionNumbers._fields
  assert compat.MuonDimensionNumbers() == contrib.MuonDimensionNumbers()


SHAPES = {
  "wide": (12, 40),
  "tall": (40, 12),
  "square": (16, 16),
  "bias": (16,),
  "conv": (3, 3, 4, 8),
  "stack": (3, 10, 6),
}
CONV = contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)


def _tree(seed, shapes=SHAPES, dtype=jnp.float32):
  key = jax.random.PRNGKey(seed)
  return {
    n: jax.random.normal(jax.random.fold_in(key, i), s, dtype)
    for i, (n, s) in enumerate(shapes.items())
  }


def _dims(params):
  return {
    "wide": contrib.MuonDimensionNumbers(),
    "tall": contrib.MuonDimensionNumbers(),
    "square": None,
    "bias": None,
    "conv": CONV,
    "stack": contrib.MuonDimensionNumbers(reduction_axis=-2, output_axis=-1),
  }


OPTIONS = {
  "defaults": {},
  "no_nesterov_adaptive": {"nesterov": False, "adaptive": True},
  "spectral": {"preconditioning": "spectral"},
  "aol_dion": {"preconditioning": "aol", "ns_coeffs": "dion"},
  "schatten_3_steps": {"preconditioning": "schatten", "ns_steps": 3},
  "table_and_rms": {
    "ns_coeffs": ((4.0, -5.0, 2.0), (3.4445, -4.7750, 2.0315)),
    "ns_steps": 4,
    "consistent_rms": 0.2,
  },
  "decay_adam": {
    "weight_decay": 0.1,
    "adam_weight_decay": 0.01,
    "adam_learning_rate": 3e-3,
    "adam_b2": 0.95,
    "adam_eps_root": 1e-6,
    "beta": 0.9,
    "eps": 1e-6,
  },
  "dims_tree": {"muon_weight_dimension_numbers": _dims({})},
  "dims_callable_bf16_mu": {"muon_weight_dimension_numbers": _dims, "mu_dtype": jnp.bfloat16},
}


def _rel(a, b):
  a, b = np.asarray(a, np.complex128), np.asarray(b, np.complex128)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _run_both(kwargs, params, steps=3):
  out = []
  for lib in (compat, optax_muon):
    tx = lib.muon(learning_rate=0.02, **kwargs)
    state = tx.init(params)
    step = jax.jit(tx.update)
    updates = []
    for t in range(steps):
      u, state = step(
        _tree(100 + t, {n: p.shape for n, p in params.items()}, params["wide"].dtype), state, params
      )
      updates.append(u)
    out.append((updates, state))
  return out


@pytest.mark.parametrize("option", list(OPTIONS))
def test_same_function_and_state_structure_as_optax(option):
  params = _tree(0)
  (ours, s_ours), (ref, s_ref) = _run_both(OPTIONS[option], params)
  for t in range(len(ref)):
    for n in params:
      assert _rel(ours[t][n], ref[t][n]) <= 1e-5, (option, t, n, _rel(ours[t][n], ref[t][n]))
  is_masked = lambda x: isinstance(x, optax.MaskedNode)
  assert jax.tree.structure(s_ours, is_leaf=is_masked) == jax.tree.structure(
    s_ref, is_leaf=is_masked
  )
  for a, b in zip(jax.tree.leaves(s_ours), jax.tree.leaves(s_ref)):
    assert a.shape == b.shape and a.dtype == b.dtype


def test_optax_state_resumes_under_compat():
  params = _tree(0)
  ref_tx, our_tx = optax_muon.muon(0.02), compat.muon(0.02)
  ref_step, our_step = jax.jit(ref_tx.update), jax.jit(our_tx.update)
  state = ref_tx.init(params)
  for t in range(2):
    _, state = ref_step(_tree(100 + t), state, params)
  u_ref, _ = ref_step(_tree(7), state, params)
  u_ours, _ = our_step(_tree(7), state, params)
  for n in params:
    assert _rel(u_ours[n], u_ref[n]) <= 1e-5, n


def test_complex_params_match_optax():
  shapes = {"w": (6, 10), "b": (10,)}
  params = {n: (p + 1j * p[::-1]).astype(jnp.complex64) for n, p in _tree(1, shapes).items()}
  updates = []
  for lib in (compat, optax_muon):
    tx = lib.muon(0.02)
    updates.append(tx.update(params, tx.init(params), params)[0])
  for n in shapes:
    assert _rel(updates[0][n], updates[1][n]) <= 1e-5, n


def test_inject_hyperparams_with_traced_ns_steps():
  params = _tree(0, {"w": (12, 20), "b": (20,)})
  grads = _tree(1, {"w": (12, 20), "b": (20,)})
  out = []
  for lib in (compat, optax_muon):
    tx = optax.inject_hyperparams(lib.muon)(learning_rate=0.02, ns_steps=3)
    state = tx.init(params)
    u, state = jax.jit(tx.update)(grads, state, params)
    assert int(state.hyperparams["ns_steps"]) == 3
    out.append(u)
  for n in params:
    assert _rel(out[0][n], out[1][n]) <= 1e-5, n


@pytest.mark.parametrize(
  "shape, dims",
  [
    ((2, 3, 4), contrib.MuonDimensionNumbers(reduction_axis=-3, output_axis=-1)),
    ((2, 3, 4, 5), contrib.MuonDimensionNumbers(reduction_axis=2, output_axis=(0, 3))),
    ((5, 12, 1, 2), contrib.MuonDimensionNumbers(reduction_axis=(0, 3), output_axis=(1,))),
  ],
)
@pytest.mark.parametrize("preconditioning", ["frobenius", "aol"])
def test_orthogonalize_matches_optax_on_reshaped_axes(shape, dims, preconditioning):
  x = jax.random.normal(jax.random.PRNGKey(2), shape)
  coeffs = jnp.asarray(optax_muon._DEFAULT_NS_COEFFS)
  ours = compat.orthogonalize_via_newton_schulz(
    x, coeffs, preconditioning=preconditioning, dimension_numbers=dims
  )
  ref = optax_muon.orthogonalize_via_newton_schulz(
    x, coeffs, preconditioning=preconditioning, dimension_numbers=dims
  )
  assert ours.shape == shape
  assert _rel(ours, ref) <= 1e-5


@pytest.mark.parametrize(
  "make, match",
  [
    (lambda: compat.muon(0.1, ns_coeffs="bogus"), "Unknown ns_coeff preset string: bogus"),
    (
      lambda: compat.scale_by_muon(ns_coeffs=((1, 2, 3),) * 4, ns_steps=3).init(
        {"w": jnp.ones((2, 2))}
      ),
      "Not enough coeffs to perform 3 steps",
    ),
    (
      lambda: compat.orthogonalize_via_newton_schulz(jnp.ones((2, 2, 2)), jnp.ones(3)),
      "Input must have shape",
    ),
    (
      lambda: compat.orthogonalize_via_newton_schulz(
        jnp.ones((2, 2)), jnp.ones(3), preconditioning="x"
      ),
      "Unknown preconditioning x",
    ),
  ],
)
def test_errors_are_optax_errors(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_dimension_numbers_pass_between_compat_and_optax():
  assert compat.MuonDimensionNumbers is contrib.MuonDimensionNumbers
  params = {"w": _tree(3, {"w": (3, 12, 20)})["w"], "b": jnp.ones(20)}
  grads = _tree(4, {"w": (3, 12, 20), "b": (20,)})
  # Ours in optax's Muon, optax's in ours: same updates.
  out = []
  for lib, dims in ((contrib, compat.MuonDimensionNumbers), (compat, contrib.MuonDimensionNumbers)):
    tx = lib.muon(0.02, muon_weight_dimension_numbers={"w": dims(1, 2), "b": None})
    out.append(tx.update(grads, tx.init(params), params)[0])
  for n in params:
    assert _rel(out[0][n], out[1][n]) <= 1e-5, n


class _MLP(nnx.Module):
  """10 -> 32 -> 16 -> 4: wide, tall and square-ish kernels whose gradients on a
  batch of 8 have rank <= 8, the rank-deficient case of real layers."""

  def __init__(self, rngs):
    self.l1 = nnx.Linear(10, 32, rngs=rngs)
    self.l2 = nnx.Linear(32, 16, rngs=rngs)
    self.l3 = nnx.Linear(16, 4, rngs=rngs)

  def __call__(self, x):
    return self.l3(jax.nn.gelu(self.l2(jax.nn.gelu(self.l1(x)))))


def _train_mlp(tx, steps=20):
  """Params before and after `steps` nnx.Optimizer steps of tx on an MSE regression."""
  model = _MLP(nnx.Rngs(0))
  start = jax.tree.map(jnp.array, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

  @nnx.jit
  def step(model, opt, x, y):
    grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    opt.update(model, grads)

  key = jax.random.key(1)
  for t in range(steps):
    kx, ky = jax.random.split(jax.random.fold_in(key, t))
    step(model, opt, jax.random.normal(kx, (8, 10)), jax.random.normal(ky, (8, 4)))
  return start, nnx.to_pure_dict(nnx.state(model, nnx.Param))


WRAPPED = {
  "plain": lambda lib: lib.muon(0.02),
  "inject_hyperparams": lambda lib: optax.inject_hyperparams(lib.muon)(learning_rate=0.02),
  "inject_hyperparams_static_ns_steps": lambda lib: optax.inject_hyperparams(
    lib.muon, static_args=("ns_steps",)
  )(learning_rate=0.02, ns_steps=5),
  "multi_steps": lambda lib: optax.MultiSteps(lib.muon(0.02), every_k_schedule=2),
  "dion_7_steps": lambda lib: lib.muon(0.02, ns_coeffs="dion", ns_steps=7),
}


@pytest.mark.parametrize("wrap", list(WRAPPED))
def test_nnx_mlp_training_matches_optax(wrap):
  # Relative to how far training moved each parameter. With the unrestarted
  # Gram form: 1.3e-5 plain, 1.7e-5 with a static ns_steps, 1.4e-5 under
  # MultiSteps, 1.1e-5 for dion; with restarts all are 0.9e-6 to 1.0e-6.
  start, ours = _train_mlp(WRAPPED[wrap](compat))
  _, ref = _train_mlp(WRAPPED[wrap](optax_muon))
  moved = jax.tree.map(lambda a, b, s: _rel(a - s, b - s), ours, ref, start)
  assert max(jax.tree.leaves(moved)) <= 1e-5, moved


def test_short_table_runs_its_rows_as_in_optax():
  # optax runs exactly a table's rows: "dion" with ns_steps=7 is its 5-step
  # update (muon_jax.newton_schulz would repeat the last row instead).
  params = _tree(0, {"w": (12, 20)})
  grads = _tree(1, {"w": (12, 20)})

  def update(lib, steps):
    tx = lib.muon(0.02, ns_coeffs="dion", ns_steps=steps)
    return tx.update(grads, tx.init(params), params)[0]["w"]

  np.testing.assert_array_equal(update(optax_muon, 7), update(optax_muon, 5))
  assert _rel(update(compat, 7), update(optax_muon, 7)) <= 1e-5
