"""Nothing lost, nothing silently wrong: stored saddle cells checked on resume, one run per
output folder, no world-writable file, strict JSON, crash-tolerant JSONL, provenance of the
package's own repository, and input errors that name their file."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from binaries import ROOT, error_lines, run_module

from muon_jax.infra import lock, results
from muon_jax.lm import data
from muon_jax.paper import saddle

# The reproduction: Muon, budget 50 steps, n = 16 among the dims.
SADDLE = [
  "--dims=8,16",
  "--curvatures=0.5",
  "--kappas=1",
  "--seeds=2",
  "--paper_lr_seeds=2",
  "--steps=50",
  "--optimizers=muon",
  "--muon_lrs=0.02,0.2",
  "--radius=0.3",
  "--n_boot=20",
]
TRAIN = ["--seq_len=16", "--global_batch=8", "--num_devices=1", "--eval_every=0"]


def _saddle(out_dir, *extra, umask=None):
  if umask is None:
    return run_module("experiments.saddle_escape", *SADDLE, *extra, f"--out_dir={out_dir}")
  return subprocess.run(
    [sys.executable, "-m", "experiments.saddle_escape", *SADDLE, *extra, f"--out_dir={out_dir}"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    umask=umask,
    check=False,
  )


@pytest.fixture(scope="module")
def saddle_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("saddle")
  proc = _saddle(out)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not (out / lock.LOCK_NAME).exists()  # released at exit
  return out


def _cfg():
  return saddle.SaddleConfig(
    dims=(8, 16),
    curvatures=(0.5,),
    kappas=(1.0,),
    seeds=2,
    paper_lr_seeds=2,
    steps=50,
    optimizers=("muon",),
    muon_lrs=(0.02, 0.2),
    radius=0.3,
    n_boot=20,
  )


# ---------------------------------------------------------------------------
# Stored saddle cells


def test_edited_cells_are_refused_before_any_compute(saddle_run, tmp_path):
  shutil.copy(saddle_run / "saddle_escape.json", tmp_path)
  path = tmp_path / "saddle_escape.json"
  doc = json.loads(path.read_text())
  for c in doc["cells"]:
    if c["optimizer"] == "muon" and c["n"] == 16:
      c["tau_structural"], c["hit_structural"] = 10**6, True
  path.write_text(json.dumps(doc))
  before = path.read_bytes()
  proc = _saddle(tmp_path, "--resume")
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert line.startswith(f"error: --resume: checkpoint={path}: cell ")
  assert "n=16" in line and "hit_structural=true with tau_structural=1000000 outside" in line
  assert "saddle cells:" not in proc.stderr  # nothing was computed
  assert path.read_bytes() == before


def test_a_cell_off_the_grid_is_refused_in_one_line_not_a_traceback(saddle_run, tmp_path):
  shutil.copy(saddle_run / "saddle_escape.json", tmp_path)
  path = tmp_path / "saddle_escape.json"
  doc = json.loads(path.read_text())
  doc["cells"] = [c for c in doc["cells"] if c["n"] == 8]  # a partial run ...
  doc["cells"][0]["lr"] = 0.03  # ... with one cell not on the grid
  path.write_text(json.dumps(doc))
  proc = _saddle(tmp_path, "--resume")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  (line,) = error_lines(proc)
  assert "cell 0 (" in line and "lr=0.03" in line and "is not on this config's grid" in line


def _doc(saddle_run):
  return json.loads((saddle_run / "saddle_escape.json").read_text())


@pytest.mark.parametrize(
  "edit, problem",
  [
    (lambda c: c.update(tau_definition1=50, hit_definition1=True), None),
    (lambda c: c.update(tau_spectral=0, hit_spectral=True), "tau_spectral=0 outside [1, steps=50]"),
    (lambda c: c.update(tau_lock=12, hit_lock=False), "not the censoring value steps=50"),
    (lambda c: c.update(hit_lock=1), "not an int step and a bool"),
    (lambda c: c.update(n=32), "is not on this config's grid"),
    (lambda c: c.update(n=16.0), "has n=16.0 of type float"),
    (lambda c: c.update(D=17), "has D=17, not n^2"),
    (lambda c: c.pop("tau_perp_spectral"), "lacks tau_perp_spectral"),
    (lambda c: c.update(note="x"), "has unknown keys note"),
  ],
)
def test_stored_cell_checks(saddle_run, tmp_path, edit, problem):
  doc = _doc(saddle_run)
  cell = next(c for c in doc["cells"] if c["n"] == 16)
  cell.update(tau_definition1=50, hit_definition1=False)  # a valid censored metric
  edit(cell)
  path = str(tmp_path / "saddle_escape.json")
  results.atomic_write_json(path, doc)
  if problem is None:
    assert len(saddle.resumable_cells(_cfg(), path)) == len(doc["cells"])
  else:
    with pytest.raises(ValueError, match=r"^checkpoint=.*: cell \d+ \(") as e:
      saddle.resumable_cells(_cfg(), path)
    assert problem in str(e.value)


def test_stored_cells_twice_or_not_a_results_file_are_refused(saddle_run, tmp_path):
  doc = _doc(saddle_run)
  path = str(tmp_path / "saddle_escape.json")
  results.atomic_write_json(path, {**doc, "cells": doc["cells"] + doc["cells"][:1]})
  with pytest.raises(ValueError, match="is stored twice"):
    saddle.resumable_cells(_cfg(), path)
  results.atomic_write_json(path, [1, 2])
  with pytest.raises(ValueError, match="not a saddle_escape results file"):
    saddle.resumable_cells(_cfg(), path)
  with open(path, "w") as f:
    f.write('{"config": {"dims": [8, ')  # truncated
  with pytest.raises(ValueError, match=f"^{path}: not valid JSON"):
    saddle.resumable_cells(_cfg(), path)


def test_a_config_field_added_later_at_its_default_keeps_stored_cells(saddle_run, tmp_path):
  doc = _doc(saddle_run)
  del doc["config"]["tail_exponent"]  # as if written before the field existed
  path = str(tmp_path / "saddle_escape.json")
  results.atomic_write_json(path, doc)
  assert len(saddle.resumable_cells(_cfg(), path)) == len(doc["cells"])
  doc["config"]["sigma"] = 2.0
  results.atomic_write_json(path, doc)
  with pytest.raises(ValueError, match=r"different config \(sigma\)"):
    saddle.resumable_cells(_cfg(), path)


# ---------------------------------------------------------------------------
# One run per output folder


def _hold_lock(folder):
  """A process holding `folder`'s lock until killed."""
  code = (
    "import sys, time; from muon_jax.infra import lock; "
    "lock.FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)"
  )
  proc = subprocess.Popen(
    [sys.executable, "-c", code, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True
  )
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_a_second_run_is_refused_and_a_stale_lock_taken_over(tmp_path):
  holder = _hold_lock(tmp_path)
  try:
    for module, args in (
      ("experiments.saddle_escape", [*SADDLE, "--resume", "--seed=1"]),
      ("experiments.train_llama", [*TRAIN, "--steps=2"]),
    ):
      proc = run_module(module, *args, f"--out_dir={tmp_path}")
      assert proc.returncode == 2, proc.stderr[-2000:]
      # (the saddle run also says that --resume finds nothing to resume)
      (line,) = [ln for ln in error_lines(proc) if not ln.startswith("resume: nothing")]
      assert line.startswith(f"error: --out_dir={tmp_path} is in use by pid {holder.pid} on host ")
      assert line.endswith("; wait for it or use another out_dir")
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The holder died without releasing: its lock is stale and the next run takes it over.
  proc = _saddle(tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"taking over a stale lock of pid {holder.pid} on host " in proc.stderr
  assert not (tmp_path / lock.LOCK_NAME).exists()


def test_lock_semantics(tmp_path, monkeypatch):
  held = lock.FolderLock(str(tmp_path)).acquire()
  with pytest.raises(lock.LockHeld, match=f"in use by pid {os.getpid()}"):
    lock.FolderLock(str(tmp_path)).acquire()  # even from the same process
  held.release()
  assert not (tmp_path / lock.LOCK_NAME).exists()
  # A lock from another host cannot be checked from here: refused, with what to do.
  other = {"pid": 1, "host": "elsewhere", "started_utc": "x", "command": "y"}
  (tmp_path / lock.LOCK_NAME).write_text(json.dumps(other))
  with pytest.raises(lock.LockHeld, match=r"on host elsewhere .*; if that run is gone, delete"):
    lock.FolderLock(str(tmp_path)).acquire()
  # Two runs racing for one stale lock: exactly one wins.
  (tmp_path / lock.LOCK_NAME).write_text(json.dumps({**other, "host": lock.socket.gethostname()}))
  monkeypatch.setattr(lock, "_pid_running", lambda pid: pid != 1)
  outcomes = []

  def take():
    try:
      outcomes.append(lock.FolderLock(str(tmp_path)).acquire())
    except lock.LockHeld:
      outcomes.append(None)

  threads = [threading.Thread(target=take) for _ in range(8)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert sum(o is not None for o in outcomes) == 1


# ---------------------------------------------------------------------------
# Permissions


def _world_writable(folder):
  found = ["."] if os.stat(folder).st_mode & 0o002 else []
  for root, dirs, names in os.walk(folder):
    for name in dirs + names:
      path = os.path.join(root, name)
      if not os.path.islink(path) and os.stat(path).st_mode & 0o002:
        found.append(os.path.relpath(path, folder))
  return found


@pytest.mark.parametrize("umask", [0o002, 0o000])
def test_no_file_a_run_writes_is_world_writable(tmp_path, umask):
  saddle_out, train_out = tmp_path / "saddle", tmp_path / "train"
  proc = _saddle(saddle_out, umask=umask)
  assert proc.returncode == 0, proc.stderr[-2000:]
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.train_llama",
      *TRAIN,
      "--steps=2",
      "--ckpt_every=1",
      f"--out_dir={train_out}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    umask=umask,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert (train_out / "checkpoints" / "2").is_dir() and (train_out / "tensorboard").is_dir()
  assert _world_writable(saddle_out) == [] and _world_writable(train_out) == []
  # The rest of the umask is honoured: group-writable under 0o002 and 0o000.
  assert os.stat(saddle_out / "saddle_escape.json").st_mode & 0o777 == 0o664


def test_umask_is_never_changed_under_a_concurrent_writer(tmp_path, monkeypatch):
  """The old atomic write set the umask to 0 for an instant: a file another thread created
  then came out 0666. Now the umask is read from /proc and never set."""
  umask = results.current_umask()

  def forbidden(*_):
    raise AssertionError("os.umask called")

  monkeypatch.setattr(os, "umask", forbidden)
  stop, modes = threading.Event(), set()

  def other_writer():
    i = 0
    while not stop.is_set():
      path = str(tmp_path / f"other{i % 50}")
      fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o666)
      modes.add(os.fstat(fd).st_mode & 0o777)
      os.close(fd)
      os.remove(path)
      i += 1

  thread = threading.Thread(target=other_writer)
  thread.start()
  try:
    for i in range(300):
      results.atomic_write_json(str(tmp_path / "r.json"), {"i": i})
  finally:
    stop.set()
    thread.join()
  assert modes == {0o666 & ~umask}
  assert os.stat(tmp_path / "r.json").st_mode & 0o777 == 0o666 & ~(umask | 0o002)


# ---------------------------------------------------------------------------
# JSON outputs and append-only logs


def test_json_outputs_are_strict(tmp_path):
  path = str(tmp_path / "r.json")
  results.atomic_write_json(path, {"a": float("nan"), "b": [float("inf"), 1.5]})
  assert (tmp_path / "r.json").read_text().split() == [
    "{",
    '"a":',
    "null,",
    '"b":',
    "[",
    "null,",
    "1.5",
    "]",
    "}",
  ]
  assert results.json_line({"loss": float("nan")}) == '{"loss": null}\n'


def test_damaged_json_names_its_file(tmp_path):
  path = tmp_path / "r.json"
  path.write_text('{"a": [1, 2')
  with pytest.raises(ValueError, match=f"^{path}: not valid JSON .*line 1"):
    results.load_json(str(path))


def test_torn_last_jsonl_line_is_dropped_and_a_bad_middle_line_named(tmp_path, caplog):
  path = tmp_path / "m.jsonl"
  path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
  assert results.read_jsonl(str(path)) == [{"step": 1}, {"step": 2}]
  assert any("dropped its last line" in r.getMessage() for r in caplog.records)
  path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}')  # complete, newline missing
  assert len(results.read_jsonl(str(path))) == 3
  path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
  with pytest.raises(ValueError, match=f"^{path}:2: not a valid JSON line"):
    results.read_jsonl(str(path))


# ---------------------------------------------------------------------------
# Provenance


def test_provenance_names_the_packages_own_commit_only(tmp_path):
  code = "from muon_jax.infra import results; print(results.provenance([])['commit'])"

  def commit_seen_from(package_parent):
    proc = subprocess.run(
      [sys.executable, "-c", code],
      cwd=package_parent,
      env=dict(os.environ, PYTHONPATH=str(package_parent)),
      capture_output=True,
      text=True,
      check=True,
    )
    return proc.stdout.strip().splitlines()[-1]

  head = subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
  ).stdout.strip()
  assert commit_seen_from(ROOT) == head
  # The tree exported into another repository: that repository's commit is not ours.
  other = tmp_path / "other_repo"
  shutil.copytree(
    os.path.join(ROOT, "muon_jax"),
    other / "vendor" / "muon_jax",
    ignore=shutil.ignore_patterns("__pycache__"),
  )
  git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
  subprocess.run([*git, "init", "-q"], cwd=other, check=True)
  (other / "README").write_text("another project\n")
  subprocess.run([*git, "add", "README"], cwd=other, check=True)
  subprocess.run([*git, "commit", "-qm", "x"], cwd=other, check=True)
  assert commit_seen_from(other / "vendor") == "None"


# ---------------------------------------------------------------------------
# Input files


def test_invalid_utf8_and_damaged_inputs_name_their_file(tmp_path):
  txt = tmp_path / "corpus" / "a.txt"
  txt.parent.mkdir()
  txt.write_bytes(b"good text \xff\xfe broken")
  with pytest.raises(ValueError, match=f"^{txt}: not valid UTF-8"):
    next(data.build_pipeline(f"files:{txt.parent}", seq_len=8, batch_size=1, seed=0))
  jsonl = tmp_path / "b.jsonl"
  jsonl.write_text('{"text": "fine"}\n{"text": "cut\n')
  with pytest.raises(ValueError, match=f"^{jsonl}:2: not a valid JSON line"):
    next(data.build_pipeline(f"files:{jsonl}", seq_len=8, batch_size=1, seed=0))
  model = tmp_path / "tok.model"
  model.write_bytes(b"\x00not a model\x01" * 8)
  with pytest.raises(ValueError, match=f"^tokenizer={model}: not a SentencePiece model"):
    data.build_pipeline("stdlib", str(model), seq_len=8, batch_size=1, seed=0)


def test_resume_with_nothing_to_resume_says_so(tmp_path):
  proc = _saddle(tmp_path / "empty", "--resume")
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("resume: ")]
  assert lines == [
    f"resume: nothing to resume in {tmp_path / 'empty' / 'saddle_escape.json'} "
    "(absent or empty); starting from scratch"
  ]
