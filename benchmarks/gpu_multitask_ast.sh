#!/usr/bin/env bash
# The multitask paper's audio step on one GPU: a base-size AST (12 x 768,
# 1024 fbank frames from on-device augmented 10.26 s waveforms, two views of
# 64 source + 64 target utterances), bf16 compute and float32, with and
# without remat; plus a plain AST forward + backward at batch 8 and 64.
# Prints one JSON line per run (samples/s, step time, peak device memory).
#   benchmarks/gpu_multitask_ast.sh [STEPS]
# About 6 minutes on one H100/H200 (mostly compiles).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}; warmup=3
py=${PYTHON:-python3}
if ! "$py" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' \
    2>/dev/null; then
  "$py" -m pip install -q -U "jax[cuda12]"
fi
"$py" -c 'import jaxser.bench' 2>/dev/null || "$py" -m pip install -q -e .
export CUDA_MODULE_LOADING=LAZY XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2
log=${LOG:-/tmp/gpu_multitask_ast.log}  # Everything but the JSON lines.
: >"$log"
trap 'echo "failed; see $log" >&2; tail -n 30 "$log" >&2' ERR
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    || true
bench() { "$py" -m jaxser.bench --steps="$steps" --warmup="$warmup" "$@" \
    2>>"$log" | tail -n 1; }
for dtype in bfloat16 float32; do
  bench --config=configs/multitask_ast.py --config.model.ast.dtype=$dtype
done
bench --config=configs/multitask_ast.py --config.model.ast.dtype=bfloat16 \
    --config.model.ast.remat=True
for b in 8 64; do
  bench --config=configs/source_only.py --config.model.name=ast \
      --config.data.features=fbank128 --config.data.frames=1024 \
      --config.model.ast.dtype=bfloat16 --config.train.batch_size=$b
done
