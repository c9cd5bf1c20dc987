#!/usr/bin/env bash
# One machine, all its GPUs: the batch is sharded over them on the 'data' axis.
#   launch/gpu.sh configs/emodna.py /tmp/emodna [--config.train.steps=5000 ...]
# Several nodes: launch/slurm_multihost.sbatch.
# Checked against: `bash -n`; jax 0.10's extras (jax[cuda12], also cuda13
# for CUDA 13 drivers), 2026-11-30. Not run on a GPU from this script.
set -euo pipefail
config=${1:?config file}; workdir=${2:?workdir}; shift 2
pip install -q -U "jax[cuda12]" -e .
# TF is used for tf.data only; keep it off the GPUs (main.py also hides them).
export CUDA_MODULE_LOADING=LAZY XLA_PYTHON_CLIENT_PREALLOCATE=false
python -m jaxser.main --config="$config" --workdir="$workdir" "$@"
