"""The training loop: `run` (setup, resume, steps with eval / logging / checkpoints, finish),
process 0's metrics writer, the SIGTERM / SIGINT stop request and the probe hook.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from muon_jax.infra import results
from muon_jax.infra.progress import Progress
from muon_jax.lm import llama
from muon_jax.lm.trainer.checkpoints import (
  CheckpointError,
  check_writable,
  checkpoint_manager,
  newest_intact,
  read_checkpoint_meta,
  restore_checkpoint,
  save_checkpoint,
)
from muon_jax.lm.trainer.config import (
  EXIT_PREEMPTED,
  TrainConfig,
  resume_changes,
  stored_config,
  validate_config,
)
from muon_jax.lm.trainer.distributed import _any_process, resolve_batching
from muon_jax.lm.trainer.step import (
  AXIS,
  build_optimizer,
  data_parallel,
  init_params,
  lm_loss,
  make_eval_step,
  make_train_step,
  mfu,
  model_config,
  peak_flops,
  replicate,
  split_batch,
  unreplicate,
)


def run(cfg: TrainConfig) -> dict:
  """Runs (or resumes) training; returns a JSON-able summary (also in out_dir/summary.json).

  Call `initialize_distributed(cfg)` first in every process of a
  multi-process job. Status "preempted" means SIGTERM / SIGINT stopped the
  run after a checkpoint; resume it with resume=True. Resuming a run that already
  reached cfg.steps reports its stored summary and changes no file.

  Raises:
    ValueError: a bad config, an unusable checkpoint folder, a refused resume, or no
      intact checkpoint to resume (one line each).
    CheckpointError: a save failed (one line naming the step; the previous checkpoint is
      intact).
  """
  training = _Training(cfg)
  initial = training.init_or_resume()
  if training.start >= cfg.steps:
    return training.already_finished()
  # The host copies of the initial state live only in this call: devices hold it afterwards.
  training.place_on_devices(*initial)
  training.load_eval_batches()
  training.step_loop()
  return training.finish()


class _Training:
  """One run, phase by phase for `run`: setup, resume, the step loop, finish.

  Holds what the phases share: the launch (devices, data streams, model
  config), the replicated state, the guard counters and the logging clock.
  """

  def __init__(self, cfg: TrainConfig):
    """Setup: checks the config, fixes devices and batching, opens the training stream."""
    from muon_jax.lm import data as data_lib

    validate_config(cfg)
    cfg, self.global_devices, self.devices = resolve_batching(cfg)
    self.cfg = cfg
    self.n_dev, self.n_proc, self.pid = len(self.devices), jax.process_count(), jax.process_index()
    self.accum = cfg.global_batch // (len(self.global_devices) * cfg.micro_batch)
    os.makedirs(cfg.out_dir, exist_ok=True)

    self.root = jax.random.key(cfg.seed)
    # Training data order is defined by seed; eval and probe streams by derived seeds.
    self.probe_seed = int(jax.random.randint(jax.random.fold_in(self.root, 2), (), 0, 2**31 - 1))
    self.eval_seed = int(jax.random.randint(jax.random.fold_in(self.root, 3), (), 0, 2**31 - 1))
    # Every process reads the same global batch and keeps its slice, so the
    # data position is one number shared by all processes.
    self.stream = data_lib.build_pipeline(
      cfg.corpus,
      cfg.tokenizer,
      seq_len=cfg.seq_len,
      batch_size=cfg.global_batch,
      seed=cfg.seed,
      split="train",
      cache_dir=cfg.data_cache_dir,
    )
    self.mcfg = model_config(cfg, self.stream.vocab_size)
    if cfg.probe_steps:
      _check_probe_target(cfg, self.mcfg)

  def init_or_resume(self) -> tuple[Any, optax.GradientTransformation, Any, Any]:
    """Resume: the initial (graphdef, optimizer, params, opt_state) as host trees.

    Restored from out_dir's newest intact checkpoint when there is one (its integrity
    record verified, damaged newer ones moved aside; its config checked against this
    run's first), else freshly initialized.
    """
    cfg = self.cfg
    # An unusable checkpoint folder is reported now, not at the first save.
    check_writable(os.path.join(cfg.out_dir, "checkpoints"))
    self.mngr = checkpoint_manager(cfg.out_dir, cfg.keep_checkpoints)
    self.start, self.nonfinite_total, stored = 0, 0, None
    if self.mngr.latest_step() is None and cfg.resume:
      logging.warning("resume: no checkpoint in %s; starting from step 0", self.mngr.directory)
    if self.mngr.latest_step() is not None:
      if not cfg.resume:
        raise ValueError(
          f"out_dir={cfg.out_dir} already has checkpoints; resume or use a new out_dir"
        )
      self.restore_step = newest_intact(self.mngr, move_damaged=self.pid == 0)
      # Process 0 may have moved damaged newer steps aside: every process re-reads the folder.
      _sync_processes("muon_jax_checkpoint_chosen")
      self.mngr.reload()
      stored = read_checkpoint_meta(self.mngr, self.restore_step)
      if "config" not in stored:
        raise ValueError(
          f"out_dir={cfg.out_dir}: the latest checkpoint records no run config "
          "(written by an older trainer), so resuming cannot be checked"
        )
      for line in resume_changes(stored["config"], cfg, int(stored["step"])):
        logging.info("resume: %s", line)

    graphdef, params = init_params(self.mcfg, jax.random.fold_in(self.root, 0))
    optimizer = build_optimizer(cfg, len(self.global_devices))
    opt_state = optimizer.init(params)
    if stored is not None:
      params, opt_state, meta = restore_checkpoint(self.mngr, params, opt_state, self.restore_step)
      self.start, self.nonfinite_total = int(meta["step"]), int(meta["nonfinite_total"])
      self.stream.set_state(meta["data_state"])
      logging.info("resumed from step %d (%s)", self.start, self.mngr.directory)
    return graphdef, optimizer, params, opt_state

  def place_on_devices(self, graphdef, optimizer, params, opt_state) -> None:
    """Opens the metrics writer, logs the launch, wraps the train step for the devices and
    replicates the initial state onto them."""
    cfg = self.cfg
    title = f"LLaMA-{cfg.model}, {cfg.optimizer}, global batch {cfg.global_batch}x{cfg.seq_len}"
    self.writer = _MetricsWriter(cfg.out_dir, self.start, title, enabled=self.pid == 0)
    self.n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    self.fpt = llama.flops_per_token(self.mcfg, cfg.seq_len)
    self.peak = peak_flops(cfg, self.devices[0])
    logging.info(
      "model=%s params=%d devices=%d x %d processes, micro=%d, accum=%d, global=%d, "
      "optimizer=%s, shard_muon=%s, %s",
      cfg.model,
      self.n_params,
      self.n_dev,
      self.n_proc,
      cfg.micro_batch,
      self.accum,
      cfg.global_batch,
      cfg.optimizer,
      cfg.shard_muon,
      self.devices[0].device_kind,
    )

    self.graphdef = graphdef
    self.step_fn = data_parallel(make_train_step(graphdef, optimizer, cfg), self.global_devices)
    self.params_rep = replicate(params, self.devices)
    self.opt_rep = replicate(opt_state, self.devices)
    per_proc = cfg.global_batch // self.n_proc
    self.local_slice = slice(self.pid * per_proc, (self.pid + 1) * per_proc)

  def load_eval_batches(self) -> None:
    """The held-out eval step and this process's slices of its fixed eval batches."""
    from muon_jax.lm import data as data_lib

    cfg = self.cfg
    self.eval_fn, self.eval_data = None, []
    if cfg.eval_every:
      self.eval_fn = jax.pmap(
        make_eval_step(self.graphdef), axis_name=AXIS, devices=self.global_devices
      )
      eval_stream = data_lib.build_pipeline(
        cfg.corpus,
        cfg.tokenizer,
        seq_len=cfg.seq_len,
        batch_size=cfg.global_batch,
        seed=self.eval_seed,
        split="eval",
        cache_dir=cfg.data_cache_dir,
      )
      self.eval_data = [
        split_batch(next(eval_stream)[self.local_slice], self.n_dev, cfg.micro_batch)
        for _ in range(cfg.eval_batches)
      ]

  def step_loop(self) -> None:
    """Steps start+1 .. steps, until the last one, a non-finite stop or a stop request."""
    cfg = self.cfg
    self.progress = Progress(cfg.steps, "train", done=self.start)
    self.status, self.last, self.losses, self.consecutive = "ok", None, [], 0
    self.t_last, self.steps_since = time.perf_counter(), 0
    with _StopRequest() as stop:
      try:
        for step in range(self.start + 1, cfg.steps + 1):
          metrics, t_step = self._train_step(step)
          eval_loss = self._evaluate(step)
          self._log(step, metrics, t_step, eval_loss)
          if eval_loss is not None:
            self.writer.refresh_figure()
          if self._stops_after(step, stop):
            break
          if cfg.step_sleep_s:
            time.sleep(cfg.step_sleep_s)
        self.mngr.wait_until_finished()
      except CheckpointError as e:
        # Training on would risk more work than the last good checkpoint can restore.
        self.status = "checkpoint_failed"
        logging.error("stopping: %s", e)
      self.mngr.close()

  def _train_step(self, step: int) -> tuple[dict, float]:
    """One update and the non-finite guard's counters; returns (metrics, step seconds)."""
    t0 = time.perf_counter()
    batch = next(self.stream)[self.local_slice]
    self.params_rep, self.opt_rep, m = self.step_fn(
      self.params_rep,
      self.opt_rep,
      jnp.int32(step),
      split_batch(batch, self.n_dev, self.cfg.micro_batch),
    )
    self.steps_since += 1
    m = {k: float(v) for k, v in unreplicate(m).items()}  # blocks: the guard needs this verdict
    t_step = time.perf_counter() - t0
    if m["finite"]:
      self.consecutive = 0
    else:
      self.consecutive += 1
      self.nonfinite_total += 1
      logging.warning(
        "step %d: non-finite loss/grad (loss=%s, grad_norm=%s); update skipped "
        "(%d consecutive, %d total)",
        step,
        m["loss"],
        m["grad_norm"],
        self.consecutive,
        self.nonfinite_total,
      )
    self.losses.append(m["loss"])
    return m, t_step

  def _evaluate(self, step: int) -> float | None:
    """Held-out loss at eval steps (and the last step), else None."""
    cfg = self.cfg
    if self.eval_fn is None or not (step % cfg.eval_every == 0 or step == cfg.steps):
      return None
    return float(np.mean([unreplicate(self.eval_fn(self.params_rep, b)) for b in self.eval_data]))

  def _log(self, step: int, m: dict, t_step: float, eval_loss: float | None) -> None:
    """At log steps (and first, last, non-finite and eval steps): a metrics row and progress."""
    cfg = self.cfg
    if not (
      step % cfg.log_every == 0
      or step in (1, self.start + 1, cfg.steps)
      or not m["finite"]
      or eval_loss is not None
    ):
      return
    now = time.perf_counter()
    tps = cfg.global_batch * cfg.seq_len * self.steps_since / (now - self.t_last)
    row = {
      "step": step,
      "loss": m["loss"],
      "lr": m["lr_factor"] * (cfg.lr if cfg.optimizer == "adamw" else cfg.muon_lr),
      "lr_factor": m["lr_factor"],
      "grad_norm": m["grad_norm"],
      "tokens_per_s": tps,
      "step_s": t_step,
      "finite": bool(m["finite"]),
      "nonfinite_total": self.nonfinite_total,
      "mfu": mfu(tps, self.fpt, self.peak, len(self.global_devices)),
      "includes_compile": step == self.start + 1,
    }
    if eval_loss is not None:
      row["eval_loss"] = eval_loss
    self.writer.write(row)
    if self.pid == 0:
      eval_txt = "" if eval_loss is None else f" eval {eval_loss:.4f}"
      mfu_txt = "" if row["mfu"] is None else f" mfu {row['mfu']:.3f}"
      self.progress.advance(
        self.steps_since,
        f"loss {m['loss']:.4f}{eval_txt} lr {row['lr']:.3e} "
        f"gnorm {m['grad_norm']:.3f} step {t_step * 1e3:.0f} ms "
        f"tok/s {tps:,.0f}{mfu_txt}",
      )
    self.t_last, self.steps_since, self.last = now, 0, row

  def _stops_after(self, step: int, stop: _StopRequest) -> bool:
    """End of a step: the non-finite stop, the probe, checkpoints and preemption.

    Returns whether training ends here (status set).
    """
    cfg = self.cfg
    # A save that ended without committing stops every process now, not at the next save.
    failure = self.mngr.settle()
    if _any_process(failure is not None):
      if failure is None:  # another process saw it first
        self.mngr.wait_until_finished()
        failure = CheckpointError("a checkpoint save failed on another process")
      raise failure
    if self.consecutive >= cfg.max_nonfinite:
      self.status = "stopped_nonfinite"
      logging.error(
        "stopping: %d consecutive non-finite steps (last finite params kept; "
        "checkpoints hold finite params only). Lower the LR or check the data.",
        self.consecutive,
      )
      return True
    if step in cfg.probe_steps:
      _probe_once(cfg, self.graphdef, self.params_rep, step, self.probe_seed, self.devices)
    preempt = _any_process(stop.requested())
    if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps or preempt:
      self._checkpoint(step)
      self.writer.refresh_figure()
    if preempt:
      self.status = "preempted"
      self.mngr.wait_until_finished()
      logging.warning(
        "stopped by signal after step %d; checkpoint in %s. To continue, rerun "
        "the same command with resume enabled (exit status %d)",
        step,
        os.path.join(self.mngr.directory, str(step)),
        EXIT_PREEMPTED,
      )
      return True
    return False

  def _checkpoint(self, step: int) -> None:
    save_checkpoint(
      self.mngr, step, unreplicate(self.params_rep), unreplicate(self.opt_rep), self._meta(step)
    )

  def _meta(self, step: int) -> dict:
    """The checkpoint's JSON record: position, RNG, guard counter and run config."""
    return {
      "step": step,
      "data_state": self.stream.get_state(),
      "rng": np.asarray(jax.random.key_data(self.root)).tolist(),
      "nonfinite_total": self.nonfinite_total,
      "config": stored_config(self.cfg),
    }

  def already_finished(self) -> dict:
    """A resume of a run whose checkpoint is at cfg.steps: nothing to train, nothing
    rewritten; returns the stored summary (a "preempted" status at the last step reads "ok")."""
    cfg = self.cfg
    self.mngr.close()
    path = os.path.join(cfg.out_dir, "summary.json")
    summary = results.load_json(path) or {
      "status": "ok",
      "model": cfg.model,
      "optimizer": cfg.optimizer,
      "start_step": self.start,
      "steps_run": 0,
      "final_loss": None,
    }
    logging.warning(
      "resume: the run already reached step %d of %d (checkpoint in %s); nothing to do, "
      "%s left as it is",
      self.start,
      cfg.steps,
      self.mngr.directory,
      path,
    )
    if summary.get("status") == "preempted":  # stopped at its last step: it is complete
      summary["status"] = "ok"
      if self.pid == 0:
        results.atomic_write_json(path, summary)
    return summary

  def finish(self) -> dict:
    """Closes the outputs; returns the summary (process 0 also writes summary.json)."""
    cfg = self.cfg
    self.writer.refresh_figure()
    self.writer.close()
    summary = {
      "status": self.status,
      "model": cfg.model,
      "optimizer": cfg.optimizer,
      "params": self.n_params,
      "steps_run": len(self.losses),
      "start_step": self.start,
      "final_loss": self.losses[-1] if self.losses else None,
      "last_logged": self.last,
      "nonfinite_total": self.nonfinite_total,
      "devices": self.n_dev,
      "processes": self.n_proc,
      "global_devices": len(self.global_devices),
      "micro_batch": cfg.micro_batch,
      "accum_steps": self.accum,
      "shard_muon": cfg.shard_muon,
      "flops_per_token": self.fpt,
      "device_kind": self.devices[0].device_kind,
      "config": stored_config(cfg),
    }
    if self.pid == 0:
      results.atomic_write_json(os.path.join(cfg.out_dir, "summary.json"), summary)
    return summary


def _sync_processes(name: str) -> None:
  """A barrier over the job's processes (nothing with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def _probe_once(cfg, graphdef, params_rep, step, probe_seed, devices):
  """Runs landscape.probe on the current weights from a dedicated eval stream.

  landscape.probe spreads its batches over this process's devices only, so
  in a multi-process job every process computes the same probe from the
  same batches (no cross-process collective) and process 0 writes it.
  """
  from muon_jax.lm import data as data_lib
  from muon_jax.lm import landscape_probe as landscape

  if landscape.probe_done(cfg.out_dir, step):
    logging.info("probe at step %d already on disk, skipped", step)
    return
  model = nnx.merge(graphdef, unreplicate(params_rep))
  stream = data_lib.build_pipeline(
    cfg.corpus,
    cfg.tokenizer,
    seq_len=cfg.seq_len,
    batch_size=cfg.probe_batch or cfg.micro_batch,
    seed=probe_seed,
    split="eval",
    cache_dir=cfg.data_cache_dir,
  )
  grad_batches = [next(stream) for _ in range(cfg.probe.grad_batches)]
  eval_batches = [next(stream) for _ in range(cfg.probe.eval_batches)]
  t0 = time.perf_counter()
  result = landscape.probe(model, lm_loss, grad_batches, eval_batches, cfg.probe, devices=devices)
  if jax.process_index() == 0:
    path = landscape.save_probe(cfg.out_dir, step, result)
    logging.info("probe at step %d written to %s (%.1fs)", step, path, time.perf_counter() - t0)


class _MetricsWriter:
  """Process 0's outputs: metrics.jsonl rows, TensorBoard events, loss.png.

  A resumed run first drops rows (and TensorBoard events) after the restored
  step, so the files describe one run. Other processes write nothing.
  """

  def __init__(self, out_dir: str, start: int, title: str, enabled: bool):
    self.enabled, self.title = enabled, title
    self.path = os.path.join(out_dir, "metrics.jsonl")
    self.rows: list[dict] = []
    self._tb = None
    if not enabled:
      return
    if os.path.exists(self.path):
      self.rows = [r for r in results.read_jsonl(self.path) if r["step"] <= start]
    results.atomic_write_bytes(self.path, "".join(map(results.json_line, self.rows)).encode())
    from tensorboardX import SummaryWriter

    self._tb = SummaryWriter(
      os.path.join(out_dir, "tensorboard"), purge_step=start + 1, flush_secs=30
    )

  def write(self, row: dict) -> None:
    if not self.enabled:
      return
    self.rows.append(row)
    with open(self.path, "a") as f:
      f.write(results.json_line(row))
    for key, value in row.items():
      if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
        self._tb.add_scalar(
          f"train/{key}" if key != "eval_loss" else "eval/loss", value, row["step"]
        )

  def refresh_figure(self) -> None:
    """Redraws loss.png (train and eval loss) from the rows so far."""
    if not self.enabled or not self.rows:
      return
    from muon_jax.lm import loss_plot as train_figures

    for name, fig in train_figures.figures({"metrics": self.rows, "title": self.title}).items():
      results.save_figure(fig, os.path.join(os.path.dirname(self.path), f"{name}.png"))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


class _StopRequest:
  """SIGTERM / SIGINT handlers that only record the request.

  The training loop polls `requested` at each step boundary, so a signal
  never interrupts a step or a checkpoint write. Handlers are installed only
  from the main thread and restored on exit.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signum = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.signum is None:
      self.signum = signum
      logging.warning(
        "%s received: saving a checkpoint at the end of this step, then exiting",
        signal.Signals(signum).name,
      )

  def requested(self) -> bool:
    return self.signum is not None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)


def _check_probe_target(cfg: TrainConfig, mcfg: llama.LlamaConfig) -> None:
  """The probe path must name a 2-D parameter of this model (abstract, no compile)."""
  from muon_jax.lm import landscape_probe as landscape

  try:
    landscape.check_probe(nnx.eval_shape(lambda: llama.Llama(mcfg, rngs=nnx.Rngs(0))), cfg.probe)
  except ValueError as e:  # the probe's fields are probe_<field> for the trainer's callers
    raise ValueError(f"probe_{e}") from None


def read_metrics(out_dir: str) -> list[dict]:
  """Rows of out_dir/metrics.jsonl (a last line torn by a crash dropped with a warning)."""
  return results.read_jsonl(os.path.join(out_dir, "metrics.jsonl"))
