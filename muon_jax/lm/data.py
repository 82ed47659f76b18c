"""Text data for the LLaMA pre-training runs: corpus -> tokenizer -> packed batches.

Paper App 12: LLaMA-160M is pre-trained on FineWeb-Edu (`sample-100BT`,
streamed) with tokens packed to a maximum sequence length of 1024. This module
serves that path on a GPU node (`hf:HuggingFaceFW/fineweb-edu:sample-100BT`) and
a fully offline one everywhere else (`stdlib`: the Python standard library's
own sources and docstrings, present on every machine with an interpreter).

One place decides where text comes from and how it is tokenized:

  corpus spec     "stdlib" | "files:PATH" | "hf:NAME[:CONFIG]"
  tokenizer spec  "bytes" | "train:VOCAB" | "PATH" (tokenizer.json or SentencePiece .model)

`build_pipeline` returns a `PackedBatches` iterator of int32 arrays of shape
(batch_size, seq_len + 1): the documents of one split, each followed by EOS,
concatenated in a seeded order and cut into consecutive rows (inputs are
[:, :-1], targets [:, 1:]). Every token of the stream appears exactly once.

Data model. A corpus is an ordered list of shards (a file, or one file of a
streamed HF dataset); a shard holds documents. Order for (seed, epoch): the
shards are permuted, and inside a local shard the documents are permuted too
(a streamed shard is read in its stored order). The position in the stream,
(epoch, shard, doc, token), is the iterator state: four integers, the same for
any batch shape, stored in checkpoints and restored by `set_state`.

Splits. "eval" is held out from "train" by a hash of each document's text
(`eval_fraction` of documents; identical texts always land in the same split).
A streamed HF corpus with >= 2 shards holds out its last shard instead, so the
eval stream does not read 1/eval_fraction times more data than it keeps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from typing import Iterator, Sequence

import numpy as np

from muon_jax.infra.results import atomic_write_bytes

CORPUS_FORMS = "stdlib | files:PATH | hf:NAME[:CONFIG]"
TOKENIZER_FORMS = (
  "bytes | train:VOCAB (258 <= VOCAB <= 1048576) | PATH (tokenizer.json or SentencePiece .model)"
)
FINEWEB_EDU = "hf:HuggingFaceFW/fineweb-edu:sample-100BT"
TEXT_EXTENSIONS = (".txt", ".text", ".md", ".rst", ".py", ".tex", ".html", ".htm")
_STDLIB_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}
_EOS_CANDIDATES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|eos|>")
_TOKENIZER_FORMAT = 1  # bump when the training recipe changes (invalidates the cache)
_STATE_VERSION = 1


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


def validate_tokenizer_spec(spec: str) -> tuple[str, object]:
  """Parses a tokenizer spec into ("bytes", None) | ("train", vocab) | ("path", file)."""
  spec = str(spec).strip()
  if spec == "bytes":
    return "bytes", None
  if spec.startswith("train:"):
    try:
      vocab = int(spec[len("train:") :])
    except ValueError:
      raise ValueError(
        f"tokenizer={spec!r}: VOCAB must be an integer; valid forms: {TOKENIZER_FORMS}"
      ) from None
    if not 258 <= vocab <= 1 << 20:
      raise ValueError(
        f"tokenizer={spec!r}: VOCAB={vocab} out of range; valid forms: {TOKENIZER_FORMS}"
      )
    return "train", vocab
  path = spec
  if os.path.isdir(path):
    for name in ("tokenizer.json", "tokenizer.model"):
      if os.path.isfile(os.path.join(path, name)):
        return "path", os.path.join(path, name)
    raise ValueError(
      f"tokenizer={spec!r}: folder has no tokenizer.json or tokenizer.model; valid forms: {TOKENIZER_FORMS}"
    )
  if os.path.isfile(path) and path.endswith((".json", ".model")):
    return "path", path
  reason = "not a .json/.model file" if os.path.exists(path) else "no such file"
  raise ValueError(f"tokenizer={spec!r} ({reason}); valid forms: {TOKENIZER_FORMS}")


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


class _LocalSource:
  """Text files, .jsonl and .parquet files: each file is a shard."""

  streamed = False

  def __init__(self, shards: list[_Shard], fingerprint: str, description: str):
    self.shards = shards
    self.fingerprint = fingerprint
    self.description = description

  def load(self, shard: _Shard) -> list[str]:
    if shard.kind == "text":
      with open(shard.path, encoding="utf-8", errors="replace") as f:
        return [f.read()]
    if shard.kind == "jsonl":
      docs = []
      with open(shard.path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
          if line.strip():
            docs.append(_text_field(json.loads(line), f"{shard.path}:{line_no}"))
      return docs
    import pyarrow.parquet as pq

    table = pq.read_table(shard.path)
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
  return _LocalSource(shards, fingerprint, f"stdlib ({root}, {len(shards)} files)")


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


# ---------------------------------------------------------------------------
# Tokenizers


class ByteTokenizer:
  """UTF-8 bytes 0..255 plus EOS = 256 (vocab 257)."""

  name = "bytes"
  vocab_size = 257
  eos_id = 256

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    return [np.frombuffer(t.encode("utf-8"), np.uint8).astype(np.int32) for t in texts]

  def decode(self, ids) -> str:
    ids = np.asarray(ids)
    return bytes(ids[ids < 256].astype(np.uint8).tolist()).decode("utf-8", errors="replace")


class HFTokenizer:
  """A `tokenizers` Tokenizer (tokenizer.json); EOS is an existing end token or an added "<eos>"."""

  def __init__(self, tok, name: str):
    self.tok = tok
    self.name = name
    vocab = tok.get_vocab(with_added_tokens=True)
    eos = next((t for t in _EOS_CANDIDATES if t in vocab), None)
    if eos is None:
      tok.add_special_tokens(["<eos>"])
      eos = "<eos>"
    self.eos_id = tok.token_to_id(eos)
    self.vocab_size = tok.get_vocab_size(with_added_tokens=True)

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    return [
      np.asarray(e.ids, np.int32)
      for e in self.tok.encode_batch(list(texts), add_special_tokens=False)
    ]

  def decode(self, ids) -> str:
    ids = [int(i) for i in ids if int(i) != self.eos_id]
    return self.tok.decode(ids, skip_special_tokens=False)


class SentencePieceTokenizer:
  """A SentencePiece .model; EOS is the model's eos id, or one extra id past its vocab."""

  def __init__(self, path: str):
    import sentencepiece as spm

    self.sp = spm.SentencePieceProcessor(model_file=path)
    self.name = path
    n = self.sp.get_piece_size()
    self.eos_id = self.sp.eos_id() if self.sp.eos_id() >= 0 else n
    self.vocab_size = max(n, self.eos_id + 1)

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    return [np.asarray(ids, np.int32) for ids in self.sp.encode(list(texts), out_type=int)]

  def decode(self, ids) -> str:
    return self.sp.decode([int(i) for i in ids if int(i) != self.eos_id])


def _default_cache_dir() -> str:
  return os.environ.get("MUON_JAX_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "muon_jax"
  )


def tokenizer_sample(stream: _DocStream, max_chars: int) -> list[str]:
  """The first `max_chars` characters of the stream's order (the last document cut)."""
  texts, total = [], 0
  for _, text in stream.texts():
    texts.append(text[: max_chars - total])
    total += len(texts[-1])
    if total >= max_chars:
      break
  return texts


def corpus_sample(
  corpus: str = "stdlib", max_chars: int = 4_000_000, *, eval_fraction: float = 0.02
) -> list[str]:
  """The bounded train-split text sample that "train:VOCAB" tokenizers are trained on."""
  stream = _DocStream(_make_source(validate_corpus_spec(corpus)), "train", 0, eval_fraction, corpus)
  return tokenizer_sample(stream, max_chars)


def train_bpe(texts: Sequence[str], vocab_size: int):
  """Byte-level BPE (GPT-2 style pre-tokenizer, lossless) with "<eos>" as id 0."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
    vocab_size=vocab_size,
    special_tokens=["<eos>"],
    show_progress=False,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
  )
  tok.train_from_iterator(texts, trainer=trainer)
  return tok


def train_sentencepiece(texts: Sequence[str], vocab_size: int, model_path: str) -> str:
  """Trains a lossless SentencePiece BPE (identity normalization, byte fallback) on lines of `texts`.

  Writes `model_path` (must end in .model) and returns it. Used for the PATH
  tokenizer form (a local .model) in tests and the data benchmark.
  """
  import sentencepiece as spm

  if not model_path.endswith(".model"):
    raise ValueError(f"model_path must end in .model, got {model_path!r}")
  lines = [line for t in texts for line in t.splitlines() if line.strip()]
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(lines),
    model_prefix=model_path[: -len(".model")],
    vocab_size=vocab_size,
    model_type="bpe",
    byte_fallback=True,
    normalization_rule_name="identity",
    add_dummy_prefix=False,
    remove_extra_whitespaces=False,
    split_digits=True,
    max_sentence_length=1 << 16,
    num_threads=os.cpu_count() or 1,
    minloglevel=2,
  )
  return model_path


def _make_tokenizer(kind: str, arg, stream: _DocStream, cache_dir: str | None, sample_chars: int):
  if kind == "bytes":
    return ByteTokenizer()
  if kind == "path":
    if arg.endswith(".model"):
      return SentencePieceTokenizer(arg)
    from tokenizers import Tokenizer

    try:
      return HFTokenizer(Tokenizer.from_file(arg), arg)
    except Exception as e:
      raise ValueError(f"tokenizer={arg!r}: not a tokenizers JSON file ({e})") from None
  # "train:VOCAB": cached on disk, keyed by the corpus contents fingerprint and the recipe.
  from tokenizers import Tokenizer

  key = _hash64(
    _TOKENIZER_FORMAT, stream.source.fingerprint, arg, sample_chars, stream.doc_fraction
  )
  path = os.path.join(cache_dir or _default_cache_dir(), "tokenizers", f"bpe{arg}-{key:016x}.json")
  if os.path.exists(path):
    tok = Tokenizer.from_file(path)
  else:
    # Trained on the train split only (seed 0 order), so eval text never shapes the vocab.
    train_stream = _DocStream(stream.source, "train", 0, stream.doc_fraction or 0.0, stream.corpus)
    tok = train_bpe(tokenizer_sample(train_stream, sample_chars), arg)
    atomic_write_bytes(path, tok.to_str().encode())
  return HFTokenizer(tok, f"train:{arg}")


# ---------------------------------------------------------------------------
# Packing


class PackedBatches:
  """Iterator of packed (batch_size, seq_len + 1) int32 token arrays.

  The token stream is: for each document of the split in seeded order, its
  tokens followed by `eos_id`; consecutive batch_size * (seq_len + 1) tokens
  form one batch (row-major), so no token is dropped or repeated. State is the
  stream position of the next unread token: {"epoch", "shard", "doc", "token"}
  (plus the identity of the stream, checked by `set_state`).
  """

  def __init__(
    self,
    stream: _DocStream,
    tokenizer,
    *,
    seq_len: int,
    batch_size: int,
    tokenizer_spec: str,
    encode_chunk: int = 64,
    prefetch: int = 0,
  ):
    self._prefetch = prefetch
    self._worker = None
    self._stream = stream
    self.tokenizer = tokenizer
    self.seq_len = seq_len
    self.batch_size = batch_size
    self.vocab_size = int(tokenizer.vocab_size)
    self.eos_id = int(tokenizer.eos_id)
    self._identity = {
      "corpus": stream.corpus,
      "tokenizer": tokenizer_spec,
      "seed": stream.seed,
      "split": stream.split,
    }
    self._encode_chunk = encode_chunk
    self.set_state({"epoch": 0, "shard": 0, "doc": 0, "token": 0, **self._identity})

  @property
  def shard_count(self) -> int:
    """Shards (files) of the corpus split this iterator streams."""
    return len(self._stream.source.shards)

  @property
  def description(self) -> str:
    return (
      f"{self._stream.source.description}, split={self._stream.split}, tokenizer="
      f"{self._identity['tokenizer']} (vocab {self.vocab_size}, eos {self.eos_id})"
    )

  def _docs(self, epoch, shard, doc) -> Iterator[tuple[tuple[int, int, int], np.ndarray]]:
    """Tokenized documents (with trailing EOS), encoded a chunk at a time."""
    texts = self._stream.texts(epoch, shard, doc)
    eos = np.array([self.eos_id], np.int32)
    while True:
      chunk = []
      for item in texts:
        chunk.append(item)
        if len(chunk) == self._encode_chunk:
          break
      for (pos, _), ids in zip(chunk, self.tokenizer.encode_batch([t for _, t in chunk])):
        yield pos, np.concatenate([ids.astype(np.int32, copy=False), eos])

  def _position(self) -> dict:
    epoch, shard, doc = self._pos
    return {
      "version": _STATE_VERSION,
      **self._identity,
      "epoch": epoch,
      "shard": shard,
      "doc": doc,
      "token": self._offset,
    }

  def get_state(self) -> dict:
    """JSON-serializable position after the last batch returned by next()."""
    return dict(self._consumed) if self._prefetch else self._position()

  def set_state(self, state: dict) -> None:
    for k, v in self._identity.items():
      if k in state and state[k] != v:
        raise ValueError(f"data state is for {k}={state[k]!r}, this pipeline has {k}={v!r}")
    self.close()
    self._pos = (int(state["epoch"]), int(state["shard"]), int(state["doc"]))
    self._offset = int(state["token"])
    self._cur = None  # tokens of the document at self._pos; loaded lazily
    self._gen = None
    self._consumed = self._position()

  def close(self) -> None:
    """Stops the prefetch thread (if any); the next next() restarts it from get_state()."""
    if self._worker is not None:
      import queue

      thread, stop, out = self._worker
      stop.set()
      while thread.is_alive():  # unblock a pending put
        try:
          out.get(timeout=0.05)
        except queue.Empty:
          pass
      self._worker = None
      self.set_state(self._consumed)

  def __iter__(self):
    return self

  def __next__(self) -> np.ndarray:
    if not self._prefetch:
      return self._produce()
    if self._worker is None:
      self._start_worker()
    item = self._worker[2].get()
    if isinstance(item, BaseException):
      self._worker[0].join()
      self._worker = None
      self.set_state(self._consumed)
      raise item
    batch, self._consumed = item
    return batch

  def _start_worker(self) -> None:
    """Background producer: tokenization (which releases the GIL) overlaps the training step."""
    import queue
    import threading

    stop, out = threading.Event(), queue.Queue(maxsize=self._prefetch)

    def work():
      try:
        while not stop.is_set():
          out.put((self._produce(), self._position()))  # blocks while the queue is full
      except BaseException as e:  # surfaced by the consumer's next()
        out.put(e)

    thread = threading.Thread(target=work, name="muon_jax.lm.data.prefetch", daemon=True)
    self._worker = (thread, stop, out)
    thread.start()

  def _produce(self) -> np.ndarray:
    need = self.batch_size * (self.seq_len + 1)
    if self._gen is None:
      self._gen = self._docs(*self._pos)
      self._pos, self._cur = next(self._gen)
    parts = []
    while need:
      if self._offset >= len(self._cur):
        self._pos, self._cur = next(self._gen)
        self._offset = 0
      take = min(need, len(self._cur) - self._offset)
      parts.append(self._cur[self._offset : self._offset + take])
      self._offset += take
      need -= take
    return np.concatenate(parts).reshape(self.batch_size, self.seq_len + 1)


def build_pipeline(
  corpus: str = "stdlib",
  tokenizer: str = "bytes",
  *,
  seq_len: int,
  batch_size: int,
  seed: int,
  split: str = "train",
  cache_dir: str | None = None,
  eval_fraction: float = 0.02,
  tokenizer_sample_chars: int = 4_000_000,
  prefetch: int = 0,
) -> PackedBatches:
  """Corpus + tokenizer + packing -> `PackedBatches` (see module docstring).

  Args:
    corpus: "stdlib" | "files:PATH" | "hf:NAME[:CONFIG]" (FineWeb-Edu: FINEWEB_EDU).
    tokenizer: "bytes" | "train:VOCAB" | "PATH".
    seq_len, batch_size: each batch is int32 (batch_size, seq_len + 1).
    seed: document/shard order (the tokenizer does not depend on it).
    split: "train" or "eval" (disjoint held-out documents / shard).
    cache_dir: where trained tokenizers are cached (default $MUON_JAX_CACHE or ~/.cache/muon_jax).
    eval_fraction: share of documents held out for "eval" by text hash.
    tokenizer_sample_chars: bound on the text that "train:VOCAB" trains on.
    prefetch: if > 0, a background thread keeps up to this many batches ready
      (same batches and states as prefetch=0; call .close() to stop it early).
  """
  if split not in ("train", "eval"):
    raise ValueError(f"split={split!r} is not allowed; choose from train, eval")
  for name, v in (("seq_len", seq_len), ("batch_size", batch_size)):
    if not isinstance(v, (int, np.integer)) or v < 1:
      raise ValueError(f"{name}={v!r} is out of range; allowed [1, inf)")
  if not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
    raise ValueError(f"prefetch={prefetch!r} is out of range; allowed [0, inf)")
  if not 0.0 < eval_fraction < 1.0:
    raise ValueError(f"eval_fraction={eval_fraction} is out of range; allowed (0, 1)")
  spec = validate_corpus_spec(corpus)
  tok_kind, tok_arg = validate_tokenizer_spec(tokenizer)
  stream = _DocStream(_make_source(spec), split, int(seed), eval_fraction, str(corpus).strip())
  tok = _make_tokenizer(tok_kind, tok_arg, stream, cache_dir, tokenizer_sample_chars)
  return PackedBatches(
    stream,
    tok,
    seq_len=int(seq_len),
    batch_size=int(batch_size),
    tokenizer_spec=str(tokenizer).strip(),
    prefetch=int(prefetch),
  )
