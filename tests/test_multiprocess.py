"""The trainer as a 2-process job on localhost (2 emulated CPU devices each, gloo).

Checks the multi-process launch against a single-process run on 4 of the 8
emulated devices of this process: same losses, exact resume after both
processes are killed, and a one-line error when the coordinator is absent.
"""

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from muon_jax.lm import trainer as tr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 10
FLAGS = [
  "--model=tiny",
  "--optimizer=muon",
  "--seq_len=32",
  "--global_batch=16",
  f"--steps={STEPS}",
  "--log_every=1",
  "--ckpt_every=5",
  "--eval_every=0",
]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  env = dict(
    os.environ,
    JAX_PLATFORMS="cpu",
    PYTHONPATH=REPO,
    XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
  )
  return env


def _launch(out_dir, port, *extra, num_processes=2, process_ids=None):
  procs = []
  for pid in process_ids if process_ids is not None else range(num_processes):
    cmd = [
      sys.executable,
      "-m",
      "experiments.train_llama",
      f"--out_dir={out_dir}",
      *FLAGS,
      f"--coordinator_address=127.0.0.1:{port}",
      f"--num_processes={num_processes}",
      f"--process_id={pid}",
      *extra,
    ]
    procs.append(
      subprocess.Popen(
        cmd, cwd=REPO, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
      )
    )
  return procs


def _finish(procs, timeout=240):
  outs = [p.communicate(timeout=timeout) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  return outs


def _losses(out_dir):
  return {r["step"]: r["loss"] for r in tr.read_metrics(str(out_dir))}


def test_two_processes_match_one_process_and_resume_exactly(tmp_path):
  single = dataclasses.replace(
    tr.TrainConfig(),
    model="tiny",
    optimizer="muon",
    seq_len=32,
    global_batch=16,
    steps=STEPS,
    log_every=1,
    ckpt_every=5,
    eval_every=0,
    num_devices=4,
    out_dir=str(tmp_path / "single"),
  )
  tr.run(single)
  want = _losses(single.out_dir)

  full = tmp_path / "two"
  _finish(_launch(full, _free_port()))
  got = _losses(full)
  assert sorted(got) == list(range(1, STEPS + 1))
  np.testing.assert_allclose(
    [got[s] for s in sorted(got)], [want[s] for s in sorted(want)], rtol=0, atol=1e-5
  )
  # Only process 0 writes the run's files; checkpoints are the job's.
  assert (full / "summary.json").exists() and (full / "loss.png").exists()
  assert sorted(os.listdir(full / "checkpoints")) == ["10", "5"]

  killed = tmp_path / "killed"
  procs = _launch(killed, _free_port(), "--step_sleep_s=1.0")
  deadline = time.time() + 240
  while not (killed / "checkpoints" / "5").is_dir():  # Orbax renames a finished save into place
    assert all(p.poll() is None for p in procs), "a process exited before the kill"
    assert time.time() < deadline
    time.sleep(0.1)
  for p in procs:
    p.send_signal(signal.SIGKILL)
  assert [p.wait() for p in procs] == [-signal.SIGKILL] * 2
  assert max(_losses(killed)) < STEPS

  _finish(_launch(killed, _free_port(), "--resume"))
  resumed = _losses(killed)
  assert sorted(resumed) == list(range(1, STEPS + 1))
  assert [resumed[s] for s in range(6, STEPS + 1)] == [got[s] for s in range(6, STEPS + 1)]


def test_unreachable_coordinator_is_a_one_line_error(tmp_path):
  t0 = time.time()
  (proc,) = _launch(tmp_path / "lonely", _free_port(), "--coordinator_timeout_s=3", process_ids=[1])
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 2
  lines = err.strip().splitlines()
  assert lines[-1].startswith("error: --coordinator_address=127.0.0.1:")
  assert "not reachable within 3s" in lines[-1]
  assert "Traceback" not in err
  assert time.time() - t0 < 60


def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
  out = tmp_path / "preempted"
  procs = _launch(out, _free_port(), "--step_sleep_s=1.0", "--ckpt_every=0")
  deadline = time.time() + 240
  while not (out / "metrics.jsonl").exists() or len(tr.read_metrics(str(out))) < 2:
    assert all(p.poll() is None for p in procs) and time.time() < deadline
    time.sleep(0.1)
  procs[1].send_signal(signal.SIGTERM)  # process 0 never sees a signal
  errs = [p.communicate(timeout=120)[1] for p in procs]
  assert [p.returncode for p in procs] == [tr.EXIT_PREEMPTED] * 2, errs[0][-2000:]
  steps = {int(e.split("stopped by signal after step ")[1].split(";")[0]) for e in errs}
  assert len(steps) == 1  # both processes stopped after the same step
  (stopped,) = steps
  assert 2 <= stopped < STEPS
  assert os.listdir(out / "checkpoints") == [str(stopped)]
  assert max(_losses(out)) == stopped
