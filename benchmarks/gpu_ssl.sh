#!/usr/bin/env bash
# Self-supervised encoders on one GPU: the WavLM fine-tuning step at base
# (12 x 768) and large (24 x 1024, layer-norm feature encoder, pre-norm
# blocks) size, bf16 and float32, the CNN feature encoder frozen as usual;
# then the frozen-upstream step. source_only on 3 s clips, batch 32 (+ 32
# target examples the loss does not read). Random weights: the speed does not
# depend on them. One JSON line per run (samples/s, step time, peak device
# memory).
#   benchmarks/gpu_ssl.sh [STEPS]
# About 5 minutes on one H100/H200 (mostly compiles).
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
log=${LOG:-/tmp/gpu_ssl.log}  # Everything but the JSON lines.
: >"$log"
trap 'echo "failed; see $log" >&2; tail -n 30 "$log" >&2' ERR
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    || true
common="--config=configs/source_only.py --config.model.name=wavlm \
  --config.data.features=waveform \
  --config.data.feature_params.waveform.samples=48000 \
  --config.train.batch_size=32 --steps=$steps --warmup=$warmup"
large="--config.model.wavlm.layers=24 --config.model.wavlm.hidden=1024 \
  --config.model.wavlm.heads=16 --config.model.wavlm.mlp_dim=4096 \
  --config.model.wavlm.feat_extract_norm=layer \
  --config.model.wavlm.do_stable_layer_norm=True"
for size in base large; do
  extra=""; [ "$size" = large ] && extra="$large"
  for dtype in bfloat16 float32; do
    echo "# wavlm $size $dtype fine-tuned" >&2
    "$py" -m jaxser.bench $common $extra --config.model.wavlm.dtype=$dtype \
        2>>"$log" | tail -n 1
  done
  echo "# wavlm $size bfloat16 frozen" >&2
  "$py" -m jaxser.bench $common $extra --config.model.wavlm.dtype=bfloat16 \
      --config.model.wavlm.freeze=True 2>>"$log" | tail -n 1
done
