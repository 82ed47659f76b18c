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

import contextlib
import dataclasses
import os
import re
import sys
import tempfile

from absl import app, flags

from muon_jax.infra import config as config_lib

FLAGS = flags.FLAGS
EXIT_BAD_INPUT = 2


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


def write_results(out_dir: str, json_name: str, res: dict, figures: dict) -> str:
  """Writes `res` as out_dir/json_name and each figure as out_dir/<stem>.png.

  Prints one line per claim in res["claims"] and the JSON path; returns it.
  """
  from muon_jax.infra import results

  path = os.path.join(out_dir, json_name)
  results.atomic_write_json(path, res)
  for name, fig in figures.items():
    results.save_figure(fig, os.path.join(out_dir, f"{name}.png"))
  for claim in res.get("claims", ()):
    print(f"{claim['id']}: {claim['verdict']} -- {claim['measured']}")
  print(f"wrote {path}")
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


def run(main) -> None:
  """`app.run(main)` with absl's parse errors in the project's one-line format."""
  app.run(main, flags_parser=_parse_flags)
