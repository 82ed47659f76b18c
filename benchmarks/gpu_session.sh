#!/usr/bin/env bash
# One-shot GPU measurement session (used for the README's GPU numbers).
# Runs from the repo root on a machine with jax[cuda], optax, flax, orbax installed:
#   OUT=/tmp/gpu bash benchmarks/gpu_session.sh
# Everything lands in $OUT/gpu_results.tar.gz plus $OUT/log.txt.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
R="$OUT/results"
mkdir -p "$R"
{
  nvidia-smi -L
  $PY -c "import jax, optax, flax; print(jax.__version__, optax.__version__, flax.__version__, jax.devices())"
  timeout 110 $PY -m experiments.bench_muon --out_dir "$R/bench_muon" --repeats=10
  timeout 80 $PY -m experiments.bench_saddle --out_dir "$R/bench_saddle" --dims=32,128,512 --cells=64
  timeout 140 $PY -m experiments.bench_train --model=160m --steps=5 --out_dir "$R/bench_train"
  # Paper-scale saddle sweep (standard noise, both optimizers), then the
  # noise-modality ablation for Muon; --resume keeps what a timeout cut short.
  timeout 125 $PY -m experiments.saddle_escape --out_dir "$R/saddle_gpu" \
    --dims=32,64,128,256,512 --curvatures=0.1,0.01,0.001 --kappas=1,100 --seeds=10 \
    --steps=3000 --noises=standard --optimizers=muon,adamw --signals=aligned,incoherent
  timeout 60 $PY -m experiments.saddle_escape --out_dir "$R/saddle_noise_gpu" \
    --dims=32,128,512 --curvatures=0.01,0.001 --kappas=1,100 --seeds=10 \
    --steps=3000 --noises=standard,isotropic,heavy_tail,student_t --optimizers=muon --muon_lrs=0.02
} 2>&1 | tee "$OUT/log.txt"
tar -czf "$OUT/gpu_results.tar.gz" -C "$R" .
