"""Trainer: schedule, loss decrease, pmap == single device, signal + resume,
resume policy, launch checks, NaN guard, observability outputs."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from muon_jax.lm import trainer as tr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = tr.TrainConfig(
  model="tiny", seq_len=32, global_batch=16, log_every=1, ckpt_every=0, eval_every=0
)


def _losses(out_dir):
  return np.array([r["loss"] for r in tr.read_metrics(out_dir)])


def test_lr_factor_schedule():
  steps = [1, 90, 91, 95, 100]
  got = np.array([float(tr.lr_factor(s, 100, 0.9, 0.01)) for s in steps])
  # constant through step 90, cosine from 90 to 100: t = (s - 90) / 10.
  want = [1.0, 1.0, 0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * 0.1)), 0.01 + 0.99 * 0.5, 0.01]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bad_config_raises_before_compiling():
  with pytest.raises(ValueError, match="^optimizer='sgd' is not allowed"):
    tr.validate_config(dataclasses.replace(BASE, optimizer="sgd"))
  with pytest.raises(ValueError, match="^seq_len=100000 exceeds"):
    tr.validate_config(dataclasses.replace(BASE, seq_len=100_000))
  with pytest.raises(ValueError, match="^process_id=2 must be < num_processes"):
    tr.validate_config(
      dataclasses.replace(BASE, num_processes=2, process_id=2, coordinator_address="127.0.0.1:1")
    )
  with pytest.raises(ValueError, match="^coordinator_address is required"):
    tr.validate_config(dataclasses.replace(BASE, num_processes=2))
  with pytest.raises(ValueError, match="^global_batch=12"):
    tr.resolve_batching(dataclasses.replace(BASE, global_batch=12, micro_batch=1))  # 8 devices
  with pytest.raises(ValueError, match="^shard_muon needs more than one"):
    tr.resolve_batching(dataclasses.replace(BASE, num_devices=1, shard_muon=True))
  with pytest.raises(ValueError, match="^num_processes=2 but the runtime has 1"):
    tr.resolve_batching(
      dataclasses.replace(BASE, num_processes=2, coordinator_address="127.0.0.1:1")
    )
  assert tr.resolve_batching(BASE)[0].shard_muon is True  # default on with 8 devices
  assert tr.resolve_batching(dataclasses.replace(BASE, num_devices=1))[0].shard_muon is False


def _stored(cfg):
  return json.loads(json.dumps(tr.stored_config(cfg)))


def test_resume_policy():
  old = dataclasses.replace(BASE, steps=300)
  stored = _stored(old)
  # Model / optimizer / data order: refused, naming every changed setting.
  with pytest.raises(ValueError, match=r"^model: .*model=160m \(checkpoint: tiny\)"):
    tr.resume_changes(stored, dataclasses.replace(old, model="160m"), 10)
  with pytest.raises(ValueError, match=r"^optimizer: .*seed=3 \(checkpoint: 0\)"):
    tr.resume_changes(stored, dataclasses.replace(old, optimizer="adamw", seed=3), 10)
  # LR schedule: refused unless allowed.
  with pytest.raises(ValueError, match=r"^muon_lr: resume would change the LR schedule"):
    tr.resume_changes(stored, dataclasses.replace(old, muon_lr=0.05), 10)
  assert tr.resume_changes(
    stored, dataclasses.replace(old, muon_lr=0.05, allow_schedule_change=True), 10
  ) == ["muon_lr: 0.001 -> 0.05"]
  # Extending steps before the decay starts keeps the schedule: listed only.
  longer = dataclasses.replace(old, steps=320, log_every=5, ckpt_every=20)
  assert tr.resume_changes(stored, longer, 150) == [
    "steps: 300 -> 320",
    "ckpt_every: 0 -> 20",
    "log_every: 1 -> 5",
  ]
  # ... inside the decay (step 280 > 0.9 * 300) it would move the LR: refused.
  with pytest.raises(ValueError, match=r"^steps: resume would change the LR schedule at step 280"):
    tr.resume_changes(stored, longer, 280)
  assert tr.resume_changes(stored, old, 10) == []


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_loss_decreases(tmp_path, optimizer):
  cfg = dataclasses.replace(BASE, optimizer=optimizer, steps=30, out_dir=str(tmp_path))
  s = tr.run(cfg)
  losses = _losses(tmp_path)
  assert s["status"] == "ok" and len(losses) == 30 and s["devices"] == 8
  assert losses[0] > np.log(200)  # near-uniform start over the 257-byte vocab
  assert losses[-5:].mean() < losses[0] - 1.0


def test_pmap_matches_single_device(tmp_path):
  """8 devices x micro 2 == 1 device x 4 micro-steps x 4: same losses and weights."""
  runs = {}
  for name, kw in {
    "pmap": {"num_devices": 8, "micro_batch": 2},
    "single": {"num_devices": 1, "micro_batch": 4},
  }.items():
    cfg = dataclasses.replace(BASE, optimizer="muon", steps=3, out_dir=str(tmp_path / name), **kw)
    s = tr.run(cfg)
    mngr = tr.checkpoint_manager(cfg.out_dir, 1)
    _graphdef, params = tr.init_params(tr.model_config(cfg, 257), jax.random.key(0))
    opt_state = tr.build_optimizer(cfg).init(params)
    runs[name] = (s, _losses(cfg.out_dir), tr.restore_checkpoint(mngr, params, opt_state)[0])
  assert runs["pmap"][0]["accum_steps"] == 1 and runs["single"][0]["accum_steps"] == 4
  np.testing.assert_allclose(runs["pmap"][1], runs["single"][1], rtol=0, atol=1e-5)
  for a, b in zip(jax.tree.leaves(runs["pmap"][2]), jax.tree.leaves(runs["single"][2])):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def _binary(out_dir, *extra):
  return [
    sys.executable,
    "-m",
    "experiments.train_llama",
    f"--out_dir={out_dir}",
    "--model=tiny",
    "--optimizer=muon",
    "--seq_len=32",
    "--global_batch=16",
    "--steps=20",
    "--log_every=1",
    "--ckpt_every=5",
    *extra,
  ]


@pytest.mark.parametrize(
  "flags, message",
  [
    (
      ["--num_processes=2", "--process_id=2", "--coordinator_address=127.0.0.1:1"],
      "error: --process_id=2 must be < num_processes (2)",
    ),
    (
      ["--num_devices=1", "--shard_muon"],
      "error: --shard_muon needs more than one data-parallel device; this run has 1",
    ),
    (
      ["--global_batch=12", "--micro_batch=1"],
      "error: --global_batch=12 must be a positive multiple of devices (8) x micro_batch (1)",
    ),
    (
      ["--probe_steps=2", "--probe_path=layers/9/mlp/down_proj"],
      "error: --probe_path='layers/9/mlp/down_proj' matches no 2-D parameters",
    ),
  ],
)
def test_binary_bad_launch_is_one_line_before_compiling(tmp_path, flags, message):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  proc = subprocess.run(
    _binary(tmp_path / "out", *flags),
    cwd=REPO,
    capture_output=True,
    text=True,
    env=env,
    check=False,
  )
  assert proc.returncode == 2
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(message), last
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "out" / "metrics.jsonl").exists()  # failed before training


def _tensorboard_scalars(folder) -> dict:
  """{tag: {step: value}} from every TFRecord event file in `folder` (independent reader)."""
  import struct

  from tensorboardX.proto import event_pb2

  out = {}
  for name in sorted(os.listdir(folder)):
    data = (folder / name).read_bytes()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos : pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
      pos += 12 + length + 4  # length, its CRC, payload, payload CRC
      for value in event.summary.value:
        out.setdefault(value.tag, {})[event.step] = value.simple_value
  return out


@pytest.fixture(scope="module")
def uninterrupted_12(tmp_path_factory):
  out = tmp_path_factory.mktemp("ref12")
  tr.run(dataclasses.replace(BASE, optimizer="muon", steps=12, out_dir=str(out)))
  return _losses(out)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_checkpoints_exits_75_and_resumes_to_same_losses(tmp_path, signum, uninterrupted_12):
  out = tmp_path / "run"
  cmd = _binary(out, "--steps=12", "--ckpt_every=0", "--eval_every=4")
  proc = subprocess.Popen(
    [*cmd, "--step_sleep_s=0.5"],
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.time() + 240
  while not (out / "metrics.jsonl").exists() or len(tr.read_metrics(str(out))) < 3:
    assert proc.poll() is None and time.time() < deadline, "training ended before the signal"
    time.sleep(0.1)
  proc.send_signal(signum)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == tr.EXIT_PREEMPTED, err[-2000:]
  assert "Traceback" not in err and "KeyboardInterrupt" not in err
  stopped = tr.read_metrics(str(out))[-1]["step"]
  assert 3 <= stopped < 12
  assert f"stopped by signal after step {stopped}; checkpoint in " in err
  assert sorted(os.listdir(out / "checkpoints")) == [str(stopped)]
  assert json.loads((out / "summary.json").read_text())["status"] == "preempted"

  # A resume that changes the optimizer is refused in one line, before compiling.
  bad = subprocess.run(
    [*cmd, "--resume", "--optimizer=adamw"], cwd=REPO, capture_output=True, text=True, check=False
  )
  assert bad.returncode == 2
  assert (
    bad.stderr.strip()
    .splitlines()[-1]
    .startswith(
      "error: --optimizer: resume cannot change the model, optimizer or data order: "
      "optimizer=adamw (checkpoint: muon)"
    )
  )

  done = subprocess.run([*cmd, "--resume"], cwd=REPO, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  rows = tr.read_metrics(str(out))
  assert [r["step"] for r in rows] == list(range(1, 13))
  np.testing.assert_array_equal([r["loss"] for r in rows], uninterrupted_12)
  # Held-out eval at steps 4, 8, 12; TensorBoard events and the figure exist.
  assert [r["step"] for r in rows if "eval_loss" in r] == [4, 8, 12]
  assert (out / "loss.png").stat().st_size > 0
  scalars = _tensorboard_scalars(out / "tensorboard")
  np.testing.assert_allclose(
    [scalars["train/loss"][r["step"]] for r in rows], [r["loss"] for r in rows], rtol=1e-6
  )
  assert sorted(scalars["eval/loss"]) == [4, 8, 12]


def test_nonfinite_guard_skips_and_stops(tmp_path):
  # lr = 1e30: the first update lands (finite, huge weights), then every loss
  # overflows; those updates are skipped and training stops after 2.
  cfg = dataclasses.replace(
    BASE,
    optimizer="adamw",
    lr=1e30,
    steps=10,
    ckpt_every=1,
    max_nonfinite=2,
    num_devices=2,
    out_dir=str(tmp_path),
  )
  s = tr.run(cfg)
  rows = tr.read_metrics(str(tmp_path))
  assert s["status"] == "stopped_nonfinite" and s["nonfinite_total"] == 2
  assert [r["finite"] for r in rows] == [True, False, False]
  mngr = tr.checkpoint_manager(cfg.out_dir, 10)
  assert mngr.latest_step() == 2  # step 2 was skipped: it holds step 1's weights
  _, params = tr.init_params(tr.model_config(cfg, 257), jax.random.key(0))
  opt_state = tr.build_optimizer(cfg).init(params)
  p1, _, meta1 = tr.restore_checkpoint(mngr, params, opt_state, step=1)
  p2, _, meta2 = tr.restore_checkpoint(mngr, params, opt_state, step=2)
  assert (meta1["step"], meta2["step"]) == (1, 2)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
  # A non-finite tree is refused outright.
  bad = jax.tree.map(lambda x: np.full_like(x, np.nan), params)
  assert not tr.save_checkpoint(mngr, 99, bad, opt_state, {"step": 99})
  mngr.wait_until_finished()
  assert 99 not in mngr.all_steps()
