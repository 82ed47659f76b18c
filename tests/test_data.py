"""Data pipeline (issue 7): exact packing, determinism, resume, tokenizers, HF path, bad specs."""

import json
import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the HF path is tested on local files only
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from muon_jax.lm import data


def _real_docs():
  """Real text: the paragraphs of a few stdlib modules' sources, deduplicated, in a fixed order."""
  docs = []
  for name in ("argparse.py", "textwrap.py", "json/decoder.py"):
    with open(os.path.join(os.path.dirname(os.__file__), name), encoding="utf-8") as f:
      docs += [p for p in f.read().split("\n\n") if len(p.strip()) > 20]
  return list(dict.fromkeys(docs))[:150]


DOCS = _real_docs()


@pytest.fixture(scope="module")
def jsonl_corpus(tmp_path_factory):
  """Two .jsonl shards and one .txt file (one document) under a folder."""
  root = tmp_path_factory.mktemp("corpus")
  half = len(DOCS) // 2
  for name, docs in (("a.jsonl", DOCS[:half]), ("b.jsonl", DOCS[half:-1])):
    with open(root / name, "w") as f:
      for d in docs:
        f.write(json.dumps({"text": d, "id": len(d)}) + "\n")
  (root / "c.txt").write_text(DOCS[-1])
  return f"files:{root}"


def _flat(it, n):
  return np.concatenate([next(it).ravel() for _ in range(n)])


def _split_docs(stream, eos, n_docs):
  """The first n_docs EOS-terminated segments of a token stream."""
  ends = np.flatnonzero(stream == eos)
  assert len(ends) >= n_docs, "stream too short for the test"
  starts = np.concatenate([[0], ends[:-1] + 1])
  return [stream[s:e] for s, e in zip(starts[:n_docs], ends[:n_docs])]


def _epoch_docs(it, split_docs_list):
  """Decoded documents of one full epoch, read off the packed batches."""
  total = sum(len(d.encode()) + 1 for d in split_docs_list)  # bytes tokenizer
  n = -(-total // (it.batch_size * (it.seq_len + 1))) + 1
  stream = _flat(it, n)
  segs = _split_docs(stream, it.eos_id, len(split_docs_list))
  # Exactly the epoch's tokens precede the last EOS of the epoch: nothing dropped or repeated.
  assert sum(len(s) + 1 for s in segs) == total
  return [it.tokenizer.decode(s) for s in segs], stream


def _splits(eval_fraction):
  ev = [d for d in DOCS if data.in_eval_split(d, eval_fraction)]
  return [d for d in DOCS if d not in ev], ev


def test_packing_is_exact_and_splits_are_disjoint(jsonl_corpus):
  train_docs, eval_docs = _splits(0.3)
  assert train_docs and eval_docs
  got = {}
  for split, want in (("train", train_docs), ("eval", eval_docs)):
    it = data.build_pipeline(
      jsonl_corpus, "bytes", seq_len=17, batch_size=3, seed=5, split=split, eval_fraction=0.3
    )
    b = next(it)
    assert b.shape == (3, 18) and b.dtype == np.int32 and it.vocab_size == 257 and it.eos_id == 256
    it.set_state({"epoch": 0, "shard": 0, "doc": 0, "token": 0})
    docs, stream = _epoch_docs(it, want)
    # Every document of the split exactly once, each followed by EOS; shuffled (not file order).
    assert sorted(docs) == sorted(want)
    got[split] = docs
    assert stream.min() >= 0 and stream.max() <= 256
  assert docs != want
  assert not set(got["train"]) & set(got["eval"])
  assert set(got["train"]) | set(got["eval"]) == set(DOCS)


def test_bytes_stream_matches_numpy_reference(jsonl_corpus):
  """Rows are consecutive slices of (doc bytes + EOS) concatenated in the pipeline's doc order."""
  it = data.build_pipeline(
    jsonl_corpus, "bytes", seq_len=31, batch_size=2, seed=1, eval_fraction=0.3
  )
  stream = _flat(it, 40)
  segs = _split_docs(stream, 256, 10)
  ref = np.concatenate(
    [np.append(np.frombuffer(it.tokenizer.decode(s).encode(), np.uint8), 256) for s in segs]
  )
  np.testing.assert_array_equal(stream[: len(ref)], ref)


def test_determinism_and_seed_dependence(jsonl_corpus):
  make = lambda seed: data.build_pipeline(
    jsonl_corpus, "bytes", seq_len=16, batch_size=4, seed=seed
  )
  a, b, c = _flat(make(3), 30), _flat(make(3), 30), _flat(make(4), 30)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize("cut", [0, 1, 7, 23, "epoch1"])
def test_resume_matches_uninterrupted(jsonl_corpus, cut):
  """Restoring a JSON round-tripped state yields exactly the batches of an uninterrupted run.

  "epoch1" cuts just after the first epoch's tokens, so it resumes in epoch 1 (a new shuffle).
  """
  epoch_batches = sum(len(d.encode()) + 1 for d in _splits(0.3)[0]) / 60
  if cut == "epoch1":
    cut = int(epoch_batches) + 2
  make = lambda: data.build_pipeline(
    jsonl_corpus, "bytes", seq_len=19, batch_size=3, seed=2, eval_fraction=0.3
  )
  ref = make()
  batches = [next(ref) for _ in range(cut + 5)]
  probe = make()
  for _ in range(cut):
    next(probe)
  state = json.loads(json.dumps(probe.get_state()))
  resumed = make()
  resumed.set_state(state)
  for want in batches[cut:]:
    np.testing.assert_array_equal(next(resumed), want)
  assert state["epoch"] == (cut > epoch_batches)


def test_state_is_shape_independent_and_checked(jsonl_corpus):
  it = data.build_pipeline(jsonl_corpus, "bytes", seq_len=10, batch_size=2, seed=0)
  full = _flat(it, 30)
  first = data.build_pipeline(jsonl_corpus, "bytes", seq_len=10, batch_size=2, seed=0)
  head = _flat(first, 9)
  other = data.build_pipeline(jsonl_corpus, "bytes", seq_len=6, batch_size=5, seed=0)
  other.set_state(first.get_state())
  np.testing.assert_array_equal(np.concatenate([head, _flat(other, 5)]), full[: len(head) + 175])
  with pytest.raises(ValueError, match="seed"):
    data.build_pipeline(jsonl_corpus, "bytes", seq_len=10, batch_size=2, seed=1).set_state(
      first.get_state()
    )


def test_stdlib_corpus_is_real_python_source():
  it = data.build_pipeline("stdlib", "bytes", seq_len=64, batch_size=2, seed=0)
  first = next(it).ravel()
  shards = data.stdlib_source().shards
  assert len(shards) > 100
  text = it.tokenizer.decode(
    first[: np.flatnonzero(first == it.eos_id)[0]] if it.eos_id in first else first
  )
  sources = [open(s.path, encoding="utf-8", errors="replace").read() for s in shards]
  assert any(src.startswith(text) for src in sources)
  ev = data.build_pipeline("stdlib", "bytes", seq_len=64, batch_size=2, seed=0, split="eval")
  assert next(ev).shape == (2, 65)


def test_trained_bpe_roundtrip_cache_and_path_form(tmp_path):
  cache = str(tmp_path / "cache")
  it = data.build_pipeline(
    "stdlib",
    "train:600",
    seq_len=64,
    batch_size=2,
    seed=0,
    cache_dir=cache,
    tokenizer_sample_chars=400_000,
  )
  tok = it.tokenizer
  assert it.vocab_size == 600 and it.eos_id == 0
  text = open(os.path.join(os.path.dirname(os.__file__), "textwrap.py"), encoding="utf-8").read()
  ids = tok.encode_batch([text])[0]
  assert tok.decode(ids) == text and len(ids) < len(text.encode()) / 2  # real compression
  assert it.eos_id not in ids
  # EOS separates documents in the packed stream and each segment decodes to real text.
  stream = _flat(it, 300)
  segs = _split_docs(stream, it.eos_id, 2)
  sources = [
    open(s.path, encoding="utf-8", errors="replace").read() for s in data.stdlib_source().shards
  ]
  assert all(tok.decode(s) in sources for s in segs)
  (cached,) = os.listdir(os.path.join(cache, "tokenizers"))
  # Cache hit gives the same tokenizer; the PATH form loads the same file.
  again = data.build_pipeline(
    "stdlib",
    "train:600",
    seq_len=64,
    batch_size=2,
    seed=0,
    cache_dir=cache,
    tokenizer_sample_chars=400_000,
  )
  via_path = data.build_pipeline(
    "stdlib", os.path.join(cache, "tokenizers", cached), seq_len=64, batch_size=2, seed=0
  )
  for other in (again, via_path):
    np.testing.assert_array_equal(other.tokenizer.encode_batch([text])[0], ids)
    assert other.eos_id == 0 and other.vocab_size == 600
  np.testing.assert_array_equal(_flat(via_path, 300), stream)


def test_sentencepiece_model_path_roundtrip(tmp_path, jsonl_corpus):
  model = data.train_sentencepiece(DOCS, 400, str(tmp_path / "sp.model"))
  it = data.build_pipeline(jsonl_corpus, model, seq_len=32, batch_size=2, seed=0)
  assert it.vocab_size >= 400 and 0 <= it.eos_id < it.vocab_size
  for doc in DOCS[:20]:
    ids = it.tokenizer.encode_batch([doc])[0]
    assert it.tokenizer.decode(ids) == doc and it.eos_id not in ids


def _write_parquet_shards(root, docs_per_shard):
  import pyarrow as pa
  import pyarrow.parquet as pq

  os.makedirs(root, exist_ok=True)
  for i, docs in enumerate(docs_per_shard):
    pq.write_table(
      pa.table({"text": docs, "n": list(range(len(docs)))}),
      os.path.join(root, f"part-{i:02d}.parquet"),
    )


def test_hf_streaming_on_local_parquet(tmp_path):
  pytest.importorskip("datasets")
  shards = [DOCS[0:40], DOCS[40:80], DOCS[80:120]]
  _write_parquet_shards(str(tmp_path / "pq"), shards)
  spec = f"hf:{tmp_path / 'pq'}"
  it = data.build_pipeline(spec, "bytes", seq_len=23, batch_size=2, seed=9)
  assert it.shard_count == 3
  docs, _ = _epoch_docs(it, shards[0] + shards[1])  # the last shard is held out for eval
  assert sorted(docs) == sorted(shards[0] + shards[1])
  # Shard-level shuffle with in-shard stream order: docs come shard by shard, in file order.
  first = shards[0] if docs[0] == shards[0][0] else shards[1]
  assert docs[:40] == first
  ev = data.build_pipeline(spec, "bytes", seq_len=23, batch_size=2, seed=9, split="eval")
  ev_docs, _ = _epoch_docs(ev, shards[2])
  assert ev_docs == shards[2]
  # Resume mid-shard (doc skipping inside a streamed shard).
  ref = data.build_pipeline(spec, "bytes", seq_len=23, batch_size=2, seed=9)
  want = [next(ref) for _ in range(70)]
  cut = data.build_pipeline(spec, "bytes", seq_len=23, batch_size=2, seed=9)
  for _ in range(55):
    next(cut)
  state = cut.get_state()
  assert state["doc"] > 0
  resumed = data.build_pipeline(spec, "bytes", seq_len=23, batch_size=2, seed=9)
  resumed.set_state(json.loads(json.dumps(state)))
  for w in want[55:]:
    np.testing.assert_array_equal(next(resumed), w)


def test_hf_streaming_single_jsonl_uses_document_split(tmp_path):
  pytest.importorskip("datasets")
  os.makedirs(tmp_path / "js")
  with open(tmp_path / "js" / "data.jsonl", "w") as f:
    for d in DOCS:
      f.write(json.dumps({"text": d}) + "\n")
  train_docs, eval_docs = _splits(0.3)
  for split, want in (("train", train_docs), ("eval", eval_docs)):
    it = data.build_pipeline(
      f"hf:{tmp_path / 'js'}",
      "bytes",
      seq_len=40,
      batch_size=2,
      seed=0,
      split=split,
      eval_fraction=0.3,
    )
    docs, _ = _epoch_docs(it, want)
    assert docs == want  # one streamed shard: stored order, hash-split documents


@pytest.mark.parametrize(
  "spec, match",
  [
    ("web", "valid forms: stdlib | files:PATH | hf:NAME"),
    ("files:", "needs a path"),
    ("files:/no/such/dir", "no such file"),
    ("hf:", "needs a dataset name"),
  ],
)
def test_bad_corpus_specs(spec, match):
  with pytest.raises(ValueError, match=match) as e:
    data.validate_corpus_spec(spec)
  assert "\n" not in str(e.value) and str(e.value).startswith(f"corpus={spec!r}")


@pytest.mark.parametrize(
  "spec, match",
  [
    ("words", "no such file"),
    ("train:abc", "must be an integer"),
    ("train:100", "out of range"),
    ("/no/such/tokenizer.json", "no such file"),
  ],
)
def test_bad_tokenizer_specs(spec, match):
  with pytest.raises(ValueError, match=match) as e:
    data.validate_tokenizer_spec(spec)
  assert "\n" not in str(e.value) and "bytes | train:VOCAB" in str(e.value)
  assert str(e.value).startswith(f"tokenizer={spec!r}")


def test_bad_corpora_give_clear_errors(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "a.txt").write_text("")
  with pytest.raises(ValueError, match="no non-empty documents"):
    next(data.build_pipeline(f"files:{tmp_path / 'empty'}", seq_len=8, batch_size=1, seed=0))
  with pytest.raises(
    ValueError, match="no non-empty documents"
  ):  # raised through the prefetch thread
    next(
      data.build_pipeline(
        f"files:{tmp_path / 'empty'}", seq_len=8, batch_size=1, seed=0, prefetch=2
      )
    )
  (tmp_path / "binary").mkdir()
  (tmp_path / "binary" / "x.bin").write_bytes(b"\0\1")
  with pytest.raises(ValueError, match="holds no text"):
    data.build_pipeline(f"files:{tmp_path / 'binary'}", seq_len=8, batch_size=1, seed=0)
  bad = tmp_path / "bad.jsonl"
  bad.write_text(json.dumps({"body": "x"}) + "\n")
  with pytest.raises(ValueError, match="no 'text' field"):
    next(data.build_pipeline(f"files:{bad}", seq_len=8, batch_size=1, seed=0))
  with pytest.raises(ValueError, match="could not open"):
    data.build_pipeline(f"hf:{tmp_path / 'missing'}", seq_len=8, batch_size=1, seed=0)
  with pytest.raises(ValueError, match="split"):
    data.build_pipeline("stdlib", seq_len=8, batch_size=1, seed=0, split="test")
  with pytest.raises(ValueError, match="seq_len"):
    data.build_pipeline("stdlib", seq_len=0, batch_size=1, seed=0)


def test_prefetch_thread_gives_same_batches_and_states(jsonl_corpus):
  make = lambda p: data.build_pipeline(
    jsonl_corpus, "bytes", seq_len=13, batch_size=2, seed=4, prefetch=p
  )
  plain, ahead = make(0), make(3)
  for _ in range(12):
    np.testing.assert_array_equal(next(ahead), next(plain))
    assert ahead.get_state() == plain.get_state()
  state = ahead.get_state()
  ahead.set_state(state)  # stops the thread, discards prefetched batches, restarts from `state`
  np.testing.assert_array_equal(next(ahead), next(plain))
  ahead.close()
  assert ahead.get_state() == plain.get_state()
  np.testing.assert_array_equal(next(ahead), next(plain))
  ahead.close()
  with pytest.raises(ValueError, match="prefetch"):
    make(-1)


def test_fineweb_edu_spec_parses_and_fails_cleanly_offline():
  assert data.validate_corpus_spec(data.FINEWEB_EDU) == data.CorpusSpec(
    "hf", "HuggingFaceFW/fineweb-edu", "sample-100BT"
  )
  if os.environ.get("HF_HUB_OFFLINE") != "1":
    pytest.skip("only checked where the hub is switched off (never downloads)")
  with pytest.raises(ValueError, match="could not open the dataset") as e:
    data.build_pipeline(data.FINEWEB_EDU, seq_len=8, batch_size=1, seed=0)
  assert "\n" not in str(e.value)
