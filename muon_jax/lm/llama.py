"""LLaMA decoder in Flax NNX, with the paper's LLaMA-160M preset and HF loading.

Paper Sec 4.3 / App 12 pre-train "LLaMA-160M", the JackFram/llama-160m
configuration (Miao et al., SpecInfer): 12 layers, hidden 768, MLP 3072,
12 heads (12 KV heads), vocab 32000, RMSNorm eps 1e-6, RoPE theta 1e4, SiLU
gated MLP, untied embedding / lm_head. The block follows Hugging Face's
`LlamaForCausalLM` exactly (rotate-half RoPE, f32 RMSNorm statistics), so a
local HF checkpoint loads by a transpose of each linear weight.

Parameter paths (pure-dict keys joined by "/"): `embed/embedding`,
`layers/<i>/attn/{q,k,v,o}_proj/kernel`, `layers/<i>/mlp/{gate,up,down}_proj/kernel`,
`layers/<i>/{input,post_attention}_layernorm/scale`, `norm/scale`,
`lm_head/kernel`. Kernels are (in, out); Muon's routing predicate
(`muon_jax.transform.is_hidden_matrix`) sends `embed` and `lm_head` to AdamW by name
and the 1-D norm scales by rank.

Two execution choices change memory and speed but not the function computed:
`attention` picks `jax.nn.dot_product_attention`'s implementation (causal by
`is_causal`, no mask built here) and `remat` a `jax.checkpoint` policy applied
to each block, trading recomputation in the backward pass for activations
kept between the passes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# `jax.nn.dot_product_attention` implementations; "auto" lets JAX pick (cuDNN
# where it can, else XLA).
ATTENTION_IMPLEMENTATIONS = {"xla": "xla", "cudnn": "cudnn", "auto": None}

# Per-block rematerialisation: which intermediates of a block survive to the
# backward pass. "none": all (no remat); "block": only the block's inputs,
# everything else recomputed; "dots": matmul outputs kept, elementwise work
# recomputed; "dots_no_batch": only matmuls without batch dimensions kept
# (the projections), the attention score/value products recomputed.
REMAT_POLICIES = {
  "none": None,
  "block": jax.checkpoint_policies.nothing_saveable,
  "dots": jax.checkpoint_policies.dots_saveable,
  "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  """Architecture, dtypes and execution options. `dtype` is the compute dtype, `param_dtype` storage."""

  vocab_size: int = 32000
  hidden_size: int = 768
  intermediate_size: int = 3072
  num_layers: int = 12
  num_heads: int = 12
  num_kv_heads: int = 12
  head_dim: int | None = None  # None: hidden_size // num_heads
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  max_position_embeddings: int = 2048
  init_std: float = 0.02
  dtype: str = "float32"
  param_dtype: str = "float32"
  attention: str = "xla"  # key of ATTENTION_IMPLEMENTATIONS
  remat: str = "none"  # key of REMAT_POLICIES

  def __post_init__(self):
    if self.attention not in ATTENTION_IMPLEMENTATIONS:
      raise ValueError(
        f"attention={self.attention!r} is not allowed; choose from "
        f"{', '.join(ATTENTION_IMPLEMENTATIONS)}"
      )
    if self.remat not in REMAT_POLICIES:
      raise ValueError(
        f"remat={self.remat!r} is not allowed; choose from {', '.join(REMAT_POLICIES)}"
      )
    if self.attention == "cudnn" and self.dtype != "bfloat16":
      raise ValueError(
        f"attention='cudnn' needs a bfloat16 compute dtype, got {self.dtype} "
        f"(cuDNN flash attention has no {self.dtype} kernel)"
      )
    for name in (
      "vocab_size",
      "hidden_size",
      "intermediate_size",
      "num_layers",
      "num_heads",
      "num_kv_heads",
      "max_position_embeddings",
    ):
      if getattr(self, name) < 1:
        raise ValueError(f"LlamaConfig.{name}={getattr(self, name)} must be >= 1")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
        f"num_heads={self.num_heads} must be a multiple of "
        f"num_kv_heads={self.num_kv_heads} (grouped-query attention)"
      )
    if self.head_dim is None:
      if self.hidden_size % self.num_heads:
        raise ValueError(
          f"hidden_size={self.hidden_size} not divisible by num_heads={self.num_heads}"
        )
      object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
    if self.head_dim % 2:
      raise ValueError(f"head_dim={self.head_dim} must be even for RoPE")

  def replace(self, **kw) -> LlamaConfig:
    return dataclasses.replace(self, **kw)

  def to_hf_config(self) -> dict:
    """The matching Hugging Face `LlamaConfig` dict (config.json)."""
    return {
      "architectures": ["LlamaForCausalLM"],
      "model_type": "llama",
      "vocab_size": self.vocab_size,
      "hidden_size": self.hidden_size,
      "intermediate_size": self.intermediate_size,
      "num_hidden_layers": self.num_layers,
      "num_attention_heads": self.num_heads,
      "num_key_value_heads": self.num_kv_heads,
      "head_dim": self.head_dim,
      "rms_norm_eps": self.rms_norm_eps,
      "rope_theta": self.rope_theta,
      "max_position_embeddings": self.max_position_embeddings,
      "initializer_range": self.init_std,
      "hidden_act": "silu",
      "tie_word_embeddings": False,
      "attention_bias": False,
      "mlp_bias": False,
    }

  @classmethod
  def from_hf_config(cls, hf: Mapping, **overrides) -> LlamaConfig:
    """Reads a HF LlamaForCausalLM config.json dict (rejects what we don't model)."""
    if hf.get("hidden_act", "silu") != "silu":
      raise ValueError(f"hidden_act={hf['hidden_act']!r}: only 'silu' is implemented")
    if hf.get("rope_scaling"):
      raise ValueError("rope_scaling is not implemented")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
      raise ValueError("attention_bias / mlp_bias are not implemented")
    kw = {
      "vocab_size": hf["vocab_size"],
      "hidden_size": hf["hidden_size"],
      "intermediate_size": hf["intermediate_size"],
      "num_layers": hf["num_hidden_layers"],
      "num_heads": hf["num_attention_heads"],
      "num_kv_heads": hf.get("num_key_value_heads") or hf["num_attention_heads"],
      "head_dim": hf.get("head_dim"),
      "rms_norm_eps": hf.get("rms_norm_eps", 1e-6),
      "rope_theta": hf.get("rope_theta", 10000.0),
      "max_position_embeddings": hf.get("max_position_embeddings", 2048),
      "init_std": hf.get("initializer_range", 0.02),
    }
    kw.update(overrides)
    return cls(**kw)


def llama_160m(**overrides) -> LlamaConfig:
  """JackFram/llama-160m (paper App 12): 162,417,408 parameters."""
  return LlamaConfig(**overrides)


def tiny(**overrides) -> LlamaConfig:
  """CPU/test size. GQA on (4 query heads share 2 KV heads) so tests exercise it."""
  kw = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "max_position_embeddings": 512,
  }
  kw.update(overrides)
  return LlamaConfig(**kw)


PRESETS = {"tiny": tiny, "160m": llama_160m}


def check_attention_backend(attention: str, backend: str | None = None) -> None:
  """Raises ValueError if `attention` cannot run on `backend` (default: JAX's default backend).

  cuDNN attention needs an NVIDIA GPU; without this check the failure would
  come from inside the first compile.
  """
  if attention != "cudnn":
    return
  backend = backend or jax.default_backend()
  if backend != "gpu":
    raise ValueError(
      f"attention='cudnn' needs an NVIDIA GPU with cuDNN; this backend is {backend} "
      f"(use attention='xla')"
    )


def rope_cos_sin(positions_L: jax.Array, head_dim: int, theta: float):
  """HF rotate-half RoPE tables: cos, sin of shape (L, head_dim), f32."""
  inv_freq_H = 1.0 / theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
  freqs_LxH = positions_L.astype(jnp.float32)[:, None] * inv_freq_H[None, :]
  emb_LxD = jnp.concatenate([freqs_LxH, freqs_LxH], axis=-1)
  return jnp.cos(emb_LxD), jnp.sin(emb_LxD)


def apply_rope(x_BxLxNxD: jax.Array, cos_LxD: jax.Array, sin_LxD: jax.Array) -> jax.Array:
  """x*cos + rotate_half(x)*sin, rotate_half(x) = [-x2, x1] (computed in f32)."""
  x = x_BxLxNxD.astype(jnp.float32)
  x1, x2 = jnp.split(x, 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  out = x * cos_LxD[:, None, :] + rotated * sin_LxD[:, None, :]
  return out.astype(x_BxLxNxD.dtype)


class RMSNorm(nnx.Module):
  """HF LlamaRMSNorm: statistics in f32, scale applied after casting back."""

  def __init__(self, dim: int, eps: float, *, dtype, param_dtype):
    self.scale = nnx.Param(jnp.ones((dim,), param_dtype))
    self.eps = eps
    self.dtype = dtype

  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    x = x_BxLxD.astype(jnp.float32)
    x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
    return self.scale[...].astype(self.dtype) * x.astype(self.dtype)


def _linear(cfg: LlamaConfig, din: int, dout: int, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(
    din,
    dout,
    use_bias=False,
    dtype=cfg.dtype,
    param_dtype=cfg.param_dtype,
    kernel_init=nnx.initializers.normal(cfg.init_std),
    rngs=rngs,
  )


class Attention(nnx.Module):
  """Causal multi-head attention with grouped KV heads and RoPE."""

  def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
    d, hd = cfg.hidden_size, cfg.head_dim
    self.q_proj = _linear(cfg, d, cfg.num_heads * hd, rngs)
    self.k_proj = _linear(cfg, d, cfg.num_kv_heads * hd, rngs)
    self.v_proj = _linear(cfg, d, cfg.num_kv_heads * hd, rngs)
    self.o_proj = _linear(cfg, cfg.num_heads * hd, d, rngs)
    self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, hd
    self.implementation = ATTENTION_IMPLEMENTATIONS[cfg.attention]

  def __call__(self, x_BxLxD, cos_LxH, sin_LxH):
    b, l, _ = x_BxLxD.shape
    q = self.q_proj(x_BxLxD).reshape(b, l, self.num_heads, self.head_dim)
    k = self.k_proj(x_BxLxD).reshape(b, l, self.num_kv_heads, self.head_dim)
    v = self.v_proj(x_BxLxD).reshape(b, l, self.num_kv_heads, self.head_dim)
    q, k = apply_rope(q, cos_LxH, sin_LxH), apply_rope(k, cos_LxH, sin_LxH)
    # K/V heads are broadcast over query groups (GQA) inside; the XLA path
    # computes logits and softmax in f32 whatever the compute dtype.
    out_BxLxNxH = jax.nn.dot_product_attention(
      q, k, v, is_causal=True, implementation=self.implementation
    )
    return self.o_proj(out_BxLxNxH.reshape(b, l, self.num_heads * self.head_dim))


class MLP(nnx.Module):
  """down(silu(gate(x)) * up(x))."""

  def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
    self.gate_proj = _linear(cfg, cfg.hidden_size, cfg.intermediate_size, rngs)
    self.up_proj = _linear(cfg, cfg.hidden_size, cfg.intermediate_size, rngs)
    self.down_proj = _linear(cfg, cfg.intermediate_size, cfg.hidden_size, rngs)

  def __call__(self, x_BxLxD):
    return self.down_proj(jax.nn.silu(self.gate_proj(x_BxLxD)) * self.up_proj(x_BxLxD))


class Block(nnx.Module):
  """Pre-norm residual block: x + attn(norm(x)); x + mlp(norm(x))."""

  def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
    norm = lambda: RMSNorm(
      cfg.hidden_size, cfg.rms_norm_eps, dtype=cfg.dtype, param_dtype=cfg.param_dtype
    )
    self.input_layernorm = norm()
    self.attn = Attention(cfg, rngs)
    self.post_attention_layernorm = norm()
    self.mlp = MLP(cfg, rngs)

  def __call__(self, x_BxLxD, cos_LxH, sin_LxH):
    x_BxLxD = x_BxLxD + self.attn(self.input_layernorm(x_BxLxD), cos_LxH, sin_LxH)
    return x_BxLxD + self.mlp(self.post_attention_layernorm(x_BxLxD))


class Llama(nnx.Module):
  """LlamaForCausalLM: tokens (B, L) int -> logits (B, L, V) in `config.dtype`."""

  def __init__(self, config: LlamaConfig, *, rngs: nnx.Rngs):
    check_attention_backend(config.attention)
    self.config = config
    self.embed = nnx.Embed(
      config.vocab_size,
      config.hidden_size,
      dtype=config.dtype,
      param_dtype=config.param_dtype,
      embedding_init=nnx.initializers.normal(config.init_std),
      rngs=rngs,
    )
    self.layers = nnx.List([Block(config, rngs) for _ in range(config.num_layers)])
    self.norm = RMSNorm(
      config.hidden_size, config.rms_norm_eps, dtype=config.dtype, param_dtype=config.param_dtype
    )
    self.lm_head = _linear(config, config.hidden_size, config.vocab_size, rngs)

  def __call__(self, tokens_BxL: jax.Array) -> jax.Array:
    return self.lm_head(self.hidden_states(tokens_BxL))

  def hidden_states(self, tokens_BxL: jax.Array) -> jax.Array:
    """The final-norm output (B, L, D) that `lm_head` maps to logits."""
    l = tokens_BxL.shape[1]
    if l > self.config.max_position_embeddings:
      raise ValueError(
        f"sequence length {l} > max_position_embeddings {self.config.max_position_embeddings}"
      )
    cos, sin = rope_cos_sin(jnp.arange(l), self.config.head_dim, self.config.rope_theta)
    run_block = _run_block
    if self.config.remat != "none":
      run_block = nnx.remat(_run_block, policy=REMAT_POLICIES[self.config.remat])
    x_BxLxD = self.embed(tokens_BxL)
    for layer in self.layers:
      x_BxLxD = run_block(layer, x_BxLxD, cos, sin)
    return self.norm(x_BxLxD)


def _run_block(block: Block, x_BxLxD, cos_LxH, sin_LxH):
  return block(x_BxLxD, cos_LxH, sin_LxH)


def abstract_model(config: LlamaConfig) -> Llama:
  """Shape-only model (no allocation): `nnx.eval_shape` of the constructor."""
  return nnx.eval_shape(lambda: Llama(config, rngs=nnx.Rngs(0)))


def param_count(model: nnx.Module) -> int:
  """Total number of parameter elements (works on abstract models)."""
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def matmul_param_count(config: LlamaConfig) -> int:
  """Parameters that enter a matmul per token: all but the embedding table and norms.

  Used for the 6·N FLOPs/token estimate (Kaplan et al.; the embedding lookup
  is a gather, the lm_head is a matmul).
  """
  d, hd = config.hidden_size, config.head_dim
  attn = d * hd * (2 * config.num_heads + 2 * config.num_kv_heads)
  mlp = 3 * d * config.intermediate_size
  return config.num_layers * (attn + mlp) + d * config.vocab_size


def flops_per_token(config: LlamaConfig, seq_len: int) -> float:
  """Training FLOPs per token: 6·N_matmul + 12·layers·L·(heads·head_dim) (PaLM App B)."""
  attn = 12 * config.num_layers * seq_len * config.num_heads * config.head_dim
  return 6.0 * matmul_param_count(config) + attn


# ---------------------------------------------------------------- HF loading

_LAYER_MAP = {
  "self_attn.q_proj": ("attn", "q_proj"),
  "self_attn.k_proj": ("attn", "k_proj"),
  "self_attn.v_proj": ("attn", "v_proj"),
  "self_attn.o_proj": ("attn", "o_proj"),
  "mlp.gate_proj": ("mlp", "gate_proj"),
  "mlp.up_proj": ("mlp", "up_proj"),
  "mlp.down_proj": ("mlp", "down_proj"),
}


def hf_to_pure_dict(config: LlamaConfig, state_dict: Mapping[str, np.ndarray]) -> dict:
  """Maps HF tensor names to this module's pure-dict params (linears transposed).

  Missing `lm_head.weight` (a tied checkpoint) reuses the embedding.
  Raises KeyError naming a missing tensor, ValueError on a shape mismatch.
  """
  sd = {k: np.asarray(v) for k, v in state_dict.items()}

  def get(name):
    if name not in sd:
      raise KeyError(f"HF state dict has no tensor {name!r}")
    return sd[name]

  embed = get("model.embed_tokens.weight")
  out = {
    "embed": {"embedding": embed},
    "norm": {"scale": get("model.norm.weight")},
    "lm_head": {"kernel": (sd.get("lm_head.weight", embed)).T},
    "layers": {},
  }
  for i in range(config.num_layers):
    pre = f"model.layers.{i}."
    layer = {
      "attn": {},
      "mlp": {},
      "input_layernorm": {"scale": get(pre + "input_layernorm.weight")},
      "post_attention_layernorm": {"scale": get(pre + "post_attention_layernorm.weight")},
    }
    for hf_name, (group, name) in _LAYER_MAP.items():
      layer[group][name] = {"kernel": get(pre + hf_name + ".weight").T}  # (out,in) -> (in,out)
    out["layers"][i] = layer
  return out


def from_hf_state_dict(config: LlamaConfig, state_dict: Mapping[str, np.ndarray]) -> Llama:
  """Builds a Llama whose weights are the HF `LlamaForCausalLM` state dict's."""
  model = abstract_model(config)
  graphdef, state = nnx.split(model)
  pure = hf_to_pure_dict(config, state_dict)
  abstract = nnx.to_pure_dict(state)

  def fill(path, want, got):
    name = jax.tree_util.keystr(path, simple=True, separator="/")
    if tuple(got.shape) != tuple(want.shape):
      raise ValueError(f"{name}: HF shape {got.shape} != model shape {want.shape}")
    return jnp.asarray(got, dtype=want.dtype)

  nnx.replace_by_pure_dict(state, jax.tree_util.tree_map_with_path(fill, abstract, pure))
  return nnx.merge(graphdef, state)


def load_safetensors_dir(path: str) -> dict:
  """All tensors of `path/*.safetensors` (single file or sharded) as NumPy arrays."""
  from safetensors import safe_open

  files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
  if not files:
    raise FileNotFoundError(f"no *.safetensors files in {path}")
  sd = {}
  for f in files:
    # framework="flax" reads bf16 tensors, which plain NumPy cannot.
    with safe_open(os.path.join(path, f), framework="flax") as fh:
      for k in fh.keys():  # noqa: SIM118 (safe_open is not iterable)
        sd[k] = np.asarray(fh.get_tensor(k))
  return sd


def load_hf_checkpoint(path: str, **config_overrides) -> Llama:
  """Loads a local HF LlamaForCausalLM directory (config.json + safetensors).

  No hub access. `config_overrides` (e.g. dtype="bfloat16") go to LlamaConfig.
  """
  with open(os.path.join(path, "config.json")) as f:
    config = LlamaConfig.from_hf_config(json.load(f), **config_overrides)
  return from_hf_state_dict(config, load_safetensors_dir(path))
