"""Config dataclass fields (muon_jax.infra.config) and the shared flag helper (experiments.cli)."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest

from muon_jax.infra import config
from muon_jax.infra import results


@dataclasses.dataclass(frozen=True)
class DemoConfig:
  dims: tuple[int, ...] = config.field((32, 64), "matrix sides n", low=2, high=16384)
  lr: float = config.field(0.02, "learning rate", low=0.0, low_open=True)
  optimizer: str = config.field("muon", "optimizer", choices=("muon", "adamw"))
  resume: bool = config.field(False, "reuse finished work")


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"dims": (1, 4)}, r"^dims=1 is out of range; allowed \[2, 16384\]"),
    ({"dims": (4, 4)}, r"^dims has duplicate values"),
    ({"dims": ()}, r"^dims must not be empty"),
    ({"lr": 0.0}, r"^lr=0.0 is out of range; allowed \(0.0, inf\)"),
    ({"lr": float("nan")}, r"^lr=nan is out of range"),
    ({"optimizer": "lion"}, r"^optimizer='lion' is not allowed; choose from muon, adamw"),
  ],
)
def test_check_names_the_field(kwargs, match):
  with pytest.raises(ValueError, match=match):
    config.check(DemoConfig(**kwargs))


def test_element_type_reads_optional_both_spellings():
  from typing import Optional

  @dataclasses.dataclass(frozen=True)
  class Opt:
    a: Optional[int] = config.field(None, "a")  # noqa: UP045
    b: float | None = config.field(None, "b")
    c: tuple[str, ...] = config.field(("x",), "c")

  fields = {f.name: f for f in dataclasses.fields(Opt)}
  assert config.element_type(Opt, fields["a"]) == (int, False)
  assert config.element_type(Opt, fields["b"]) == (float, False)
  assert config.element_type(Opt, fields["c"]) == (str, True)


def test_check_accepts_defaults_and_describe_states_range():
  config.check(DemoConfig())
  assert config.describe(DemoConfig, "dims") == "matrix sides n; in [2, 16384]; default 32,64."
  assert config.describe(DemoConfig, "optimizer") == "optimizer; one of muon, adamw; default muon."


DEMO = textwrap.dedent("""
    import dataclasses
    from experiments import cli
    from muon_jax.infra import config
    @dataclasses.dataclass(frozen=True)
    class DemoConfig:
      dims: tuple[int, ...] = config.field((32, 64), "matrix sides n", low=2, high=16384)
      lr: float = config.field(0.02, "learning rate", low=0.0, low_open=True)
      optimizer: str = config.field("muon", "optimizer", choices=("muon", "adamw"))
      resume: bool = config.field(False, "reuse finished work")
    FLAGS = cli.define_flags(DemoConfig)
    cli.define_flags(DemoConfig)  # a second config sharing names keeps the first flag
    def main(argv):
      with cli.flag_errors():
        cfg = cli.config_from_flags(DemoConfig)
        if cfg.resume:
          cli.check_out_dir(__file__)
      print(cfg)
    cli.run(main)
""")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
  path = tmp_path_factory.mktemp("cli") / "demo.py"
  path.write_text(DEMO)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def run(*args):
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run(
      [sys.executable, str(path), *args],
      capture_output=True,
      text=True,
      check=False,
      env=env,
      cwd=root,
      timeout=120,
    )

  return run


@pytest.mark.parametrize(
  "args, expected",
  [
    (["--dims=1,2"], "error: --dims=1 is out of range; allowed [2, 16384]"),
    (["--dims=a"], "error: --dims: could not parse 'a' as int"),
    (["--lr=x"], "error: flag --lr=x: could not convert string to float: 'x'"),
    (["--optimizer=lion"], "error: --optimizer='lion' is not allowed; choose from muon, adamw"),
    (["--nosuchflag=1"], "error: Unknown command line flag 'nosuchflag'"),
    (["--resume"], "error: out_dir="),
  ],
)
def test_cli_bad_input_is_one_line_exit_2(demo, args, expected):
  proc = demo(*args)
  assert proc.returncode == 2
  assert proc.stderr.strip().count("\n") == 0
  assert proc.stderr.strip().startswith(expected)
  assert proc.stdout == ""


def test_cli_parses_lists_into_config(demo):
  proc = demo("--dims=8, 16", "--optimizer=adamw")
  assert proc.returncode == 0, proc.stderr
  assert "dims=(8, 16)" in proc.stdout and "optimizer='adamw'" in proc.stdout


def test_atomic_write_honours_umask(tmp_path):
  path = tmp_path / "r.json"
  results.atomic_write_json(str(path), {"a": 1})
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
