"""Flag / argument validation: one-line errors naming the flag and allowed range.

Experiments call these on parsed flags before anything compiles.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence


class FlagError(ValueError):
  """Bad value for a named flag or argument."""


def parse_list(name: str, text, cast: Callable = float) -> list:
  """Parses "1,2,3" (or an absl list flag's list) into a non-empty list."""
  items = text if isinstance(text, (list, tuple)) else str(text).split(",")
  items = [str(t).strip() for t in items if str(t).strip()]
  if not items:
    raise FlagError(f"--{name} must be a non-empty comma-separated list")
  try:
    return [cast(t) for t in items]
  except ValueError:
    raise FlagError(f"--{name}: could not parse {text!r} as a list of {cast.__name__}") from None


def check_range(name: str, values, *, low=None, high=None, low_inclusive=True,
                high_inclusive=True) -> None:
  """Raises FlagError unless every value lies in the given range."""
  values = values if isinstance(values, (list, tuple)) else [values]
  for v in values:
    ok = True
    if low is not None:
      ok &= v >= low if low_inclusive else v > low
    if high is not None:
      ok &= v <= high if high_inclusive else v < high
    if not ok:
      lo = "-inf" if low is None else f"{low}"
      hi = "inf" if high is None else f"{high}"
      lb = "[" if low_inclusive and low is not None else "("
      hb = "]" if high_inclusive and high is not None else ")"
      raise FlagError(f"--{name}={v} is out of range; allowed {lb}{lo}, {hi}{hb}")


def check_choices(name: str, values, choices: Sequence[str]) -> None:
  values = values if isinstance(values, (list, tuple)) else [values]
  for v in values:
    if v not in choices:
      raise FlagError(f"--{name}={v!r} is not allowed; choose from {', '.join(choices)}")


def parse_shard(text: str) -> tuple[int, int]:
  """Parses --shard=i/N (0 <= i < N)."""
  try:
    i, n = (int(t) for t in str(text).split("/"))
  except ValueError:
    raise FlagError(f"--shard must look like i/N, got {text!r}") from None
  if n < 1 or not 0 <= i < n:
    raise FlagError(f"--shard={text}: need N >= 1 and 0 <= i < N")
  return i, n


def run_or_exit(main_fn: Callable[[], None]) -> None:
  """Runs `main_fn`; a FlagError becomes a one-line message and exit code 2."""
  import sys
  try:
    main_fn()
  except FlagError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
