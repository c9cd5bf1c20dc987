#!/usr/bin/env bash
# A Cloud TPU VM slice (single- or multi-host). Every host runs the same
# command; jax.distributed.initialize() finds the others from the TPU metadata
# and each host feeds its slice of every global batch.
#   launch/tpu_vm.sh TPU_NAME ZONE configs/emodna.py gs://bucket/run [overrides]
# The workdir must be reachable from every host (a GCS path or a shared disk);
# corpora and the feature cache likewise (--config.data.root,
# --config.data.cache_dir).
set -euo pipefail
tpu=${1:?tpu name}; zone=${2:?zone}; config=${3:?config}; workdir=${4:?workdir}
shift 4
gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command "
  set -e
  cd ~/jaxser || git clone \$REPO ~/jaxser && cd ~/jaxser
  pip install -q -U 'jax[tpu]' -e .
  python -m jaxser.main --distributed --config=$config --workdir=$workdir $*
"
