#!/usr/bin/env bash
# CAEmoCyGAN's adversarial step on one GPU: jaxser vs PyTorch (eager, then
# torch.compile), 3 x 256 examples a step; prints one JSON line each.
#   benchmarks/gpu_caemocygan.sh [STEPS] [ROUNDS]
# jax with CUDA and jaxser's dependencies as launch/gpu.sh installs them;
# torch with a plain `pip install torch` (the machine's own wheels or index)
# when it is not importable already. Each round runs jaxser, torch eager and
# torch --compile once, interleaved; compare medians over the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-200}; rounds=${2:-3}; warmup=20
py=${PYTHON:-python3}
if ! "$py" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' \
    2>/dev/null; then
  "$py" -m pip install -q -U "jax[cuda12]"
fi
"$py" -c 'import jaxser.bench' 2>/dev/null || "$py" -m pip install -q -e .
"$py" -c 'import torch' 2>/dev/null || "$py" -m pip install -q torch
# TF is used for tf.data only (bench.py hides the GPUs from it).
export CUDA_MODULE_LOADING=LAZY XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2
log=${LOG:-/tmp/gpu_caemocygan.log}  # Everything but the JSON lines.
: >"$log"
trap 'echo "failed; see $log" >&2; tail -n 30 "$log" >&2' ERR
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
for _ in $(seq "$rounds"); do
  "$py" -m jaxser.bench --config=configs/caemocygan.py --steps="$steps" \
      --warmup="$warmup" 2>>"$log" | tail -n 1
  "$py" benchmarks/torch_caemocygan.py --device cuda --steps "$steps" \
      --warmup "$warmup" 2>>"$log"
  "$py" benchmarks/torch_caemocygan.py --device cuda --steps "$steps" \
      --warmup "$warmup" --compile 2>>"$log"
done
