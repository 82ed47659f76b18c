"""Packing: tokenized documents, each followed by EOS, cut into (batch_size, seq_len + 1) rows,
with a resumable position and an optional prefetch thread; `build_pipeline` assembles it all.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np

from muon_jax.lm.data.sources import _DocStream, _make_source, validate_corpus_spec
from muon_jax.lm.data.tokenizers import _make_tokenizer, validate_tokenizer_spec

_STATE_VERSION = 1


def _encoded_docs(
  texts: Iterator[tuple[tuple[int, int, int], str]], tokenizer, eos_id: int, chunk_size: int
) -> Iterator[tuple[tuple[int, int, int], np.ndarray]]:
  """(position, ids + [eos_id]) of each document of `texts`, encoded `chunk_size` at a time."""
  eos = np.array([eos_id], np.int32)
  while True:
    chunk = []
    for item in texts:
      chunk.append(item)
      if len(chunk) == chunk_size:
        break
    for (pos, _), ids in zip(chunk, tokenizer.encode_batch([t for _, t in chunk])):
      yield pos, np.concatenate([ids.astype(np.int32, copy=False), eos])


class _Prefetcher:
  """Background producer: tokenization (which releases the GIL) overlaps the training step.

  A daemon thread keeps up to `depth` results of `produce()` queued; an
  exception it raises is queued in their place for the consumer.
  """

  def __init__(self, produce, depth: int):
    self._stop, self._out = threading.Event(), queue.Queue(maxsize=depth)
    self._thread = threading.Thread(
      target=self._work, args=(produce,), name="muon_jax.lm.data.prefetch", daemon=True
    )
    self._thread.start()

  def _work(self, produce) -> None:
    try:
      while not self._stop.is_set():
        self._out.put(produce())  # blocks while the queue is full
    except BaseException as e:  # surfaced by the consumer's next()
      self._out.put(e)

  def get(self):
    """The next result, or the exception that ended the (then joined) thread."""
    item = self._out.get()
    if isinstance(item, BaseException):
      self._thread.join()
    return item

  def stop(self) -> None:
    """Ends the thread, dropping whatever it had queued."""
    self._stop.set()
    while self._thread.is_alive():  # unblock a pending put
      try:
        self._out.get(timeout=0.05)
      except queue.Empty:
        pass


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
    self._worker: _Prefetcher | None = None
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
      self._worker.stop()
      self._worker = None
      self.set_state(self._consumed)

  def __iter__(self):
    return self

  def __next__(self) -> np.ndarray:
    if not self._prefetch:
      return self._produce()
    if self._worker is None:
      self._worker = _Prefetcher(lambda: (self._produce(), self._position()), self._prefetch)
    item = self._worker.get()
    if isinstance(item, BaseException):
      self._worker = None
      self.set_state(self._consumed)
      raise item
    batch, self._consumed = item
    return batch

  def _produce(self) -> np.ndarray:
    """The next batch from the stream position (advances it)."""
    need = self.batch_size * (self.seq_len + 1)
    if self._gen is None:
      texts = self._stream.texts(*self._pos)
      self._gen = _encoded_docs(texts, self.tokenizer, self.eos_id, self._encode_chunk)
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
  """Corpus + tokenizer + packing -> `PackedBatches` (see the package docstring).

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
