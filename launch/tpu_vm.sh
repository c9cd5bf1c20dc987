#!/usr/bin/env bash
# One experiment on a Cloud TPU VM slice, single- or multi-host (v4, v5e,
# v5p, v6e, ...). Every host clones this repository at this checkout's
# commit, installs jaxser with jax[tpu], and runs the same command;
# jax.distributed.initialize() finds the other hosts from the TPU metadata
# and each host feeds its slice of every global batch.
#
#   launch/tpu_vm.sh TPU_NAME ZONE configs/emodna.py gs://BUCKET/runs/emodna \
#       [--config.train.steps=5000 ...]
#
# The workdir is on Cloud Storage (results.json, metrics.jsonl, config.json
# through jaxser.io / etils.epath; checkpoints through orbax; TensorBoard
# events through tensorboardX with google-cloud-storage). Corpora are read
# from local disk: with JAXSER_DATA_GCS=gs://BUCKET/corpora every host first
# copies them to ~/jaxser_corpora (gcloud storage rsync), which becomes
# --config.data.root. Each host builds its own feature cache on its disk.
#
# Environment:
#   JAXSER_REPO      git URL the hosts clone (default: this checkout's origin)
#   JAXSER_REF       commit or branch to run (default: this checkout's HEAD,
#                    which must be pushed)
#   JAXSER_DATA_GCS  gs:// folder holding <corpus>/ folders (optional)
#
# Checked against: `bash -n`; the flags of `gcloud compute tpus tpu-vm ssh`
# (--zone, --worker=all, --command) and `gcloud storage rsync` (--recursive)
# in the gcloud reference, and jax 0.10's jax.distributed.initialize() Cloud
# TPU auto-detection (jax/_src/clusters/cloud_tpu_cluster.py), 2026-11-30.
# Not run on a TPU.
set -euo pipefail
tpu=${1:?tpu name}; zone=${2:?zone}; config=${3:?config}
workdir=${4:?workdir (gs://BUCKET/PATH)}
shift 4
case "$workdir" in
  gs://*) ;;
  *) echo "error: workdir must be on Cloud Storage (gs://...), reachable" \
          "from every host; got $workdir" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
repo=${JAXSER_REPO:-$(git -C "$here" remote get-url origin 2>/dev/null || true)}
ref=${JAXSER_REF:-$(git -C "$here" rev-parse HEAD)}
if [ -z "$repo" ]; then
  echo "error: set JAXSER_REPO to the git URL the hosts clone (this" \
       "checkout has no origin)" >&2
  exit 2
fi
data=${JAXSER_DATA_GCS:-}

# Everything the hosts run, quoted once here (printf %q) so that paths and
# overrides with spaces or quotes reach them intact.
data_root=()
remote="set -euo pipefail
if [ ! -d ~/jaxser/.git ]; then git clone -q $(printf %q "$repo") ~/jaxser; fi
cd ~/jaxser
git fetch -q origin
git checkout -q $(printf %q "$ref")
python3 -m pip install -q -U 'jax[tpu]' google-cloud-storage -e .
"
if [ -n "$data" ]; then
  remote+="mkdir -p ~/jaxser_corpora
gcloud storage rsync --recursive $(printf %q "$data") ~/jaxser_corpora
"
  data_root=(--config.data.root=~/jaxser_corpora)
fi
remote+="python3 -m jaxser.main --distributed $(printf '%q ' \
  "--config=$config" "--workdir=$workdir") ${data_root[*]:-} $(printf '%q ' "$@")"

gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all \
  --command="$remote"
