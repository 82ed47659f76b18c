"""The one flag helper every binary uses.

Flags are generated from a config dataclass built with `muon_jax.infra.config.field`
(help = the field's doc, range and default), list-valued fields are parsed the
same way everywhere (comma-separated), and every bad input -- absl's own parse
errors, a `ValueError` naming a config field, an unusable output folder --
ends as one line `error: --flag...` on stderr with exit code 2, before
anything compiles.

  FLAGS = cli.define_flags(saddle.SaddleConfig)
  def main(argv):
    with cli.flag_errors():
      cfg = cli.config_from_flags(saddle.SaddleConfig)
      cli.check_out_dir(FLAGS.out_dir)
    ...
  if __name__ == "__main__":
    cli.run(main)
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import re
import shlex
import sys
import tempfile

from absl import app, flags

from muon_jax.infra import config as config_lib
from muon_jax.infra import interrupt

FLAGS = flags.FLAGS
EXIT_BAD_INPUT = 2
# `define_flags` defines flags on behalf of the binary that calls it: disclaiming them
# here makes absl attribute them to that binary, so its --help lists them (not only
# --helpfull).
flags.disclaim_key_flags()


def define_flags(config_cls, *, exclude=(), defaults=None, prefix=""):
  """Defines one absl flag per field of `config_cls` (skipping `exclude`).

  A flag already defined by another config of the same binary is kept (one
  name means one thing). `defaults` overrides field defaults for this binary.
  `prefix` names the flags of a nested config (`probe_` + field). Returns FLAGS.
  """
  defaults = defaults or {}
  for f in dataclasses.fields(config_cls):
    name = prefix + f.name
    if f.name in exclude or name in FLAGS or not f.init:
      continue
    typ, is_tuple = config_lib.element_type(config_cls, f)
    default = defaults.get(f.name, f.default)
    help_text = config_lib.describe(config_cls, f.name)
    if is_tuple:
      flags.DEFINE_list(name, [str(x) for x in default], help_text)
    elif typ is bool:
      flags.DEFINE_bool(name, default, help_text)
    elif typ is int:
      flags.DEFINE_integer(name, default, help_text)
    elif typ is float:
      flags.DEFINE_float(name, default, help_text)
    else:
      flags.DEFINE_string(name, default, help_text)
  return FLAGS


def _cast(name: str, typ: type, text: str):
  try:
    return typ(text.strip())
  except ValueError:
    raise ValueError(f"{name}: could not parse {text!r} as {typ.__name__}") from None


def config_from_flags(config_cls, *, prefix="", **overrides):
  """Builds and checks a `config_cls` from the parsed flags.

  Fields without a flag keep their default unless given in `overrides`;
  `prefix` as in `define_flags`. Raises ValueError naming the flag's field
  (turned into a flag error by `flag_errors`).
  """
  kwargs = {}
  for f in dataclasses.fields(config_cls):
    name = prefix + f.name
    if f.name in overrides or name not in FLAGS or not f.init:
      continue
    typ, is_tuple = config_lib.element_type(config_cls, f)
    value = FLAGS[name].value
    if is_tuple:
      value = tuple(_cast(name, typ, str(v)) for v in value if str(v).strip())
    kwargs[f.name] = value
  cfg = config_cls(**kwargs, **overrides)
  try:
    config_lib.check(cfg)
  except ValueError as e:
    raise ValueError(f"{prefix}{e}") from None
  return cfg


def check_out_dir(path: str) -> None:
  """Raises ValueError unless `path` is (or can be made) a writable folder."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"out_dir={path} exists and is not a folder")
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise ValueError(f"out_dir={path} is not writable: {e.strerror}") from None


def claim_out_dir(path: str, *, owner: bool = True):
  """`check_out_dir`, then this run's hold on `path`: one run per output folder.

  Takes `path`'s lock (`muon_jax.infra.lock`) until the process exits, and makes every file
  the process creates from now on not world-writable (`results.forbid_world_writable`).
  In a multi-process job only process 0 is the `owner` (the others check the folder only).

  Raises:
    ValueError: the folder is unusable, or another run holds it (one line naming it).
  """
  from muon_jax.infra import lock, results

  results.forbid_world_writable()  # first: check_out_dir may create the folder
  check_out_dir(path)
  if not owner:
    return None
  held = lock.FolderLock(path).acquire()
  atexit.register(held.release)
  return held


def note_fresh_start(resume: bool, path: str) -> None:
  """With --resume and nothing at `path` (the file or folder a resume reads: absent, or
  an empty folder), says in one line that the run starts from scratch."""
  from muon_jax.infra import lock

  empty = not os.path.exists(path) or (
    os.path.isdir(path) and not [n for n in os.listdir(path) if n != lock.LOCK_NAME]
  )
  if resume and empty:
    print(
      f"resume: nothing to resume in {path} (absent or empty); starting from scratch",
      file=sys.stderr,
    )


def _ids(claims: list, limit: int = 3) -> str:
  names = [c["id"] for c in claims]
  more = f", +{len(names) - limit} more" if len(names) > limit else ""
  return f" ({', '.join(names[:limit])}{more})" if names else ""


def claims_headline(claims: list) -> str:
  """One plain line: how many claims reproduced the paper, did not, are open or untestable."""
  if not claims:
    return "claims: none with this config"
  held = [c for c in claims if c["reproduces"] is True]
  failed = [c for c in claims if c["reproduces"] is False]
  untestable = [c for c in claims if c["verdict"] == "untestable"]
  # A string in "reproduces" marks a row reported but never judged (e.g. update-norm criteria).
  reported = [c for c in claims if isinstance(c["reproduces"], str)]
  open_ = [c for c in claims if c["reproduces"] is None and c["verdict"] != "untestable"]
  parts = [f"{len(held)} reproduced{_ids(held)}", f"{len(failed)} not reproduced{_ids(failed)}"]
  if open_:
    parts.append(f"{len(open_)} inconclusive")
  if untestable:
    parts.append(f"{len(untestable)} untestable with this config{_ids(untestable)}")
  if reported:
    parts.append(f"{len(reported)} reported, not judged")
  return f"claims: {'; '.join(parts)}"


def write_results(out_dir: str, json_name: str, res: dict, figures: dict) -> str:
  """Writes `res` as out_dir/json_name and each figure as out_dir/<stem>.png.

  Ends with a short headline: the claims' tally (`claims_headline`), where the figures
  are and the JSON that holds every claim with its measurement. Returns the JSON path.
  """
  from muon_jax.infra import results

  path = os.path.join(out_dir, json_name)
  results.atomic_write_json(path, res)
  for name, fig in figures.items():
    results.save_figure(fig, os.path.join(out_dir, f"{name}.png"))
  if "claims" in res:
    print(claims_headline(res["claims"]))
  if figures:
    print(f"figures: {len(figures)} PNGs in {out_dir}/ ({', '.join(figures)})")
  print(f"results: {path}" + (" (every claim with its measurement)" if "claims" in res else ""))
  return path


def flag_message(error: Exception) -> str:
  """One line for a bad-input error; a leading field name becomes `--name`."""
  text = " ".join(str(error).split())
  m = re.match(r"([a-z][a-z0-9_]*)(?=[=: ])", text)
  if m and m.group(1) in FLAGS and not text.startswith("--"):
    text = "--" + text
  return f"error: {text}"


def _fail(error: Exception):
  print(flag_message(error), file=sys.stderr)
  sys.exit(EXIT_BAD_INPUT)


@contextlib.contextmanager
def flag_errors():
  """Turns a ValueError raised inside into the one-line flag error, exit 2."""
  try:
    yield
  except ValueError as e:
    _fail(e)


def _parse_flags(argv):
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _fail(e)


def resume_command() -> str:
  """This process's command line with --resume (replacing any --[no]resume given)."""
  spec = getattr(sys.modules["__main__"], "__spec__", None)
  program = ["python", "-m", spec.name] if spec is not None else ["python", sys.argv[0]]
  args = [a for a in sys.argv[1:] if not re.fullmatch(r"--(no)?resume(=.*)?", a)]
  return shlex.join([*program, *args, "--resume"])


def _stoppable(main):
  """`main` inside `interrupt.stop_at_safe_points()`: a stop ends in one line, exit 75."""

  def stoppable_main(argv):
    try:
      with interrupt.stop_at_safe_points():
        return main(argv)
    except (interrupt.Interrupted, KeyboardInterrupt):
      print(f"interrupted: saved; resume with: {resume_command()}", file=sys.stderr)
      sys.exit(interrupt.EXIT_INTERRUPTED)

  return stoppable_main


def run(main, *, stoppable: bool = False) -> None:
  """`app.run(main)` with absl's parse errors in the project's one-line format.

  Args:
    main: the binary's main(argv).
    stoppable: for binaries with --resume whose work calls `interrupt.check()` at its
      safe points: SIGINT / SIGTERM stop the run at the next one (what is computed is
      saved), print `interrupted: saved; resume with: <command> --resume` and exit with
      status 75 (`interrupt.EXIT_INTERRUPTED`), without a traceback.
  """
  app.run(_stoppable(main) if stoppable else main, flags_parser=_parse_flags)
