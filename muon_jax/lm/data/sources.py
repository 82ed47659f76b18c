"""Where text comes from: corpus specs, the stdlib / local-files / HF-streaming sources, and the
seeded document stream of one split (see the package docstring for the data model).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from typing import Iterator

CORPUS_FORMS = "stdlib | files:PATH | hf:NAME[:CONFIG]"
FINEWEB_EDU = "hf:HuggingFaceFW/fineweb-edu:sample-100BT"
TEXT_EXTENSIONS = (".txt", ".text", ".md", ".rst", ".py", ".tex", ".html", ".htm")
_STDLIB_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}


# ---------------------------------------------------------------------------
# Specs


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
  kind: str  # "stdlib" | "files" | "hf"
  path: str = ""  # files: the file or directory; hf: dataset name or local folder
  config: str | None = None  # hf: config name


def validate_corpus_spec(spec: str) -> CorpusSpec:
  """Parses a corpus spec; raises ValueError (one line, listing valid forms) if bad."""
  spec = str(spec).strip()
  if spec == "stdlib":
    return CorpusSpec("stdlib")
  if spec.startswith("files:"):
    path = spec[len("files:") :]
    if not path:
      raise ValueError(f"corpus={spec!r}: files: needs a path; valid forms: {CORPUS_FORMS}")
    if not os.path.exists(path):
      raise ValueError(
        f"corpus={spec!r}: no such file or directory {path!r}; valid forms: {CORPUS_FORMS}"
      )
    return CorpusSpec("files", os.path.abspath(path))
  if spec.startswith("hf:"):
    name, _, config = spec[len("hf:") :].partition(":")
    if not name:
      raise ValueError(f"corpus={spec!r}: hf: needs a dataset name; valid forms: {CORPUS_FORMS}")
    return CorpusSpec("hf", name, config or None)
  raise ValueError(f"corpus={spec!r} is not a valid corpus; valid forms: {CORPUS_FORMS}")


# ---------------------------------------------------------------------------
# Hashing helpers (version- and platform-stable, unlike NumPy Generator streams)


def _hash64(*parts) -> int:
  h = hashlib.blake2b(digest_size=8)
  for p in parts:
    h.update(p if isinstance(p, bytes) else str(p).encode())
    h.update(b"\x1f")
  return int.from_bytes(h.digest(), "little")


def _permutation(n: int, *salt) -> list[int]:
  """Seeded permutation of range(n): sort indices by a keyed hash."""
  prefix = "|".join(map(str, salt))
  return sorted(range(n), key=lambda i: _hash64(prefix, i))


def in_eval_split(text: str, fraction: float) -> bool:
  """Whether a document belongs to the held-out split (a keyed hash of its text)."""
  return _hash64(b"split", text.encode("utf-8", "replace")) < fraction * 2.0**64


# ---------------------------------------------------------------------------
# Corpora


@dataclasses.dataclass(frozen=True)
class _Shard:
  key: str  # stable name (relative path / shard index): salts the in-shard permutation
  kind: str  # "text" | "jsonl" | "parquet" | "hf"
  path: str = ""
  index: int = 0


def _text_field(obj, where: str) -> str:
  if not isinstance(obj, dict) or "text" not in obj:
    keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
    raise ValueError(f"{where}: record has no 'text' field (has {keys})")
  return obj["text"] or ""


def _read_text(path: str, errors: str) -> str:
  """The file's text (universal newlines); invalid UTF-8 is an error naming the file
  unless errors="replace"."""
  try:
    with open(path, encoding="utf-8", errors=errors) as f:
      return f.read()
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not valid UTF-8 ({e.reason}); convert it to UTF-8") from None


class _LocalSource:
  """Text files, .jsonl and .parquet files: each file is a shard.

  A user's files must be valid UTF-8 (an error names the file otherwise), so no
  text is silently altered; the interpreter's own stdlib files are read as they always
  were, undecodable bytes replaced (`strict_utf8=False`).
  """

  streamed = False

  def __init__(
    self, shards: list[_Shard], fingerprint: str, description: str, *, strict_utf8: bool = True
  ):
    self.shards = shards
    self.fingerprint = fingerprint
    self.description = description
    self.decode_errors = "strict" if strict_utf8 else "replace"

  def load(self, shard: _Shard) -> list[str]:
    if shard.kind == "text":
      return [_read_text(shard.path, self.decode_errors)]
    if shard.kind == "jsonl":
      docs = []
      for line_no, line in enumerate(_read_text(shard.path, "strict").split("\n"), 1):
        if line.strip():
          try:
            record = json.loads(line)
          except json.JSONDecodeError as e:
            raise ValueError(f"{shard.path}:{line_no}: not a valid JSON line ({e.msg})") from None
          docs.append(_text_field(record, f"{shard.path}:{line_no}"))
      return docs
    import pyarrow.parquet as pq

    try:
      table = pq.read_table(shard.path)
    except Exception as e:  # pyarrow's errors name no file
      raise ValueError(f"{shard.path}: not a readable parquet file ({e})") from None
    if "text" not in table.column_names:
      raise ValueError(
        f"{shard.path}: parquet file has no 'text' column (has {table.column_names})"
      )
    return [t or "" for t in table.column("text").to_pylist()]

  def iter_docs(self, shard: _Shard, start: int, order_salt) -> Iterator[tuple[int, str]]:
    docs = self.load(shard)
    order = _permutation(len(docs), *order_salt, shard.key) if len(docs) > 1 else [0] * len(docs)
    for i in range(start, len(docs)):
      yield i, docs[order[i]]


def stdlib_source() -> _LocalSource:
  """The interpreter's own standard library .py files (sources + docstrings).

  Deterministic order: sorted relative paths under dirname(os.__file__);
  third-party folders (site-packages), caches and the stdlib's own test suites
  (deliberately malformed files) are skipped.
  """
  root = os.path.dirname(os.__file__)
  shards = []
  for folder, dirs, files in os.walk(root):
    dirs[:] = sorted(
      d for d in dirs if d not in _STDLIB_SKIP_DIRS and not d.startswith(("config-", "."))
    )
    for name in sorted(files):
      if name.endswith(".py") and not name.startswith("_sysconfigdata"):
        path = os.path.join(folder, name)
        shards.append(_Shard(os.path.relpath(path, root), "text", path))
  if not shards:
    raise ValueError(f"corpus=stdlib: no .py files found under {root}")
  fingerprint = (
    f"stdlib:{sys.version_info[:3]}:{len(shards)}:{sum(os.path.getsize(s.path) for s in shards)}"
  )
  return _LocalSource(
    shards, fingerprint, f"stdlib ({root}, {len(shards)} files)", strict_utf8=False
  )


def _files_source(path: str) -> _LocalSource:
  def kind_of(p):
    if p.endswith(".jsonl"):
      return "jsonl"
    if p.endswith(".parquet"):
      return "parquet"
    return "text"

  if os.path.isfile(path):
    files = [(os.path.basename(path), path)]
  else:
    files = []
    for folder, dirs, names in os.walk(path):
      dirs[:] = sorted(d for d in dirs if not d.startswith("."))
      for name in sorted(names):
        if not name.startswith(".") and name.endswith(TEXT_EXTENSIONS + (".jsonl", ".parquet")):
          full = os.path.join(folder, name)
          files.append((os.path.relpath(full, path), full))
    if not files:
      raise ValueError(
        f"corpus=files:{path}: folder holds no text ({', '.join(TEXT_EXTENSIONS)}), "
        ".jsonl or .parquet files"
      )
  shards = [_Shard(rel, kind_of(full), full) for rel, full in files]
  fingerprint = "files:" + ",".join(f"{rel}:{os.path.getsize(full)}" for rel, full in files)
  return _LocalSource(shards, fingerprint, f"files:{path} ({len(shards)} files)")


class _HFSource:
  """A HF `datasets` streaming dataset (split "train"); each data file is a shard."""

  streamed = True

  def __init__(self, name: str, config: str | None):
    try:
      import datasets
    except ImportError:
      raise ValueError(
        "corpus=hf:... needs the `data` extra: pip install 'muon_jax[data]'"
      ) from None
    try:
      ds = datasets.load_dataset(name, config, split="train", streaming=True)
    except Exception as e:  # the error types vary by datasets version / backend
      raise ValueError(
        f"corpus=hf:{name}{':' + config if config else ''}: could not open the dataset "
        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
      ) from None
    if ds.column_names is not None and "text" not in ds.column_names:
      raise ValueError(f"corpus=hf:{name}: dataset has no 'text' column (has {ds.column_names})")
    if ds.column_names is not None and len(ds.column_names) > 1:
      ds = ds.select_columns(["text"])  # parquet: read only the text column
    self._ds = ds
    n = getattr(ds, "num_shards", None) or getattr(ds, "n_shards")
    self.shards = [_Shard(str(i), "hf", index=i) for i in range(n)]
    self.fingerprint = f"hf:{name}:{config}:{n}"
    self.description = f"hf:{name}:{config} ({n} streamed shards)"

  def iter_docs(self, shard: _Shard, start: int, order_salt) -> Iterator[tuple[int, str]]:
    ds = self._ds.shard(num_shards=len(self.shards), index=shard.index)
    if start:
      ds = ds.skip(start)
    for i, row in enumerate(ds, start):
      yield i, _text_field(row, f"hf shard {shard.index} row {i}")


def _make_source(spec: CorpusSpec):
  if spec.kind == "stdlib":
    return stdlib_source()
  if spec.kind == "files":
    return _files_source(spec.path)
  return _HFSource(spec.path, spec.config)


class _DocStream:
  """Documents of one split in the seeded order, from a position, forever (epochs)."""

  def __init__(self, source, split: str, seed: int, eval_fraction: float, corpus: str):
    self.source = source
    self.seed = seed
    self.split = split
    self.corpus = corpus
    n = len(source.shards)
    if source.streamed and n >= 2:  # shard-level split: last shard is eval
      self.shard_ids = [n - 1] if split == "eval" else list(range(n - 1))
      self.doc_fraction = None
    else:
      self.shard_ids = list(range(n))
      self.doc_fraction = eval_fraction

  def _keep(self, text: str) -> bool:
    if not text:
      return False
    if self.doc_fraction is None:
      return True
    return in_eval_split(text, self.doc_fraction) == (self.split == "eval")

  def shard_order(self, epoch: int) -> list[int]:
    perm = _permutation(len(self.shard_ids), self.seed, self.split, epoch, "shards")
    return [self.shard_ids[i] for i in perm]

  def texts(
    self, epoch: int = 0, shard_pos: int = 0, doc: int = 0
  ) -> Iterator[tuple[tuple[int, int, int], str]]:
    """Yields ((epoch, shard_pos, doc), text) for every kept document from the position on."""
    while True:
      full_epoch, produced = shard_pos == 0 and doc == 0, False
      order = self.shard_order(epoch)
      for sp in range(shard_pos, len(order)):
        shard = self.source.shards[order[sp]]
        for d, text in self.source.iter_docs(shard, doc, (self.seed, self.split, epoch)):
          if self._keep(text):
            produced = True
            yield (epoch, sp, d), text
        doc = 0
      if full_epoch and not produced:
        raise ValueError(f"corpus={self.corpus}: no non-empty documents in split {self.split!r}")
      epoch, shard_pos = epoch + 1, 0
