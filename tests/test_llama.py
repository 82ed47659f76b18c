"""LLaMA model: NumPy reference forward, HF loading, 160M count, routing, dtypes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from safetensors.numpy import save_file

from muon_jax.lm import llama
from muon_jax.transform import muon_labels


def _random_hf_checkpoint(cfg: llama.LlamaConfig, seed=0):
  """Random HF-layout (out, in) weights, norms away from 1 so they matter."""
  rng = np.random.default_rng(seed)
  d, hd, f = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size
  w = lambda *s: (0.2 * rng.standard_normal(s)).astype(np.float32)
  sd = {
    "model.embed_tokens.weight": w(cfg.vocab_size, d),
    "model.norm.weight": (1 + w(d)),
    "lm_head.weight": w(cfg.vocab_size, d),
  }
  for i in range(cfg.num_layers):
    p = f"model.layers.{i}."
    sd |= {
      p + "self_attn.q_proj.weight": w(cfg.num_heads * hd, d),
      p + "self_attn.k_proj.weight": w(cfg.num_kv_heads * hd, d),
      p + "self_attn.v_proj.weight": w(cfg.num_kv_heads * hd, d),
      p + "self_attn.o_proj.weight": w(d, cfg.num_heads * hd),
      p + "mlp.gate_proj.weight": w(f, d),
      p + "mlp.up_proj.weight": w(f, d),
      p + "mlp.down_proj.weight": w(d, f),
      p + "input_layernorm.weight": 1 + w(d),
      p + "post_attention_layernorm.weight": 1 + w(d),
    }
  return sd


def _numpy_forward(cfg: llama.LlamaConfig, sd, tokens_BxL):
  """Plain float64 LlamaForCausalLM forward on HF-layout weights."""
  sd = {k: v.astype(np.float64) for k, v in sd.items()}
  b, l = tokens_BxL.shape
  hd, nh, nkv = cfg.head_dim, cfg.num_heads, cfg.num_kv_heads

  def rms(x, wgt):
    return wgt * x / np.sqrt(np.mean(x * x, -1, keepdims=True) + cfg.rms_norm_eps)

  inv = 1.0 / cfg.rope_theta ** (np.arange(0, hd, 2) / hd)
  ang = np.arange(l)[:, None] * inv[None, :]
  cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

  def rope(x):  # (B, L, N, H)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos[:, None] + np.concatenate([-x2, x1], -1) * sin[:, None]

  x = sd["model.embed_tokens.weight"][tokens_BxL]
  mask = np.tril(np.ones((l, l), bool))
  for i in range(cfg.num_layers):
    p = f"model.layers.{i}."
    h = rms(x, sd[p + "input_layernorm.weight"])
    q = rope((h @ sd[p + "self_attn.q_proj.weight"].T).reshape(b, l, nh, hd))
    k = rope((h @ sd[p + "self_attn.k_proj.weight"].T).reshape(b, l, nkv, hd))
    v = (h @ sd[p + "self_attn.v_proj.weight"].T).reshape(b, l, nkv, hd)
    k, v = np.repeat(k, nh // nkv, axis=2), np.repeat(v, nh // nkv, axis=2)
    s = np.einsum("bqnh,bknh->bnqk", q, k) / np.sqrt(hd)
    s = np.where(mask, s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    o = np.einsum("bnqk,bknh->bqnh", a, v).reshape(b, l, nh * hd)
    x = x + o @ sd[p + "self_attn.o_proj.weight"].T
    h = rms(x, sd[p + "post_attention_layernorm.weight"])
    g = h @ sd[p + "mlp.gate_proj.weight"].T
    x = (
      x
      + ((g / (1 + np.exp(-g))) * (h @ sd[p + "mlp.up_proj.weight"].T))
      @ sd[p + "mlp.down_proj.weight"].T
    )
  return rms(x, sd["model.norm.weight"]) @ sd["lm_head.weight"].T


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
  cfg = llama.tiny(vocab_size=97, num_layers=2)
  sd = _random_hf_checkpoint(cfg)
  d = tmp_path_factory.mktemp("hf_tiny")
  (d / "config.json").write_text(json.dumps(cfg.to_hf_config()))
  save_file(sd, str(d / "model.safetensors"))
  return cfg, sd, d


def test_hf_checkpoint_matches_numpy_forward(tiny_ckpt):
  cfg, sd, d = tiny_ckpt
  model = llama.load_hf_checkpoint(str(d))
  assert model.config == cfg
  tokens = np.random.default_rng(1).integers(0, cfg.vocab_size, (2, 24)).astype(np.int32)
  got = np.asarray(model(jnp.asarray(tokens)))
  want = _numpy_forward(cfg, sd, tokens)
  assert got.shape == (2, 24, cfg.vocab_size)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_matches_transformers_if_available(tiny_ckpt):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  cfg, _, d = tiny_ckpt
  hf = transformers.LlamaForCausalLM.from_pretrained(str(d), torch_dtype=torch.float32).eval()
  tokens = np.random.default_rng(2).integers(0, cfg.vocab_size, (2, 16)).astype(np.int64)
  with torch.no_grad():
    want = hf(torch.from_numpy(tokens)).logits.numpy()
  got = np.asarray(llama.load_hf_checkpoint(str(d))(jnp.asarray(tokens, jnp.int32)))
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_160m_param_count_equals_hf_config_count():
  cfg = llama.llama_160m()
  hf = cfg.to_hf_config()
  # JackFram/llama-160m config.json values (paper App 12).
  assert (
    hf["hidden_size"],
    hf["intermediate_size"],
    hf["num_hidden_layers"],
    hf["num_attention_heads"],
    hf["num_key_value_heads"],
    hf["vocab_size"],
  ) == (768, 3072, 12, 12, 12, 32000)
  d, f, v, n = 768, 3072, 32000, 12
  per_layer = 4 * d * d + 3 * d * f + 2 * d  # q,k,v,o + gate,up,down + 2 norms
  want = 2 * v * d + n * per_layer + d  # untied embed + lm_head, final norm
  assert want == 162_417_408
  assert llama.param_count(llama.abstract_model(cfg)) == want
  assert llama.matmul_param_count(cfg) == want - v * d - (2 * n + 1) * d


def _paths(model):
  pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  return jax.tree_util.tree_map_with_path(
    lambda p, _: jax.tree_util.keystr(p, simple=True, separator="/"), pure
  ), pure


def test_param_paths_and_muon_routing():
  model = llama.abstract_model(llama.tiny(num_layers=3))
  names, pure = _paths(model)
  flat = set(jax.tree.leaves(names))
  for i in range(3):
    for proj in (
      "attn/q_proj",
      "attn/k_proj",
      "attn/v_proj",
      "attn/o_proj",
      "mlp/gate_proj",
      "mlp/up_proj",
      "mlp/down_proj",
    ):
      assert f"layers/{i}/{proj}/kernel" in flat
  assert {"embed/embedding", "lm_head/kernel", "norm/scale"} <= flat
  labels = dict(zip(jax.tree.leaves(names), jax.tree.leaves(muon_labels(pure))))
  for name, label in labels.items():
    want = "muon" if ("_proj" in name) else "adamw"
    assert label == want, name
  assert labels["embed/embedding"] == labels["lm_head/kernel"] == "adamw"


def test_causal_and_gqa_shapes():
  cfg = llama.tiny(vocab_size=50)
  model = llama.Llama(cfg, rngs=nnx.Rngs(0))
  assert model.layers[0].attn.k_proj.kernel[...].shape == (64, 2 * 16)
  t = np.random.default_rng(0).integers(0, 50, (1, 12)).astype(np.int32)
  t2 = t.copy()
  t2[0, 8:] = (t2[0, 8:] + 1) % 50
  a, b = np.asarray(model(t)), np.asarray(model(t2))
  np.testing.assert_array_equal(a[:, :8], b[:, :8])  # no position sees its future
  assert np.abs(a[:, 8:] - b[:, 8:]).max() > 1e-3


def test_bf16_compute_and_param_dtypes():
  cfg32 = llama.tiny(vocab_size=50)
  m32 = llama.Llama(cfg32, rngs=nnx.Rngs(3))
  m16 = llama.Llama(cfg32.replace(dtype="bfloat16"), rngs=nnx.Rngs(3))
  mp = llama.Llama(cfg32.replace(param_dtype="bfloat16", dtype="bfloat16"), rngs=nnx.Rngs(3))
  assert m16.lm_head.kernel[...].dtype == jnp.float32
  assert mp.lm_head.kernel[...].dtype == jnp.bfloat16
  assert mp.layers[0].input_layernorm.scale[...].dtype == jnp.bfloat16
  t = np.arange(20, dtype=np.int32)[None] % 50
  l32, l16 = m32(t), m16(t)
  assert l16.dtype == jnp.bfloat16 and l32.dtype == jnp.float32
  err = np.abs(np.asarray(l16, np.float32) - np.asarray(l32)).max()
  assert 0 < err < 0.05 * np.abs(np.asarray(l32)).max()


def test_config_errors_and_hf_mismatch(tiny_ckpt):
  with pytest.raises(ValueError, match="num_kv_heads"):
    llama.tiny(num_heads=4, num_kv_heads=3)
  cfg, sd, _ = tiny_ckpt
  bad = dict(sd)
  del bad["model.layers.1.mlp.up_proj.weight"]
  with pytest.raises(KeyError, match="model.layers.1.mlp.up_proj.weight"):
    llama.from_hf_state_dict(cfg, bad)
  with pytest.raises(ValueError, match="shape"):
    llama.from_hf_state_dict(cfg.replace(intermediate_size=cfg.intermediate_size + 2), sd)


def _loss_and_grads(cfg, tokens_BxL1, seed=0):
  graphdef, params = nnx.split(llama.Llama(cfg, rngs=nnx.Rngs(seed)))

  def loss(p):
    logits = nnx.merge(graphdef, p)(tokens_BxL1[:, :-1]).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens_BxL1[:, 1:]).mean()

  return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("remat", [r for r in llama.REMAT_POLICIES if r != "none"])
def test_remat_policies_keep_loss_and_gradients(remat):
  cfg = llama.tiny(vocab_size=50)
  tokens = jnp.asarray(np.random.default_rng(4).integers(0, 50, (2, 17)), jnp.int32)
  want, want_g = _loss_and_grads(cfg, tokens)
  got, got_g = _loss_and_grads(cfg.replace(remat=remat), tokens)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(got_g), jax.tree.leaves(want_g), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_attention_implementations_agree_on_cpu():
  cfg = llama.tiny(vocab_size=50)
  tokens = jnp.asarray(np.random.default_rng(5).integers(0, 50, (2, 16)), jnp.int32)
  xla = llama.Llama(cfg, rngs=nnx.Rngs(1))(tokens)
  auto = llama.Llama(cfg.replace(attention="auto"), rngs=nnx.Rngs(1))(tokens)
  np.testing.assert_allclose(np.asarray(auto), np.asarray(xla), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the error off a GPU")
def test_cudnn_attention_off_gpu_is_a_clear_error_before_compiling():
  with pytest.raises(ValueError, match="^attention='cudnn' needs an NVIDIA GPU"):
    llama.Llama(llama.tiny(dtype="bfloat16", attention="cudnn"), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="^attention='cudnn' needs a bfloat16 compute dtype"):
    llama.tiny(attention="cudnn")
  with pytest.raises(ValueError, match="^attention='flash' is not allowed"):
    llama.tiny(attention="flash")
  with pytest.raises(ValueError, match="^remat='all' is not allowed"):
    llama.tiny(remat="all")


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN attention needs a GPU")
def test_cudnn_attention_matches_xla_to_bf16_tolerance():
  cfg = llama.tiny(
    vocab_size=50, dtype="bfloat16", head_dim=64, num_heads=4, num_kv_heads=2, hidden_size=256
  )
  tokens = jnp.asarray(np.random.default_rng(6).integers(0, 50, (2, 128)), jnp.int32)
  xla = np.asarray(llama.Llama(cfg, rngs=nnx.Rngs(2))(tokens), np.float32)
  cudnn = np.asarray(
    llama.Llama(cfg.replace(attention="cudnn"), rngs=nnx.Rngs(2))(tokens), np.float32
  )
  np.testing.assert_allclose(cudnn, xla, atol=0.05 * np.abs(xla).max())
