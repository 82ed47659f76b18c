"""Step analysis: XLA memory/FLOP accounting of the trainer step, remat, sweep, bench_train binary."""

import dataclasses
import glob
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from binaries import run_module
from flax import nnx

from muon_jax.lm import step_bench
from muon_jax.lm import trainer as tr
from muon_jax.lm.data import ByteTokenizer
from muon_jax.lm import llama

TINY = tr.TrainConfig(model="tiny", optimizer="adamw", seq_len=32, global_batch=2, micro_batch=2)


@pytest.fixture(scope="module")
def tiny_analysis():
  return step_bench.analyze_step(TINY, 2)


def _nbytes(tree):
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def test_step_arguments_are_params_opt_state_and_batch_and_are_donated(tiny_analysis):
  mcfg = tr.model_config(TINY, step_bench.vocab_size("tiny"))
  _, params = tr.init_params(mcfg, jax.random.key(0))
  opt_state = tr.build_optimizer(TINY).init(params)
  state_bytes = _nbytes(params) + _nbytes(opt_state)
  batch_bytes = 2 * (TINY.seq_len + 1) * 4
  got = tiny_analysis
  # + 4 bytes for the int32 step counter; XLA may pad small buffers.
  assert (
    state_bytes + batch_bytes + 4
    <= got["argument_bytes"]
    <= 1.01 * (state_bytes + batch_bytes) + 1024
  )
  assert state_bytes <= got["alias_bytes"] <= 1.01 * state_bytes + 1024
  assert got["peak_memory_bytes"] == (
    got["argument_bytes"] + got["output_bytes"] + got["temp_bytes"] - got["alias_bytes"]
  )


def test_xla_flops_per_token_match_the_analytic_count(tiny_analysis):
  got = tiny_analysis
  mcfg = tr.model_config(TINY, step_bench.vocab_size("tiny"))
  assert got["analytic_flops_per_token"] == llama.flops_per_token(mcfg, 32)
  assert 0.95 < got["xla_over_analytic"] < 1.25, got["xla_over_analytic"]
  # AdamW: a few elementwise operations per parameter (moments, sqrt, divide, decay).
  n_params = llama.param_count(llama.abstract_model(mcfg))
  assert 5 * n_params < got["xla_optimizer_flops"] < 40 * n_params


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_flops_before_optimisation_match_the_compiled_count_on_cpu(optimizer):
  # A GPU compile hides its matmuls in library custom calls, so step_bench
  # counts the module before optimisation; on the CPU, where the compiled
  # module keeps every dot, the two counts must agree.
  tcfg = dataclasses.replace(TINY, optimizer=optimizer, remat="block")
  mcfg = tr.model_config(tcfg, step_bench.vocab_size("tiny"))
  graphdef, state = nnx.split(llama.abstract_model(mcfg))
  params = nnx.to_pure_dict(state)
  optimizer = tr.build_optimizer(tcfg)
  opt_state = jax.eval_shape(optimizer.init, params)
  batch = jax.ShapeDtypeStruct((2, tcfg.seq_len + 1), jnp.int32)
  loss_of = lambda p, b: tr.lm_loss(nnx.merge(graphdef, p), b)
  for lowered in (
    jax.jit(jax.value_and_grad(loss_of)).lower(params, batch),
    jax.jit(optimizer.update).lower(params, opt_state, params),
  ):
    before = step_bench.xla_flops(lowered)
    after = step_bench.xla_flops(step_bench.compile_for_analysis(lowered))
    assert before == pytest.approx(after, rel=0.02), (before, after)
  got = step_bench.analyze_step(tcfg, 2)
  assert got["xla_flops_per_token"] * 2 * tcfg.seq_len == step_bench.xla_flops(
    jax.jit(jax.value_and_grad(loss_of)).lower(params, batch)
  )


def test_block_remat_lowers_the_step_peak_memory():
  cfg = dataclasses.replace(TINY, seq_len=256)
  none = step_bench.analyze_step(cfg, 4, flops=False)["peak_memory_bytes"]
  block = step_bench.analyze_step(dataclasses.replace(cfg, remat="block"), 4, flops=False)
  assert block["peak_memory_bytes"] < 0.6 * none


def test_loss_chunk_lowers_the_step_peak_memory():
  cfg = dataclasses.replace(TINY, seq_len=256, global_batch=8, micro_batch=8)
  logits_bytes = 8 * 256 * ByteTokenizer.vocab_size * 4
  full = step_bench.analyze_step(cfg, 8, flops=False)["peak_memory_bytes"]
  chunked = step_bench.analyze_step(dataclasses.replace(cfg, loss_chunk=256), 8, flops=False)
  assert chunked["peak_memory_bytes"] < full - logits_bytes / 2


def test_memory_sweep_grows_with_micro_batch_and_resumes_from_its_cache(tmp_path, monkeypatch):
  cfg = step_bench.BenchTrainConfig(
    model="tiny",
    optimizers=("muon",),
    seq_len=16,
    sweep_micro_batches=(1, 2, 4),
    sweep_remat=("none",),
  )
  cache = str(tmp_path / "cache.json")
  first = step_bench.memory_sweep(cfg, cache)
  peaks = first["muon"]["none"]["peak_memory_bytes"]
  assert peaks["1"] < peaks["2"] < peaks["4"]
  assert first["muon"]["none"]["largest_micro_batch_in_budget"] == 4
  assert first["muon"]["none"]["all_tested_fit"]

  def no_compile(*args, **kwargs):
    raise AssertionError("cached point compiled again")

  monkeypatch.setattr(step_bench, "analyze_step", no_compile)
  budget_gb = (peaks["2"] + peaks["4"]) / 2 / 1e9
  second = step_bench.memory_sweep(dataclasses.replace(cfg, memory_budget_gb=budget_gb), cache)
  assert second["muon"]["none"]["peak_memory_bytes"] == peaks
  assert second["muon"]["none"]["largest_micro_batch_in_budget"] == 2
  assert not second["muon"]["none"]["all_tested_fit"]


def test_speed_sweep_times_what_fits_and_reports_the_fastest():
  cfg = step_bench.BenchTrainConfig(
    model="tiny",
    optimizers=("muon",),
    steps=1,
    seq_len=16,
    global_batch=4,
    num_devices=1,
    sweep=True,
    sweep_micro_batches=(2, 3),
    sweep_remat=("none", "block"),
    sweep_attention=("xla", "cudnn"),
    sweep_loss_chunks=(0, 8),
  )
  tcfg, _, _ = tr.resolve_batching(step_bench.train_config(cfg))
  out = step_bench.speed_sweep(cfg, tcfg, peak=1e12)["muon"]
  assert len(out["points"]) == 2 * 2 * 2 * 2
  by_status = {}
  for p in out["points"]:
    by_status.setdefault(p["status"], []).append(p)
  # Micro batch 3 does not divide the batch; cuDNN needs a GPU and bf16.
  assert all(p["micro_batch"] == 3 or p["attention"] == "cudnn" for p in by_status["skipped"])
  assert {(p["remat"], p["loss_chunk"]) for p in by_status["timed"]} == {
    (r, c) for r in ("none", "block") for c in (0, 8)
  }
  for p in by_status["timed"]:
    assert (p["micro_batch"], p["attention"]) == (2, "xla")
    assert p["tokens_per_s"] == pytest.approx(4 * 16 / p["step_s_median"])
    assert 0 < p["mfu"] and p["peak_memory_bytes"] > 0
  assert out["fastest"] == max(by_status["timed"], key=lambda p: p["tokens_per_s"])
  # Nothing fits a 1-byte budget: nothing is timed, no fastest.
  none = step_bench.speed_sweep(dataclasses.replace(cfg, memory_budget_gb=1e-9), tcfg, 1e12)
  assert {p["status"] for p in none["muon"]["points"]} == {"skipped", "over_budget"}
  assert none["muon"]["fastest"] is None


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the error off a GPU")
def test_run_rejects_cudnn_off_gpu():
  with pytest.raises(ValueError, match="^attention='cudnn' needs an NVIDIA GPU"):
    step_bench.run(step_bench.BenchTrainConfig(attention="cudnn", compute_dtype="bfloat16"))


def _bench(*args):
  # One device: the bench times the step of a single process, not the emulated 8.
  return run_module("experiments.bench_train", *args, env={"XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"})


def test_bench_train_binary_writes_memory_flops_speed_and_a_trace(tmp_path):
  proc = _bench(
    "--optimizers=muon",
    "--steps=1",
    "--seq_len=32",
    "--global_batch=4",
    "--loss_chunk=48",
    "--remat=block",
    f"--profile={tmp_path / 'trace'}",
    "--sweep",
    "--sweep_remat=block",
    "--sweep_attention=xla",
    "--sweep_loss_chunks=48",
    f"--out_dir={tmp_path}",
  )
  assert proc.returncode == 0, proc.stderr
  out = json.loads((tmp_path / "bench_train.json").read_text())
  fastest = out["speed_sweep"]["muon"]["fastest"]
  assert (fastest["micro_batch"], fastest["remat"], fastest["loss_chunk"]) == (4, "block", 48)
  assert "muon  sweep: fastest of 1 timed (1 combinations): micro 4 remat=block" in proc.stdout
  assert (out["remat"], out["loss_chunk"]) == ("block", 48)
  assert out["vocab_size"] == ByteTokenizer.vocab_size
  assert out["muon"]["peak_memory_bytes"] > out["muon"]["argument_bytes"] > 0
  assert out["muon"]["tokens_per_s"] == pytest.approx(4 * 32 / out["muon"]["step_s_median"])
  assert glob.glob(str(tmp_path / "trace" / "**" / "*.xplane.pb"), recursive=True)


@pytest.mark.parametrize(
  "args, message",
  [
    (
      ("--attention=cudnn", "--compute_dtype=bfloat16"),
      "error: --attention='cudnn' needs an NVIDIA GPU",
    ),
    (("--attention=cudnn",), "error: --attention='cudnn' needs a bfloat16 compute dtype"),
    (("--loss_chunk=-1",), "error: --loss_chunk=-1 is out of range"),
    (("--remat=all",), "error: --remat='all' is not allowed"),
    (("--sweep_micro_batches=4,0",), "error: --sweep_micro_batches=0 is out of range"),
    (("--profile=/proc/no_trace_here",), "error: --profile=/proc/no_trace_here is not writable"),
    (("--sweep", "--steps=0"), "error: --sweep needs steps >= 1"),
  ],
)
def test_bench_train_bad_flags_are_one_line_errors(tmp_path, args, message):
  if jax.default_backend() == "gpu" and "cudnn" in args[0]:
    pytest.skip("cuDNN is available here")
  proc = _bench(*args, f"--out_dir={tmp_path}")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr
  assert not (tmp_path / "bench_train.json").exists()


@pytest.mark.slow
def test_chunked_loss_frees_at_least_one_full_logits_copy_at_160m():
  # LLaMA-160M, micro batch 16 x 1024: the f32 logits are 16 * 1024 * 32000 * 4 bytes.
  cfg = tr.TrainConfig(
    model="160m", optimizer="muon", seq_len=1024, global_batch=16, micro_batch=16
  )
  logits_bytes = 16 * 1024 * llama.llama_160m().vocab_size * 4
  full = step_bench.analyze_step(cfg, 16, flops=False)["peak_memory_bytes"]
  chunked = step_bench.analyze_step(dataclasses.replace(cfg, loss_chunk=1024), 16, flops=False)
  assert chunked["peak_memory_bytes"] < full - logits_bytes
