"""Text data for the LLaMA pre-training runs: corpus -> tokenizer -> packed batches.

Paper App 12: LLaMA-160M is pre-trained on FineWeb-Edu (`sample-100BT`,
streamed) with tokens packed to a maximum sequence length of 1024. This package
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

Modules: `sources` (corpus specs, sources, the document stream), `tokenizers`
(tokenizer specs, tokenizers, training and cache), `packing` (`PackedBatches`,
`build_pipeline`). Every public name is re-exported here.
"""

from muon_jax.lm.data.packing import PackedBatches, build_pipeline
from muon_jax.lm.data.sources import (
  CORPUS_FORMS,
  FINEWEB_EDU,
  TEXT_EXTENSIONS,
  CorpusSpec,
  in_eval_split,
  stdlib_source,
  validate_corpus_spec,
)
from muon_jax.lm.data.tokenizers import (
  TOKENIZER_FORMS,
  ByteTokenizer,
  HFTokenizer,
  SentencePieceTokenizer,
  corpus_sample,
  tokenizer_sample,
  train_bpe,
  train_sentencepiece,
  validate_tokenizer_spec,
)

__all__ = [
  "ByteTokenizer",
  "CORPUS_FORMS",
  "CorpusSpec",
  "FINEWEB_EDU",
  "HFTokenizer",
  "PackedBatches",
  "SentencePieceTokenizer",
  "TEXT_EXTENSIONS",
  "TOKENIZER_FORMS",
  "build_pipeline",
  "corpus_sample",
  "in_eval_split",
  "stdlib_source",
  "tokenizer_sample",
  "train_bpe",
  "train_sentencepiece",
  "validate_corpus_spec",
  "validate_tokenizer_spec",
]
