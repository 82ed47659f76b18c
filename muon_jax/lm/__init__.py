"""The language-model stack: Flax NNX LLaMA, data pipeline, chunked loss, pmap trainer, step
benchmark and the loss-landscape probe. Knows the optimizer, not the paper."""
