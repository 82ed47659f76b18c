"""Where a LLaMA training step's memory and time go: XLA's accounting and timed steps.

For one model preset and batch shape, `run` reports per optimizer
  * the compiled step's memory (`Compiled.memory_analysis()`): arguments,
    outputs, temporaries, donated (aliased) bytes, and their peak
    arguments + outputs + temporaries - aliased, for one device running one
    micro-batch of the trainer's step (`muon_jax.lm.trainer.make_train_step`);
  * the FLOPs XLA counts in the module before optimisation
    (`Lowered.cost_analysis()`) for the loss gradient of one micro-batch, per
    token, against `llama.flops_per_token` (6·N plus the attention term), and
    for one optimizer update. The compiled module's count is no use on a GPU:
    there the matmuls become cuBLAS / cuDNN custom calls that XLA does not
    count (0.002 of the analytic count on an H200); before optimisation they
    are still dot ops on every backend;
  * tokens/s and MFU of the real step (micro-batch scan, pmean, update),
    timed interleaved across optimizers (`steps` > 0), optionally under a
    `jax.profiler` trace;
for `sweep_micro_batches`, the peak memory against micro batch for each remat
policy in `sweep_remat`, with the largest micro batch within
`memory_budget_gb`; and with `sweep`, the measured step time of every micro
batch x remat x attention x loss_chunk combination that fits the budget and
the fastest of them (`speed_sweep`).

The analysis never runs the step (abstract inputs), so LLaMA-160M at micro
batch 16 x 1024 is analysed on a CPU in seconds. On the CPU, XLA expands the
`jax.checkpoint` optimisation barriers early and common-subexpression
elimination then merges the recomputation back into the forward values, so a
remat policy would not change the CPU program at all; the analysis compile
disables that pass (`ANALYSIS_COMPILER_OPTIONS`) so the CPU program keeps the
recomputation a GPU compile keeps. The CPU's buffer assignment is still not
the GPU's: read CPU numbers as an estimate of a GPU step's memory.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from muon_jax.infra import config as config_lib
from muon_jax.infra import results
from muon_jax.lm import trainer as tr
from muon_jax.lm.data import ByteTokenizer
from muon_jax.lm import llama
from muon_jax.infra.progress import Progress

field = config_lib.field

ANALYSIS_COMPILER_OPTIONS = {"xla_disable_hlo_passes": "cse_barrier_expander"}


@dataclasses.dataclass(frozen=True)
class BenchTrainConfig:
  """One benchmark: a model preset, a batch shape, step options and what to report."""

  model: str = field("tiny", "Model preset", choices=tuple(llama.PRESETS))
  optimizers: tuple[str, ...] = field(
    ("adamw", "muon"), "Optimizers to analyse and time", choices=tr.OPTIMIZERS
  )
  steps: int = field(5, "Timed steps per optimizer (median reported); 0 = analysis only", low=0)
  global_batch: int = field(
    0, "Sequences per step; 0 = 16 (tiny) or 512 (160m, the paper's)", low=0
  )
  micro_batch: int = field(
    0,
    "Sequences per device per micro-step; 0 = min(16, global / "
    "devices) for 160m, global / devices for tiny",
    low=0,
  )
  seq_len: int = field(0, "Tokens per sequence; 0 = 128 (tiny) or 1024 (160m)", low=0)
  compute_dtype: str = field(
    "auto",
    "Compute dtype; auto = bfloat16 on GPU/TPU, float32 on CPU",
    choices=("auto",) + tr.DTYPES,
  )
  attention: str = field(
    "xla",
    "Attention implementation (jax.nn.dot_product_attention)",
    choices=tuple(llama.ATTENTION_IMPLEMENTATIONS),
  )
  remat: str = field(
    "none",
    "Per-block rematerialisation policy of the timed step",
    choices=tuple(llama.REMAT_POLICIES),
  )
  loss_chunk: int = field(0, "Tokens per logits chunk in the loss; 0 = full logits", low=0)
  peak_tflops: float = field(
    0.0,
    "Per-device peak TFLOP/s for MFU; 0 = device table, or a measured f32 matmul rate on CPU",
    low=0,
  )
  num_devices: int = field(0, "Local devices to use; 0 = all", low=0)
  sweep_micro_batches: tuple[int, ...] = field(
    (), "Micro batches of the memory sweep (empty = no sweep)", low=1, nonempty=False
  )
  sweep_remat: tuple[str, ...] = field(
    tuple(llama.REMAT_POLICIES),
    "Remat policies of the memory sweep",
    choices=tuple(llama.REMAT_POLICIES),
  )
  memory_budget_gb: float = field(
    60.0,
    "Per-device memory budget (1e9 bytes) for the largest "
    "micro batch; 60 = JAX's default 75% of an 80 GB H100",
    low=0,
    low_open=True,
  )
  profile: str = field(
    "", "Folder for a jax.profiler trace of 2 steps per optimizer (empty = no trace)"
  )
  ns_shard_report: bool = field(
    True,
    "With > 1 device and steps > 0: Newton-Schulz FLOPs per "
    "device and Muon update / whole step time, replicated vs sharded",
  )
  sweep: bool = field(
    False,
    "Time every sweep_micro_batches (or micro_batch) x sweep_remat x sweep_attention x "
    "sweep_loss_chunks combination that fits memory_budget_gb for `steps` steps and "
    "report the fastest",
  )
  sweep_attention: tuple[str, ...] = field(
    tuple(llama.ATTENTION_IMPLEMENTATIONS),
    "Attention implementations of --sweep (ones this backend or dtype cannot run are skipped)",
    choices=tuple(llama.ATTENTION_IMPLEMENTATIONS),
  )
  sweep_loss_chunks: tuple[int, ...] = field(
    (0, 1024), "Loss chunks of --sweep (0 = full logits)", low=0
  )


def resolved_shape(cfg: BenchTrainConfig) -> tuple[int, int, int, str]:
  """(global_batch, micro_batch or 0, seq_len, compute dtype) with the defaults filled in."""
  big = cfg.model != "tiny"
  global_batch = cfg.global_batch or (512 if big else 16)
  n_local = cfg.num_devices or jax.local_device_count()
  micro = cfg.micro_batch or (max(1, min(16, global_batch // n_local)) if big else 0)
  dtype = cfg.compute_dtype
  if dtype == "auto":
    dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
  return global_batch, micro, cfg.seq_len or (1024 if big else 128), dtype


def train_config(cfg: BenchTrainConfig, optimizer: str = "muon") -> tr.TrainConfig:
  """The trainer config the benchmark steps use (validated, batching not yet resolved)."""
  global_batch, micro, seq_len, dtype = resolved_shape(cfg)
  return tr.TrainConfig(
    model=cfg.model,
    optimizer=optimizer,
    steps=1000,
    seq_len=seq_len,
    global_batch=global_batch,
    micro_batch=micro,
    compute_dtype=dtype,
    num_devices=cfg.num_devices,
    peak_tflops=cfg.peak_tflops,
    attention=cfg.attention,
    remat=cfg.remat,
    loss_chunk=cfg.loss_chunk,
  )


def vocab_size(model: str) -> int:
  """The vocabulary a preset trains with: train_llama's default byte tokenizer for tiny."""
  return ByteTokenizer.vocab_size if model == "tiny" else llama.PRESETS[model]().vocab_size


def memory_stats(compiled) -> dict:
  """Byte counts of `compiled.memory_analysis()` and their peak (args + outputs + temps - aliased)."""
  m = compiled.memory_analysis()
  out = {
    "argument_bytes": int(m.argument_size_in_bytes),
    "output_bytes": int(m.output_size_in_bytes),
    "temp_bytes": int(m.temp_size_in_bytes),
    "alias_bytes": int(m.alias_size_in_bytes),
    "generated_code_bytes": int(m.generated_code_size_in_bytes),
  }
  out["peak_memory_bytes"] = (
    out["argument_bytes"] + out["output_bytes"] + out["temp_bytes"] - out["alias_bytes"]
  )
  return out


def validate(cfg: BenchTrainConfig) -> None:
  """Field ranges and the combinations `run` needs; ValueError starts with the field."""
  config_lib.check(cfg)
  if cfg.sweep and not cfg.steps:
    raise ValueError("sweep needs steps >= 1 (the timed steps of each combination)")


def xla_flops(stage) -> float:
  """FLOPs XLA counts in a `jax.stages.Lowered` (before optimisation) or `Compiled`.

  A while loop's body is counted once.
  """
  cost = stage.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost["flops"])


def compile_for_analysis(lowered):
  """Compiles `lowered`; on the CPU with the remat-preserving options (see module doc)."""
  options = ANALYSIS_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
  return lowered.compile(compiler_options=options)


def _abstract(tree, lead=()):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(lead + tuple(x.shape), x.dtype), tree)


def analyze_step(tcfg: tr.TrainConfig, micro_batch: int, *, flops: bool = True) -> dict:
  """Memory (and FLOPs) of one device's step on one micro-batch, from abstract inputs.

  FLOPs are counted in the modules before optimisation (see the module
  docstring). XLA's cost analysis counts a loop body once, so the chunked loss
  (a scan over chunks) would show the logits of one chunk only: the gradient
  FLOPs are counted on the full-logits loss of the same model and remat
  policy, with XLA attention (cuDNN's is a custom call even before
  optimisation; the arithmetic is the same). The chunked loss adds one
  recomputation of the logits (2·hidden·vocab per token) to that.

  Args:
    tcfg: trainer config (model, optimizer, dtypes, attention, remat, loss_chunk, seq_len).
    micro_batch: sequences in the analysed micro-batch.
    flops: also lower the loss gradient and the optimizer update alone for
      `cost_analysis`.

  Returns:
    `memory_stats` of the step and `compile_s` (with `flops`, the lowering of
    the two counted modules is included); with `flops` also
    `xla_flops_per_token` (loss gradient), `analytic_flops_per_token`, their
    ratio `xla_over_analytic` and `xla_optimizer_flops` (one update).
  """
  mcfg = tr.model_config(tcfg, vocab_size(tcfg.model))
  graphdef, state = nnx.split(llama.abstract_model(mcfg))
  params = nnx.to_pure_dict(state)
  # One device: Newton-Schulz is never sharded here.
  tcfg = dataclasses.replace(tcfg, shard_muon=False)
  optimizer = tr.build_optimizer(tcfg)
  opt_state = jax.eval_shape(optimizer.init, params)
  device = jax.local_devices()[0]
  step_fn = tr.data_parallel(tr.make_train_step(graphdef, optimizer, tcfg), [device])
  micro_BxL1 = jax.ShapeDtypeStruct((micro_batch, tcfg.seq_len + 1), jnp.int32)
  batch = jax.ShapeDtypeStruct((1, 1) + micro_BxL1.shape, jnp.int32)
  start = time.perf_counter()
  compiled = compile_for_analysis(
    step_fn.lower(_abstract(params, (1,)), _abstract(opt_state, (1,)), jnp.int32(1), batch)
  )
  out = memory_stats(compiled)
  if flops:
    xla_attention, _ = nnx.split(llama.abstract_model(mcfg.replace(attention="xla")))

    def loss_of(p, b):
      return tr.lm_loss(nnx.merge(xla_attention, p), b)

    grad = jax.jit(jax.value_and_grad(loss_of)).lower(params, micro_BxL1)
    update = jax.jit(optimizer.update).lower(params, opt_state, params)
    per_token = xla_flops(grad) / (micro_batch * tcfg.seq_len)
    analytic = llama.flops_per_token(mcfg, tcfg.seq_len)
    out |= {
      "xla_flops_per_token": per_token,
      "analytic_flops_per_token": analytic,
      "xla_over_analytic": per_token / analytic,
      "xla_optimizer_flops": xla_flops(update),
    }
  out["compile_s"] = time.perf_counter() - start
  return out


def _sweep_key(tcfg: tr.TrainConfig, micro: int) -> str:
  return (
    f"{tcfg.model}|{tcfg.optimizer}|{tcfg.compute_dtype}|{tcfg.attention}|{tcfg.remat}|"
    f"chunk{tcfg.loss_chunk}|{micro}x{tcfg.seq_len}"
  )


def memory_sweep(cfg: BenchTrainConfig, cache_path: str | None = None) -> dict:
  """Peak memory against micro batch per remat policy, and the largest within the budget.

  Every analysed point is written to `cache_path` (if given) as soon as it is
  known, and points already there are reused, so an interrupted sweep resumes.

  Returns:
    {optimizer: {remat: {"peak_memory_bytes": {micro: bytes}, "largest_micro_batch_in_budget":
    int or None, "all_tested_fit": bool}}} plus "budget_bytes".
  """
  cache = results.load_json(cache_path, {}) if cache_path else {}
  budget = cfg.memory_budget_gb * 1e9
  micros = sorted(cfg.sweep_micro_batches)
  points = [
    (opt, remat, dataclasses.replace(train_config(cfg, opt), remat=remat))
    for opt in cfg.optimizers
    for remat in cfg.sweep_remat
  ]
  keys = [_sweep_key(tcfg, micro) for _, _, tcfg in points for micro in micros]
  progress = Progress(len(keys), "memory sweep", done=sum(key in cache for key in keys))
  out = {"budget_bytes": budget}
  for opt, remat, tcfg in points:
    peaks = {}
    for micro in micros:
      key = _sweep_key(tcfg, micro)
      if key not in cache:
        cache[key] = analyze_step(tcfg, micro, flops=False)["peak_memory_bytes"]
        if cache_path:
          results.atomic_write_json(cache_path, cache)
        progress.advance(1, f"{opt} remat={remat} micro={micro}: {cache[key] / 1e9:.2f} GB")
      peaks[micro] = cache[key]
    fits = [m for m in micros if peaks[m] <= budget]
    out.setdefault(opt, {})[remat] = {
      "peak_memory_bytes": {str(m): peaks[m] for m in micros},
      "largest_micro_batch_in_budget": max(fits) if fits else None,
      "all_tested_fit": len(fits) == len(micros),
    }
  return out


def _peak_flops(tcfg: tr.TrainConfig, device) -> tuple[float, str]:
  peak = tr.peak_flops(tcfg, device)
  if peak is not None:
    return peak, "flag" if tcfg.peak_tflops else "device table (dense bf16)"
  from muon_jax.infra import benchmarking

  return benchmarking.matmul_peak_gflops(n=1024) * 1e9, "measured f32 1024^3 matmul on this CPU"


class _Runner:
  """One optimizer's replicated state on `devices`; each call runs one step in place."""

  def __init__(self, tcfg: tr.TrainConfig, graphdef, params, batch, devices, **overrides):
    c = dataclasses.replace(tcfg, **overrides)
    opt = tr.build_optimizer(c, len(devices))
    self.step_fn = tr.data_parallel(tr.make_train_step(graphdef, opt, c), devices)
    self.params = tr.replicate(params, devices)
    self.opt_state = tr.replicate(opt.init(params), devices)
    self.batch = batch
    self.step = 0

  def __call__(self):
    self.step += 1
    self.params, self.opt_state, m = self.step_fn(
      self.params, self.opt_state, np.int32(self.step), self.batch
    )
    return m["loss"]


def _model_and_batch(tcfg: tr.TrainConfig, n_devices: int):
  """(graphdef, params, batch split for the step) of the timed steps: fixed random tokens."""
  mcfg = tr.model_config(tcfg, vocab_size(tcfg.model))
  key = jax.random.key(0)
  graphdef, params = tr.init_params(mcfg, jax.random.fold_in(key, 0))
  tokens = np.asarray(
    jax.random.randint(
      jax.random.fold_in(key, 1), (tcfg.global_batch, tcfg.seq_len + 1), 0, mcfg.vocab_size
    ),
    np.int32,
  )
  return graphdef, params, tr.split_batch(tokens, n_devices, tcfg.micro_batch)


def _time_steps(cfg: BenchTrainConfig, tcfg: tr.TrainConfig, devices) -> tuple[dict, dict | None]:
  """Median step times per optimizer, interleaved; optionally traced; NS shard report."""
  from muon_jax.infra import benchmarking

  graphdef, params, batch = _model_and_batch(tcfg, len(devices))

  def make_runner(opt_name, **overrides):
    return _Runner(tcfg, graphdef, params, batch, devices, optimizer=opt_name, **overrides)

  runners = {name: make_runner(name) for name in cfg.optimizers}
  times = benchmarking.median_times(list(runners.values()), cfg.steps)
  if cfg.profile:
    with jax.profiler.trace(cfg.profile, create_perfetto_trace=True):
      for name, runner in runners.items():
        for _ in range(2):
          with jax.profiler.TraceAnnotation(f"{name}_step"):
            jax.block_until_ready(runner())
  shard = None
  if cfg.ns_shard_report and len(devices) > 1 and "muon" in cfg.optimizers:
    shard = ns_shard_report(tcfg, params, devices, make_runner, cfg.steps)
  return dict(zip(runners, times, strict=True)), shard


def ns_shard_report(tcfg: tr.TrainConfig, params, devices, make_runner, repeats: int) -> dict:
  """Replicated vs sharded Newton–Schulz on the same Muon group and devices.

  NS FLOPs per device come from the static plan (`sharded_muon.balance`);
  times are medians of interleaved runs in this process: the Muon group's
  optimizer update alone (momentum + NS + all-gather) and the whole trainer
  step (`make_runner("muon", shard_muon=...)`).
  """
  from muon_jax.infra import benchmarking
  from muon_jax import sharded_muon
  from muon_jax.transform import muon_labels

  n_dev = len(devices)
  muon_params = jax.tree.map(
    lambda p, label: p if label == "muon" else None, params, muon_labels(params)
  )
  shapes = [tuple(x.shape) for x in jax.tree.leaves(muon_params)]
  plan = sharded_muon.balance(shapes, n_dev, tcfg.ns_steps)
  per_device = sharded_muon.plan_flops(plan, shapes, tcfg.ns_steps)
  replicated = sum(per_device)

  def update_runner(shard):
    opt = tr.build_optimizer(dataclasses.replace(tcfg, optimizer="muon", shard_muon=shard), n_dev)
    key = jax.random.key(1)
    grads = jax.tree.map(lambda p: np.asarray(jax.random.normal(key, p.shape), p.dtype), params)
    g_rep, s_rep = tr.replicate(grads, devices), tr.replicate(opt.init(params), devices)
    p_rep = tr.replicate(params, devices)
    f = jax.pmap(lambda g, s, p: opt.update(g, s, p)[0], axis_name=tr.AXIS, devices=devices)
    return lambda: f(g_rep, s_rep, p_rep)

  upd = benchmarking.median_times([update_runner(False), update_runner(True)], repeats)
  step = benchmarking.median_times(
    [make_runner("muon", shard_muon=False), make_runner("muon", shard_muon=True)], repeats
  )
  upd_med = [float(np.median(t)) for t in upd]
  step_med = [float(np.median(t)) for t in step]
  return {
    "devices": n_dev,
    "muon_matrices": sum(len(p) for p in plan),
    "ns_gflops_per_device_replicated": replicated / 1e9,
    "ns_gflops_per_device_sharded": max(per_device) / 1e9,
    "ns_flops_ratio": max(per_device) / replicated,
    "muon_update_s_replicated": upd_med[0],
    "muon_update_s_sharded": upd_med[1],
    "muon_update_time_ratio": upd_med[1] / upd_med[0],
    "step_s_replicated": step_med[0],
    "step_s_sharded": step_med[1],
    "step_time_ratio": step_med[1] / step_med[0],
  }


def _sweep_point(tcfg: tr.TrainConfig, budget: float, repeats: int, peak: float) -> dict:
  """Checks, analyses and (if within `budget` bytes) times one sweep combination."""
  from muon_jax.infra import benchmarking

  point = {
    "micro_batch": tcfg.micro_batch,
    "remat": tcfg.remat,
    "attention": tcfg.attention,
    "loss_chunk": tcfg.loss_chunk,
  }
  try:
    tr.validate_config(tcfg)
    tcfg, devices, _ = tr.resolve_batching(tcfg)
  except ValueError as e:
    return point | {"status": "skipped", "reason": str(e)}
  memory = analyze_step(tcfg, tcfg.micro_batch, flops=False)
  point["peak_memory_bytes"] = memory["peak_memory_bytes"]
  if point["peak_memory_bytes"] > budget:
    return point | {"status": "over_budget"}
  graphdef, params, batch = _model_and_batch(tcfg, len(devices))
  try:
    runner = _Runner(tcfg, graphdef, params, batch, devices)
    (times,) = benchmarking.median_times([runner], repeats)
  except jax.errors.JaxRuntimeError as e:
    # Out of device memory despite the analysis: the combination does not fit.
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    return point | {"status": "out_of_memory", "reason": str(e).splitlines()[0]}
  med = float(np.median(times))
  tps = tcfg.global_batch * tcfg.seq_len / med
  flops_per_token = llama.flops_per_token(
    tr.model_config(tcfg, vocab_size(tcfg.model)), tcfg.seq_len
  )
  return point | {
    "status": "timed",
    "step_s_median": med,
    "step_s_all": times,
    "tokens_per_s": tps,
    "mfu": tr.mfu(tps, flops_per_token, peak, len(devices)),
  }


def speed_sweep(cfg: BenchTrainConfig, tcfg: tr.TrainConfig, peak: float) -> dict:
  """Measured step time of every micro batch x remat x attention x loss_chunk, per optimizer.

  Each combination is checked as the trainer would (`validate_config`,
  `resolve_batching`: global batch divisibility, attention backend and
  dtype), its peak memory analysed (`analyze_step`), and, when within
  `memory_budget_gb`, `cfg.steps` steps are timed (median after a compile
  step), one combination at a time so only one set of buffers lives on the
  device.

  Args:
    cfg: the benchmark config (sweep_* lists, budget, steps, optimizers).
    tcfg: the resolved trainer config the combinations vary.
    peak: per-device peak FLOP/s for MFU.

  Returns:
    {"budget_bytes": ..., optimizer: {"points": [one dict per combination with
    its status: "timed", "over_budget", "out_of_memory" or "skipped" (with the
    reason)], "fastest": the timed point with the highest tokens/s, or None}}.
  """
  budget = cfg.memory_budget_gb * 1e9
  micros = sorted(cfg.sweep_micro_batches) or [tcfg.micro_batch]
  grid = [
    (micro, remat, attention, chunk)
    for micro in micros
    for remat in cfg.sweep_remat
    for attention in cfg.sweep_attention
    for chunk in cfg.sweep_loss_chunks
  ]
  progress = Progress(len(grid) * len(cfg.optimizers), "speed sweep")
  out = {"budget_bytes": budget}
  for opt in cfg.optimizers:
    points = []
    for micro, remat, attention, chunk in grid:
      point = _sweep_point(
        dataclasses.replace(
          tcfg,
          optimizer=opt,
          micro_batch=micro,
          remat=remat,
          attention=attention,
          loss_chunk=chunk,
        ),
        budget,
        cfg.steps,
        peak,
      )
      points.append(point)
      speed = f"{point['tokens_per_s']:,.0f} tok/s" if "tokens_per_s" in point else point["status"]
      progress.advance(1, f"{opt} micro={micro} remat={remat} {attention} chunk={chunk}: {speed}")
    timed = [p for p in points if p["status"] == "timed"]
    out[opt] = {
      "points": points,
      "fastest": max(timed, key=lambda p: p["tokens_per_s"]) if timed else None,
    }
  return out


def run(cfg: BenchTrainConfig, out_dir: str | None = None) -> dict:
  """Analyses (and with steps > 0 times) the configured step; returns a JSON-able dict.

  Args:
    cfg: the benchmark config (checked here).
    out_dir: where the memory sweep keeps its resumable cache (None: no cache).

  Returns:
    Shape and options, `llama_160m_reference`, per optimizer the step
    analysis (`peak_memory_bytes`, FLOPs) and, when timed, step times,
    tokens/s and MFU; `muon_over_adamw_step_time` when both are timed;
    `ns_shard` (see `ns_shard_report`) when timed on several devices;
    `memory_sweep` when `sweep_micro_batches` is set; `speed_sweep` (see
    `speed_sweep`) with `sweep`.
  """
  validate(cfg)
  llama.check_attention_backend(cfg.attention)
  tcfg = train_config(cfg)
  tr.validate_config(tcfg)
  tcfg, devices, _ = tr.resolve_batching(tcfg)
  n_dev = len(devices)
  mcfg = tr.model_config(tcfg, vocab_size(cfg.model))
  m160 = llama.llama_160m()
  out = {
    "model": cfg.model,
    "device_kind": devices[0].device_kind,
    "backend": jax.default_backend(),
    "devices": n_dev,
    "compute_dtype": tcfg.compute_dtype,
    "attention": cfg.attention,
    "remat": cfg.remat,
    "loss_chunk": cfg.loss_chunk,
    "global_batch": tcfg.global_batch,
    "micro_batch": tcfg.micro_batch,
    "seq_len": tcfg.seq_len,
    "vocab_size": mcfg.vocab_size,
    "accum_steps": tcfg.global_batch // (n_dev * tcfg.micro_batch),
    "params": llama.param_count(llama.abstract_model(mcfg)),
    "flops_per_token": llama.flops_per_token(mcfg, tcfg.seq_len),
    "analysis_compiler_options": (
      ANALYSIS_COMPILER_OPTIONS if jax.default_backend() == "cpu" else {}
    ),
    "timed_steps": cfg.steps,
    "llama_160m_reference": {
      "params": llama.param_count(llama.abstract_model(m160)),
      "matmul_params": llama.matmul_param_count(m160),
      "flops_per_token_seq1024": llama.flops_per_token(m160, 1024),
    },
  }
  for opt in cfg.optimizers:
    out[opt] = analyze_step(dataclasses.replace(tcfg, optimizer=opt), tcfg.micro_batch)
  if cfg.steps:
    peak, out["peak_source"] = _peak_flops(tcfg, devices[0])
    out["peak_tflops_per_device"] = peak / 1e12
    tokens_per_step = tcfg.global_batch * tcfg.seq_len
    times, shard = _time_steps(cfg, tcfg, devices)
    if shard is not None:
      out["ns_shard"] = shard
    for name, t in times.items():
      med = float(np.median(t))
      tps = tokens_per_step / med
      out[name] |= {
        "step_s_median": med,
        "step_s_all": t,
        "tokens_per_s": tps,
        "mfu": tr.mfu(tps, out["flops_per_token"], peak, n_dev),
      }
    if {"adamw", "muon"} <= set(cfg.optimizers):
      out["muon_over_adamw_step_time"] = (
        out["muon"]["step_s_median"] / out["adamw"]["step_s_median"]
      )
  if cfg.profile and cfg.steps:
    out["profile_trace_dir"] = os.path.abspath(cfg.profile)
  if cfg.sweep_micro_batches:
    cache = os.path.join(out_dir, "memory_sweep_cache.json") if out_dir else None
    out["memory_sweep"] = memory_sweep(cfg, cache)
  if cfg.sweep:
    # validate() made sure steps > 0, so the peak above is known.
    out["speed_sweep"] = speed_sweep(cfg, tcfg, peak)
  return out
