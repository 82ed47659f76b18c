"""Next-token cross-entropy, with or without the full (B, L, V) logits.

The full-logits loss materialises the f32 logits of every token, and its
gradient keeps them (or the softmax) until the backward pass: at LLaMA-160M,
micro batch 16 x 1024 and vocab 32000 that is 2.1 GB per copy. The chunked
loss walks the flattened tokens in chunks of `chunk`, computing each chunk's
logits, log-sum-exp and target logit inside a `jax.checkpoint`ed scan step,
so the backward pass recomputes one chunk's logits at a time and the largest
logits buffer alive is (chunk, V). Both compute the logits exactly as
`lm_head` does (inputs and kernel in the compute dtype, then cast to f32), so
in f32 they agree to rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def next_token_loss(model, batch_BxL1: jax.Array, chunk: int = 0) -> jax.Array:
  """Mean cross-entropy (f32) of tokens batch[:, 1:] given batch[:, :-1].

  Args:
    model: a `muon_jax.lm.llama.Llama` (anything with `hidden_states`,
      `lm_head.kernel` and `config.dtype` for chunk > 0; callable to logits
      for chunk = 0).
    batch_BxL1: int tokens (B, L + 1).
    chunk: tokens per logits chunk; 0 computes the full (B, L, V) logits.

  Returns:
    Scalar f32 loss.
  """
  if chunk < 0:
    raise ValueError(f"chunk={chunk} must be >= 0 (0 = full logits)")
  inputs_BxL, labels_BxL = batch_BxL1[:, :-1], batch_BxL1[:, 1:]
  if chunk == 0:
    logits_BxLxV = model(inputs_BxL).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV, labels_BxL).mean()
  hidden_BxLxD = model.hidden_states(inputs_BxL)
  return chunked_cross_entropy(
    hidden_BxLxD, model.lm_head.kernel[...], labels_BxL, chunk, compute_dtype=model.config.dtype
  )


def chunked_cross_entropy(
  hidden_BxLxD: jax.Array,
  kernel_DxV: jax.Array,
  labels_BxL: jax.Array,
  chunk: int,
  *,
  compute_dtype=None,
) -> jax.Array:
  """Mean cross-entropy of logits = hidden @ kernel without forming all logits.

  Args:
    hidden_BxLxD: final hidden states.
    kernel_DxV: output projection (in, out).
    labels_BxL: int targets in [0, V).
    chunk: tokens per chunk (>= 1); the B*L tokens are padded to a multiple
      of it and the padding carries zero weight.
    compute_dtype: dtype of the matmul inputs and output (default: hidden's),
      cast to f32 before the softmax.

  Returns:
    Scalar f32 mean over the B*L tokens.
  """
  if chunk < 1:
    raise ValueError(f"chunk={chunk} must be >= 1")
  compute_dtype = compute_dtype or hidden_BxLxD.dtype
  d = hidden_BxLxD.shape[-1]
  hidden_NxD = hidden_BxLxD.reshape(-1, d).astype(compute_dtype)
  labels_N = labels_BxL.reshape(-1)
  n = labels_N.shape[0]
  chunk = min(chunk, n)
  n_chunks = -(-n // chunk)
  pad = n_chunks * chunk - n
  weight_N = jnp.pad(jnp.ones((n,), jnp.float32), (0, pad))
  hidden_CxKxD = jnp.pad(hidden_NxD, ((0, pad), (0, 0))).reshape(n_chunks, chunk, d)
  labels_CxK = jnp.pad(labels_N, (0, pad)).reshape(n_chunks, chunk)
  kernel_DxV = kernel_DxV.astype(compute_dtype)

  # Checkpointed so the scan's backward saves only the chunk's inputs and
  # recomputes its (chunk, V) logits, instead of stacking all of them.
  @jax.checkpoint
  def chunk_loss_sum(h_KxD, labels_K, weight_K):
    logits_KxV = jnp.dot(h_KxD, kernel_DxV).astype(jnp.float32)
    losses_K = optax.softmax_cross_entropy_with_integer_labels(logits_KxV, labels_K)
    return jnp.sum(losses_K * weight_K)

  def step(total, xs):
    return total + chunk_loss_sum(*xs), None

  total, _ = jax.lax.scan(
    step, jnp.zeros((), jnp.float32), (hidden_CxKxD, labels_CxK, weight_N.reshape(n_chunks, chunk))
  )
  return total / n
