"""Trainer: nothing lost, nothing silently wrong. Damaged checkpoints (flipped bytes, a
truncated data or metadata file) fall back to the newest intact one; a failed save stops the
run with the previous checkpoint intact; an unwritable checkpoint folder is reported before
the first step; a torn metrics line is dropped; a finished run is reported, not rewritten;
a setting the optimizer never reads is refused."""

import dataclasses
import json
import os
import shutil

import pytest
from binaries import error_lines, run_module

from muon_jax.lm import trainer as tr
from muon_jax.lm.trainer import checkpoints

BASE = tr.TrainConfig(
  model="tiny",
  seq_len=16,
  global_batch=8,
  num_devices=1,
  steps=6,
  log_every=1,
  ckpt_every=2,
  keep_checkpoints=5,
  eval_every=0,
)


def _losses(out_dir) -> list[float]:
  return [r["loss"] for r in tr.read_metrics(str(out_dir))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted 6-step run with checkpoints at 2, 4, 6 (copied by the tests)."""
  out = tmp_path_factory.mktemp("reference")
  tr.run(dataclasses.replace(BASE, out_dir=str(out)))
  return out


def _copy(reference, tmp_path):
  out = tmp_path / "run"
  shutil.copytree(reference, out)
  return out


def _resume(out, **changes):
  return tr.run(dataclasses.replace(BASE, out_dir=str(out), resume=True, **changes))


def _largest_file(folder) -> str:
  files = [os.path.join(r, n) for r, _, names in os.walk(folder) for n in names]
  return max(files, key=os.path.getsize)


def _drop_steps_after(out, step):
  """What a run killed after `step` leaves: its metrics rows and checkpoints up to `step`."""
  for s in os.listdir(out / "checkpoints"):
    if int(s) > step:
      shutil.rmtree(out / "checkpoints" / s)
  rows = [r for r in tr.read_metrics(str(out)) if r["step"] <= step]
  (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_every_checkpoint_carries_a_matching_integrity_record(reference):
  for step in ("2", "4", "6"):
    folder = reference / "checkpoints" / step
    assert checkpoints.verify_integrity(str(folder)) is None
    record = json.loads((folder / checkpoints.INTEGRITY_NAME).read_text())
    assert any(name.startswith("state/") for name in record["files"])


@pytest.mark.parametrize("damage", ["flip", "truncate_data", "truncate_meta"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(
  reference, tmp_path, damage, caplog
):
  out = _copy(reference, tmp_path)
  _drop_steps_after(out, 4)
  latest = out / "checkpoints" / "4"
  if damage == "flip":  # 4 bytes in the middle of the largest file (the reproduction)
    path = _largest_file(latest)
    with open(path, "r+b") as f:
      f.seek(os.path.getsize(path) // 2)
      chunk = f.read(4)
      f.seek(-4, os.SEEK_CUR)
      f.write(bytes(b ^ 0xFF for b in chunk))
  elif damage == "truncate_data":
    path = _largest_file(latest / "state")
    os.truncate(path, os.path.getsize(path) // 2)
  else:
    path = str(latest / "meta" / "metadata")
    os.truncate(path, os.path.getsize(path) // 2)
  summary = _resume(out)
  assert summary["status"] == "ok" and summary["start_step"] == 2
  warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert any(f"checkpoint {latest} is damaged" in w for w in warnings), warnings
  assert any("resuming from step 2" in w for w in warnings), warnings
  # The damaged step was moved aside, and the run redid steps 3..6 exactly.
  assert (out / checkpoints.DAMAGED_DIR / "4").is_dir()
  assert _losses(out) == _losses(reference)


def test_no_intact_checkpoint_is_refused_in_one_line(reference, tmp_path):
  out = _copy(reference, tmp_path)
  for step in ("2", "4", "6"):
    path = _largest_file(out / "checkpoints" / step / "state")
    os.truncate(path, 3)
  with pytest.raises(ValueError, match=r"^no intact checkpoint in .*checkpoints: the newest") as e:
    _resume(out, steps=8)
  assert "\n" not in str(e.value)


def test_failed_save_stops_the_run_and_keeps_the_previous_checkpoint(
  reference, tmp_path, monkeypatch, caplog
):
  real = checkpoints.write_integrity

  def full_disk_at_step_4(folder):
    if os.path.basename(folder).startswith("4"):
      raise OSError(28, "No space left on device")
    real(folder)

  monkeypatch.setattr(checkpoints, "write_integrity", full_disk_at_step_4)
  out = tmp_path / "run"
  summary = tr.run(dataclasses.replace(BASE, out_dir=str(out)))
  assert summary["status"] == "checkpoint_failed"
  errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
  assert any(
    "checkpoint of step 4 was not written (OSError: [Errno 28] No space left on device); "
    "the previous checkpoint (step 2) is intact" in e
    for e in errors
  ), errors
  # Step 4 never committed (Orbax's temporary folder is left); step 2 is untouched.
  assert [n for n in os.listdir(out / "checkpoints") if n.isdigit()] == ["2"]
  assert checkpoints.verify_integrity(str(out / "checkpoints" / "2")) is None
  monkeypatch.setattr(checkpoints, "write_integrity", real)
  assert _resume(out)["status"] == "ok"
  assert _losses(out) == _losses(reference)
  assert sorted(os.listdir(out / "checkpoints")) == ["2", "4", "6"]


def test_unwritable_checkpoint_folder_is_refused_before_the_first_step(tmp_path):
  # Root ignores permission bits; a checkpoint folder under /proc is unwritable to anyone.
  out = tmp_path / "run"
  out.mkdir()
  os.symlink("/proc/self", out / "checkpoints")
  with pytest.raises(ValueError, match=r"^checkpoint folder .*checkpoints is not writable"):
    tr.run(dataclasses.replace(BASE, out_dir=str(out)))
  assert not (out / "metrics.jsonl").exists()  # no step ran


def test_torn_metrics_line_is_dropped_on_resume(reference, tmp_path, caplog):
  out = _copy(reference, tmp_path)
  _drop_steps_after(out, 4)
  with open(out / "metrics.jsonl", "a") as f:
    f.write('{"step": 5, "loss": 3.1')  # a kill in the middle of an append
  _resume(out)
  assert any("dropped its last line" in r.getMessage() for r in caplog.records)
  assert _losses(out) == _losses(reference)


def test_resuming_a_finished_run_reports_and_rewrites_nothing(reference, tmp_path, caplog):
  out = _copy(reference, tmp_path)
  before = {p: (out / p).read_bytes() for p in ("summary.json", "metrics.jsonl")}
  summary = _resume(out)
  assert summary["final_loss"] == json.loads(before["summary.json"])["final_loss"] is not None
  assert {p: (out / p).read_bytes() for p in before} == before
  assert any("already reached step 6 of 6" in r.getMessage() for r in caplog.records)


def test_resume_with_nothing_to_resume_says_so(tmp_path, caplog):
  _resume(tmp_path / "fresh", steps=1, ckpt_every=0)
  assert any(
    "resume: no checkpoint in" in r.getMessage() and "starting from step 0" in r.getMessage()
    for r in caplog.records
  )


def test_nan_loss_is_written_as_strict_json(tmp_path):
  cfg = dataclasses.replace(
    BASE, optimizer="adamw", lr=1e30, steps=3, ckpt_every=0, max_nonfinite=1, out_dir=str(tmp_path)
  )
  summary = tr.run(cfg)
  assert summary["status"] == "stopped_nonfinite"
  for name in ("metrics.jsonl", "summary.json"):
    text = (tmp_path / name).read_text()
    assert "NaN" not in text and "Infinity" not in text
  last = tr.read_metrics(str(tmp_path))[-1]
  assert last["finite"] is False and last["grad_norm"] is None  # was a bare NaN


def test_settings_the_optimizer_never_reads_are_refused():
  muon = dataclasses.replace(BASE, optimizer="muon")
  with pytest.raises(ValueError, match=r"^lr has no effect on an optimizer=muon run .*muon_lr"):
    tr.check_settings_act(muon, {"lr", "steps"})
  adamw = dataclasses.replace(BASE, optimizer="adamw")
  with pytest.raises(ValueError, match=r"^muon_lr has no effect on an optimizer=adamw run"):
    tr.check_settings_act(adamw, {"muon_lr"})
  tr.check_settings_act(muon, {"muon_lr", "adam_lr", "steps"})
  tr.check_settings_act(adamw, {"lr"})
  # A resume ignores changes to a setting the run never reads, and still refuses the rest.
  stored = json.loads(json.dumps(tr.stored_config(muon)))
  assert tr.resume_changes(stored, dataclasses.replace(muon, lr=0.5), 3) == []
  with pytest.raises(ValueError, match=r"^muon_lr: resume would change the LR schedule"):
    tr.resume_changes(stored, dataclasses.replace(muon, muon_lr=0.5), 3)


def test_binary_refuses_lr_on_a_muon_run_in_one_line(tmp_path):
  proc = run_module(
    "experiments.train_llama", "--optimizer=muon", "--lr=0.5", f"--out_dir={tmp_path / 'run'}"
  )
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert line.startswith("error: --lr has no effect on an optimizer=muon run"), line
  assert not (tmp_path / "run").exists()


def test_binary_reports_no_intact_checkpoint_in_one_line(reference, tmp_path):
  out = _copy(reference, tmp_path)
  for step in ("2", "4", "6"):
    os.truncate(_largest_file(out / "checkpoints" / step / "state"), 3)
  proc = run_module(
    "experiments.train_llama",
    *[f"--{k}={v}" for k, v in (("seq_len", 16), ("global_batch", 8), ("num_devices", 1))],
    "--steps=8",
    "--ckpt_every=2",
    "--keep_checkpoints=5",
    "--eval_every=0",
    f"--out_dir={out}",
    "--resume",
  )
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert error_lines(proc)[-1].startswith(f"error: no intact checkpoint in {out}/checkpoints")
