#!/usr/bin/env bash
# One machine, all its GPUs: the batch is sharded over them on the 'data' axis.
#   launch/gpu.sh configs/emodna.py /tmp/emodna [--config.train.steps=5000 ...]
set -euo pipefail
config=${1:?config file}; workdir=${2:?workdir}; shift 2
pip install -q -U "jax[cuda12]" -e .
# TF is used for tf.data only; keep it off the GPUs (main.py also hides them).
export CUDA_MODULE_LOADING=LAZY XLA_PYTHON_CLIENT_PREALLOCATE=false
python -m jaxser.main --config="$config" --workdir="$workdir" "$@"
