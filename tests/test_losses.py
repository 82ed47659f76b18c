"""Chunked cross-entropy: same loss and gradients as the full logits, less memory."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from muon_jax.lm import losses
from muon_jax.lm.data import ByteTokenizer
from muon_jax.lm import llama


def _full_loss(model, batch):
  logits = model(batch[:, :-1]).astype(jnp.float32)
  return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()


def _numpy_loss(logits_BxLxV, labels_BxL):
  x = np.asarray(logits_BxLxV, np.float64)
  lse = np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1)) + x.max(-1)
  picked = np.take_along_axis(x, np.asarray(labels_BxL)[..., None], -1)[..., 0]
  return float(np.mean(lse - picked))


@pytest.mark.parametrize("chunk", [1, 7, 48, 1000])
def test_chunked_loss_and_grads_match_full_logits(chunk):
  # 2 x 24 = 48 tokens: 7 leaves a padded last chunk, 1000 is one chunk.
  cfg = llama.tiny(vocab_size=97)
  model = llama.Llama(cfg, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  batch = jnp.asarray(np.random.default_rng(0).integers(0, 97, (2, 25)), jnp.int32)

  def loss_of(params, chunk):
    return losses.next_token_loss(nnx.merge(graphdef, params), batch, chunk)

  want, want_g = jax.value_and_grad(lambda p: _full_loss(nnx.merge(graphdef, p), batch))(params)
  got, got_g = jax.value_and_grad(loss_of)(params, chunk)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(want, _numpy_loss(model(batch[:, :-1]), batch[:, 1:]), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(got_g), jax.tree.leaves(want_g), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  assert float(loss_of(params, 0)) == pytest.approx(float(want), rel=1e-7)


def test_chunked_cross_entropy_is_the_token_mean_of_numpy_log_softmax():
  rng = np.random.default_rng(1)
  hidden = rng.standard_normal((3, 5, 8)).astype(np.float32)
  kernel = rng.standard_normal((8, 11)).astype(np.float32)
  labels = rng.integers(0, 11, (3, 5)).astype(np.int32)
  got = losses.chunked_cross_entropy(
    jnp.asarray(hidden), jnp.asarray(kernel), jnp.asarray(labels), 4
  )
  want = _numpy_loss(hidden.astype(np.float64) @ kernel.astype(np.float64), labels)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_chunked_loss_gradient_never_holds_the_full_logits():
  # 4096 tokens x vocab 2048 f32 logits = 32 MiB; with 256-token chunks one
  # chunk's logits are 2 MiB.
  n, d, v = 4096, 32, 2048
  hidden = jax.ShapeDtypeStruct((8, n // 8, d), jnp.float32)
  kernel = jax.ShapeDtypeStruct((d, v), jnp.float32)
  labels = jax.ShapeDtypeStruct((8, n // 8), jnp.int32)

  def full(h, w, y):
    return optax.softmax_cross_entropy_with_integer_labels(h @ w, y).mean()

  def temp_bytes(loss):
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return grad.lower(hidden, kernel, labels).compile().memory_analysis().temp_size_in_bytes

  logits_bytes = n * v * 4
  full_temp = temp_bytes(full)
  chunked_temp = temp_bytes(lambda h, w, y: losses.chunked_cross_entropy(h, w, y, 256))
  assert full_temp >= logits_bytes
  assert chunked_temp < logits_bytes / 4


def test_bad_chunk_is_rejected():
  with pytest.raises(ValueError, match="^chunk=-1"):
    losses.next_token_loss(None, jnp.zeros((1, 3), jnp.int32), -1)
  with pytest.raises(ValueError, match="^chunk=0"):
    losses.chunked_cross_entropy(
      jnp.zeros((1, 2, 4)), jnp.zeros((4, 5)), jnp.zeros((1, 2), jnp.int32), 0
    )


def test_trainer_step_with_loss_chunk_and_remat_equals_the_default_step():
  from muon_jax.lm import trainer as tr

  base = tr.TrainConfig(model="tiny", optimizer="adamw", seq_len=16, global_batch=2, micro_batch=2)
  vocab = ByteTokenizer.vocab_size
  tokens = np.random.default_rng(2).integers(0, vocab, (1, 1, 2, 17)).astype(np.int32)
  device = jax.local_devices()[:1]
  after = {}
  for name, cfg in {
    "default": base,
    "chunked": dataclasses.replace(base, loss_chunk=5, remat="block"),
  }.items():
    graphdef, params = tr.init_params(tr.model_config(cfg, vocab), jax.random.key(0))
    opt = tr.build_optimizer(cfg)
    step = tr.data_parallel(tr.make_train_step(graphdef, opt, cfg), device)
    new_params, _, metrics = step(
      tr.replicate(params, device), tr.replicate(opt.init(params), device), np.int32(1), tokens
    )
    after[name] = ({k: float(metrics[k][0]) for k in ("loss", "grad_norm")}, new_params)
  for k in ("loss", "grad_norm"):
    assert after["chunked"][0][k] == pytest.approx(after["default"][0][k], rel=1e-5), k
  # Adam's first update is g / (|g| + eps) * lr: a coordinate with |g| near
  # eps turns gradient rounding into up to ~lr of difference, so parameters
  # are compared at a small fraction of lr.
  for a, b in zip(
    jax.tree.leaves(after["chunked"][1]), jax.tree.leaves(after["default"][1]), strict=True
  ):
    np.testing.assert_allclose(a, b, rtol=0, atol=0.05 * base.lr)
