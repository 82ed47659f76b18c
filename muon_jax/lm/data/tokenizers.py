"""How text becomes ids: the tokenizer spec, byte / `tokenizers` / SentencePiece tokenizers,
training a byte-level BPE on a bounded corpus sample, and its on-disk cache.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from muon_jax.infra.results import atomic_write_bytes
from muon_jax.lm.data.sources import _DocStream, _hash64, _make_source, validate_corpus_spec

TOKENIZER_FORMS = (
  "bytes | train:VOCAB (258 <= VOCAB <= 1048576) | PATH (tokenizer.json or SentencePiece .model)"
)
_EOS_CANDIDATES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|eos|>")
_TOKENIZER_FORMAT = 1  # bump when the training recipe changes (invalidates the cache)


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

    try:
      self.sp = spm.SentencePieceProcessor(model_file=path)
    except (OSError, RuntimeError) as e:
      raise ValueError(f"tokenizer={path}: not a SentencePiece model ({e})") from None
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
    try:
      tok = Tokenizer.from_file(path)
    except Exception as e:  # the tokenizers library's errors name no file
      raise ValueError(
        f"tokenizer cache {path} is damaged ({e}); delete it to train the tokenizer again"
      ) from None
  else:
    # Trained on the train split only (seed 0 order), so eval text never shapes the vocab.
    train_stream = _DocStream(stream.source, "train", 0, stream.doc_fraction or 0.0, stream.corpus)
    tok = train_bpe(tokenizer_sample(train_stream, sample_chars), arg)
    atomic_write_bytes(path, tok.to_str().encode())
  return HFTokenizer(tok, f"train:{arg}")
