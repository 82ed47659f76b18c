"""Runs an experiment binary as a user does: `python -m <module> ...` from the repository root.

The subprocess inherits conftest's environment (CPU platform, Agg backend).
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(
  module: str, *args: str, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
  """Runs the module; `env` entries override the inherited environment."""
  return subprocess.run(
    [sys.executable, "-m", module, *args],
    check=False,
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=timeout,
    env=dict(os.environ, **(env or {})),
  )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
  """stderr's lines without JAX's start-up notice about a missing TPU backend."""
  return [ln for ln in proc.stderr.strip().splitlines() if "tpu" not in ln.lower()]
