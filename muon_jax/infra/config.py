"""Experiment configs: dataclass fields that carry their one-line doc and range.

Every experiment declares a frozen dataclass whose fields are made with
`field(default, doc, ...)`. `check(config)` validates each field against what
it declares and raises one `ValueError` whose message starts with the field's
name, so a binary can turn it into a flag error and a notebook user reads the
argument they passed. The shared flag helper (`experiments/_cli.py`) generates
flags from the same metadata, so the range stated in `--help` is the range
enforced.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from typing import Any

_META = "muon_jax"


def field(
  default: Any,
  doc: str,
  *,
  low: float | None = None,
  high: float | None = None,
  low_open: bool = False,
  high_open: bool = False,
  choices: Sequence[str] | None = None,
  nonempty: bool = True,
  unique: bool = True,
  min_len: int = 0,
  min_len_reason: str = "",
):
  """A config field with a one-line doc and what values it accepts.

  Args:
    default: the default value; tuples for list-valued fields.
    doc: one line saying what the field is (the range and default are appended
      by `describe`).
    low, high: numeric bounds of the value or of every element of a tuple.
    low_open, high_open: whether the bounds are excluded.
    choices: allowed strings (for a str field or every element of a tuple).
    nonempty: tuple fields must have at least one element.
    unique: tuple fields must not repeat an element.
    min_len, min_len_reason: tuple fields need at least min_len elements, because
      min_len_reason (what the experiment cannot compute with fewer).

  Returns:
    A `dataclasses.field` with the metadata `check` and the flag helper read.
  """
  meta = {
    "doc": doc,
    "low": low,
    "high": high,
    "low_open": low_open,
    "high_open": high_open,
    "choices": tuple(choices) if choices is not None else None,
    "nonempty": nonempty,
    "unique": unique,
    "min_len": min_len,
    "min_len_reason": min_len_reason,
  }
  return dataclasses.field(default=default, metadata={_META: meta})


def spec(f: dataclasses.Field) -> dict | None:
  """The metadata `field` attached to a dataclass field, or None."""
  return f.metadata.get(_META)


def element_type(cls, f: dataclasses.Field) -> tuple[type, bool]:
  """(scalar type, is_tuple) of a config field, from its annotation."""
  hint = typing.get_type_hints(cls)[f.name]
  origin = typing.get_origin(hint)
  if origin in (tuple, list):
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    return (args[0] if args else str), True
  if origin in (typing.Union, types.UnionType):  # Optional[X] or X | None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0], False
  return hint, False


def _range_text(meta: dict) -> str:
  if meta["choices"] is not None:
    return "one of " + ", ".join(meta["choices"])
  low, high = meta["low"], meta["high"]
  if low is None and high is None:
    return ""
  lb = "(" if meta["low_open"] or low is None else "["
  hb = ")" if meta["high_open"] or high is None else "]"
  return f"in {lb}{'-inf' if low is None else low}, {'inf' if high is None else high}{hb}"


def describe(cls, name: str) -> str:
  """`doc; range; default` for one field, as help text."""
  f = {f.name: f for f in dataclasses.fields(cls)}[name]
  meta = spec(f) or {"doc": name, "choices": None, "low": None, "high": None}
  parts = [meta["doc"].rstrip(".")]
  rng = _range_text(meta) if spec(f) else ""
  if rng:
    parts.append(rng)
  if spec(f) and meta["min_len"] > 1:
    parts.append(f"at least {meta['min_len']} values")
  default = f.default
  if isinstance(default, tuple):
    default = ",".join(str(x) for x in default)
  parts.append(f"default {default}")
  return "; ".join(parts) + "."


def _check_scalar(name: str, value, meta: dict) -> None:
  if meta["choices"] is not None:
    if value not in meta["choices"]:
      raise ValueError(f"{name}={value!r} is not allowed; choose from {', '.join(meta['choices'])}")
    return
  if meta["low"] is None and meta["high"] is None:
    return
  if isinstance(value, float) and math.isnan(value):
    raise ValueError(f"{name}=nan is out of range; allowed {_range_text(meta)[3:]}")
  ok = True
  if meta["low"] is not None:
    ok &= value > meta["low"] if meta["low_open"] else value >= meta["low"]
  if meta["high"] is not None:
    ok &= value < meta["high"] if meta["high_open"] else value <= meta["high"]
  if not ok:
    raise ValueError(f"{name}={value} is out of range; allowed {_range_text(meta)[3:]}")


def check(config) -> None:
  """Validates every field of a config dataclass against its declared range.

  Raises:
    ValueError: one line starting with the field's name.
  """
  for f in dataclasses.fields(config):
    meta = spec(f)
    if meta is None:
      continue
    value = getattr(config, f.name)
    _, is_tuple = element_type(type(config), f)
    if is_tuple:
      value = tuple(value)
      if meta["nonempty"] and not value:
        raise ValueError(f"{f.name} must not be empty")
      if meta["unique"] and len(set(value)) != len(value):
        raise ValueError(f"{f.name} has duplicate values: {','.join(map(str, value))}")
      if len(value) < meta["min_len"]:
        raise ValueError(
          f"{f.name}={','.join(map(str, value))}: needs at least {meta['min_len']} values "
          f"({meta['min_len_reason']})"
        )
      for v in value:
        _check_scalar(f.name, v, meta)
    elif value is not None:
      _check_scalar(f.name, value, meta)


def stored_differences(config, stored: dict) -> list[str]:
  """Fields in which a config stored as JSON (`to_json(asdict(...))`) differs from `config`.

  A field the stored config lacks counts as equal while `config` holds the field's default:
  a field added later whose default reproduces the old behaviour keeps stored work valid.
  A stored field that `config` no longer has differs.

  Returns:
    The differing field names, sorted.
  """
  from muon_jax.infra import results

  mine = results.to_json(dataclasses.asdict(config))
  defaults = {
    f.name: results.to_json(f.default)
    for f in dataclasses.fields(config)
    if f.default is not dataclasses.MISSING
  }
  differing = []
  for name in sorted(set(mine) | set(stored)):
    if name not in mine:
      differing.append(name)
    elif name in stored:
      if stored[name] != mine[name]:
        differing.append(name)
    elif name not in defaults or mine[name] != defaults[name]:
      differing.append(name)
  return differing
