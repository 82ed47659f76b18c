#!/usr/bin/env bash
# LLaMA-160M step on one GPU: cuDNN vs XLA attention parity, then memory, tokens/s,
# MFU and Muon/AdamW for the step options (bf16, 512 x 1024 tokens per step).
#   OUT=/tmp/gpu bash benchmarks/gpu_step_check.sh
# Not yet run: written on a machine without a GPU.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
R="$OUT/results"
mkdir -p "$R"
{
  nvidia-smi -L
  timeout 120 $PY -m pytest -q tests/test_llama.py -k "cudnn or attention"
  # attention, loss_chunk, remat, micro_batch
  for options in "xla 0 none 16" "cudnn 0 none 16" "cudnn 1024 none 16" "cudnn 1024 dots_no_batch 32"; do
    set -- $options
    timeout 300 $PY -m experiments.bench_train --model=160m --steps=3 --attention="$1" \
      --loss_chunk="$2" --remat="$3" --micro_batch="$4" --out_dir "$R/bench_train_$1_chunk$2_$3_micro$4"
  done
} 2>&1 | tee "$OUT/log.txt"
