"""Benchmark: tokens/s of tokenization + packing for each tokenizer kind (issue 7).

  python -m experiments.bench_data --out_dir out/bench_data

For each tokenizer spec (and a SentencePiece .model trained here and passed in
the PATH form) it builds the pipeline on --corpus (fresh tokenizer cache under
--out_dir, so "train:VOCAB" build time includes training), pulls batches of
(batch_size, seq_len + 1) until --min_tokens tokens have been packed and
reports tokens/s, plus the ratio to the byte-level baseline measured in the
same process. Writes bench_data.json.
"""

import os
import time

from absl import app, flags, logging

from muon_jax import validate

flags.DEFINE_string("out_dir", "out/bench_data", "Where bench_data.json (and the tokenizer cache) go.")
flags.DEFINE_string("corpus", "stdlib", "Corpus spec: stdlib | files:PATH | hf:NAME[:CONFIG].")
flags.DEFINE_list("tokenizers", ["bytes", "train:4096", "train:32000"], "Tokenizer specs to time.")
flags.DEFINE_integer("sentencepiece_vocab", 4096, "Also time a SentencePiece .model of this vocab "
                     "(PATH form); 0 skips it.")
flags.DEFINE_integer("seq_len", 1024, "Packed sequence length, >= 1.")
flags.DEFINE_integer("batch_size", 8, "Rows per batch, >= 1.")
flags.DEFINE_integer("min_tokens", 2_000_000, "Tokens packed per measurement, >= 1.")
flags.DEFINE_integer("prefetch", 0, "Prefetch depth passed to build_pipeline, >= 0.")
flags.DEFINE_integer("seed", 0, "Data order seed.")
FLAGS = flags.FLAGS


def run():
  from muon_jax import data
  data.validate_corpus_spec(FLAGS.corpus)
  for spec in FLAGS.tokenizers:
    data.validate_tokenizer_spec(spec)
  validate.check_range("sentencepiece_vocab", FLAGS.sentencepiece_vocab, low=0)
  validate.check_range("seq_len", FLAGS.seq_len, low=1)
  validate.check_range("batch_size", FLAGS.batch_size, low=1)
  validate.check_range("min_tokens", FLAGS.min_tokens, low=1)
  validate.check_range("prefetch", FLAGS.prefetch, low=0)

  from muon_jax import results
  cache = os.path.join(FLAGS.out_dir, "tokenizer_cache")
  specs = list(FLAGS.tokenizers)
  if FLAGS.sentencepiece_vocab:
    t0 = time.perf_counter()
    os.makedirs(cache, exist_ok=True)
    model = data.train_sentencepiece(data.corpus_sample(FLAGS.corpus), FLAGS.sentencepiece_vocab,
                                     os.path.join(cache, f"sp{FLAGS.sentencepiece_vocab}.model"))
    logging.info("trained SentencePiece %d in %.1fs", FLAGS.sentencepiece_vocab, time.perf_counter() - t0)
    specs.append(model)

  rows = []
  for spec in specs:
    t0 = time.perf_counter()
    it = data.build_pipeline(FLAGS.corpus, spec, seq_len=FLAGS.seq_len, batch_size=FLAGS.batch_size,
                             seed=FLAGS.seed, cache_dir=cache, prefetch=FLAGS.prefetch)
    build_s = time.perf_counter() - t0
    n_tokens, t0 = 0, time.perf_counter()
    while n_tokens < FLAGS.min_tokens:
      n_tokens += next(it).size
    elapsed = time.perf_counter() - t0
    it.close()
    rows.append({"tokenizer": spec, "kind": data.validate_tokenizer_spec(spec)[0],
                 "vocab_size": it.vocab_size, "build_s": build_s, "tokens": n_tokens,
                 "seconds": elapsed, "tokens_per_s": n_tokens / elapsed})
    logging.info("%s: vocab %d, build %.2fs, %.3g tokens/s", spec, it.vocab_size, build_s, rows[-1]["tokens_per_s"])

  base = next((r["tokens_per_s"] for r in rows if r["tokenizer"] == "bytes"), None)
  for r in rows:
    r["ratio_vs_bytes"] = r["tokens_per_s"] / base if base else None
  result = {"corpus": FLAGS.corpus, "seq_len": FLAGS.seq_len, "batch_size": FLAGS.batch_size,
            "prefetch": FLAGS.prefetch, "cpu_count": os.cpu_count(), "results": rows}
  results.atomic_write_json(os.path.join(FLAGS.out_dir, "bench_data.json"), result)
  for r in rows:
    ratio = f"{r['ratio_vs_bytes']:.4f}x bytes" if base else ""
    print(f"{r['tokenizer']:>40s}  vocab {r['vocab_size']:6d}  build {r['build_s']:6.2f}s  "
          f"{r['tokens_per_s']:12.4g} tokens/s  {ratio}")


def main(argv):
  del argv
  validate.run_or_exit(run)


if __name__ == "__main__":
  app.run(main)
