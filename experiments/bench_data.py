"""Benchmark: tokens/s of tokenization + packing for each tokenizer kind.

  python -m experiments.bench_data --out_dir out/bench_data

For each tokenizer spec (and a SentencePiece .model trained here and passed in
the PATH form) it builds the pipeline on --corpus (fresh tokenizer cache under
--out_dir, so "train:VOCAB" build time includes training), pulls batches of
(batch_size, seq_len + 1) until --min_tokens tokens have been packed and
reports tokens/s, plus the ratio to the byte-level baseline measured in the
same process. Writes bench_data.json.
"""

import dataclasses
import os
import time

from absl import flags, logging

from experiments import cli
from muon_jax.lm import data
from muon_jax.infra.config import field


@dataclasses.dataclass(frozen=True)
class BenchDataConfig:
  """What the data benchmark times."""

  corpus: str = field("stdlib", "corpus spec: stdlib | files:PATH | hf:NAME[:CONFIG]")
  tokenizers: tuple[str, ...] = field(
    ("bytes", "train:4096", "train:32000"), "tokenizer specs to time"
  )
  sentencepiece_vocab: int = field(
    4096, "also time a SentencePiece .model of this vocab (PATH form); 0 skips it", low=0
  )
  seq_len: int = field(1024, "packed sequence length", low=1)
  batch_size: int = field(8, "rows per batch", low=1)
  min_tokens: int = field(2_000_000, "tokens packed per measurement", low=1)
  prefetch: int = field(0, "prefetch depth passed to build_pipeline", low=0)
  seed: int = field(0, "data order seed", low=0)


FLAGS = cli.define_flags(BenchDataConfig)
flags.DEFINE_string(
  "out_dir", "out/bench_data", "Where bench_data.json (and the tokenizer cache) go."
)


def main(argv):
  del argv
  with cli.flag_errors():
    cfg = cli.config_from_flags(BenchDataConfig)
    data.validate_corpus_spec(cfg.corpus)
    for spec in cfg.tokenizers:
      data.validate_tokenizer_spec(spec)
    cli.claim_out_dir(FLAGS.out_dir)
  run(cfg)


def run(cfg: BenchDataConfig):
  from muon_jax.infra import results

  cache = os.path.join(FLAGS.out_dir, "tokenizer_cache")
  specs = list(cfg.tokenizers)
  if cfg.sentencepiece_vocab:
    t0 = time.perf_counter()
    os.makedirs(cache, exist_ok=True)
    model = data.train_sentencepiece(
      data.corpus_sample(cfg.corpus),
      cfg.sentencepiece_vocab,
      os.path.join(cache, f"sp{cfg.sentencepiece_vocab}.model"),
    )
    logging.info(
      "trained SentencePiece %d in %.1fs", cfg.sentencepiece_vocab, time.perf_counter() - t0
    )
    specs.append(model)

  rows = []
  for spec in specs:
    t0 = time.perf_counter()
    it = data.build_pipeline(
      cfg.corpus,
      spec,
      seq_len=cfg.seq_len,
      batch_size=cfg.batch_size,
      seed=cfg.seed,
      cache_dir=cache,
      prefetch=cfg.prefetch,
    )
    build_s = time.perf_counter() - t0
    n_tokens, t0 = 0, time.perf_counter()
    while n_tokens < cfg.min_tokens:
      n_tokens += next(it).size
    elapsed = time.perf_counter() - t0
    it.close()
    rows.append(
      {
        "tokenizer": spec,
        "kind": data.validate_tokenizer_spec(spec)[0],
        "vocab_size": it.vocab_size,
        "build_s": build_s,
        "tokens": n_tokens,
        "seconds": elapsed,
        "tokens_per_s": n_tokens / elapsed,
      }
    )
    logging.info(
      "%s: vocab %d, build %.2fs, %.3g tokens/s",
      spec,
      it.vocab_size,
      build_s,
      rows[-1]["tokens_per_s"],
    )

  base = next((r["tokens_per_s"] for r in rows if r["tokenizer"] == "bytes"), None)
  for r in rows:
    r["ratio_vs_bytes"] = r["tokens_per_s"] / base if base else None
  result = {
    "corpus": cfg.corpus,
    "seq_len": cfg.seq_len,
    "batch_size": cfg.batch_size,
    "prefetch": cfg.prefetch,
    "cpu_count": os.cpu_count(),
    "results": rows,
  }
  results.atomic_write_json(os.path.join(FLAGS.out_dir, "bench_data.json"), result)
  for r in rows:
    ratio = f"{r['ratio_vs_bytes']:.4f}x bytes" if base else ""
    print(
      f"{r['tokenizer']:>40s}  vocab {r['vocab_size']:6d}  build {r['build_s']:6.2f}s  "
      f"{r['tokens_per_s']:12.4g} tokens/s  {ratio}"
    )


if __name__ == "__main__":
  cli.run(main)
