#!/usr/bin/env bash
# One experiment on a TPU slice of a GKE cluster, submitted with xpk (a
# JobSet of one pod per TPU VM host): current generations such as v5e
# (v5litepod-N), v5p-N, v6e-N (Trillium) or tpu7x-N (Ironwood), one or
# more slices. xpk builds an image from a JAX TPU base image and this
# checkout (--base-docker-image + --script-dir: COPY into /app; .dockerignore
# keeps .venv out); every pod runs the same command, and jax.distributed.initialize() finds the others from the
# TPU_WORKER_ID / TPU_WORKER_HOSTNAMES (and, across slices, MEGASCALE_*)
# variables GKE sets.
#
#   XPK_PROJECT=my-project XPK_ZONE=us-east5-b \
#   launch/xpk_tpu.sh CLUSTER v6e-16 configs/emodna.py gs://BUCKET/runs/x \
#       [--config.train.steps=5000 ...]
#
# The workdir is on Cloud Storage (see launch/tpu_vm.sh). With
# JAXSER_DATA_GCS=gs://BUCKET/corpora each pod first copies the corpora to
# /tmp/jaxser_corpora (--config.data.root); each builds its feature cache.
# Then `xpk workload list --cluster=CLUSTER` shows it, and
# `xpk workload delete --workload=NAME --cluster=CLUSTER` stops it.
#
# Environment:
#   XPK_PROJECT, XPK_ZONE  the cluster's project and zone (required)
#   XPK_WORKLOAD     workload name (default: jaxser-<date>-<time>)
#   XPK_NUM_SLICES   slices (default 1); the mesh's 'data' axis spans them
#   XPK_BASE_IMAGE   JAX TPU image, pulled and tagged locally as
#                    jaxser-tpu-base (xpk adds --script-dir only to a local
#                    image); default:
#                    us-docker.pkg.dev/cloud-tpu-images/jax-ai-image/tpu:latest
#   JAXSER_DATA_GCS  gs:// folder holding <corpus>/ folders (optional)
#
# Checked against: `bash -n`; xpk's `workload create` flags (--cluster,
# --workload, --device-type, --num-slices, --base-docker-image,
# --script-dir, --command, --project, --zone) as used in xpk's README and
# Google's TPU recipes and its src/xpk/core/docker_image.py (a registry
# image refuses --script-dir), the gcloud storage rsync reference, jax 0.10's
# GKE TPU detection (jax/_src/clusters/cloud_tpu_cluster.py), 2026-11-30.
# Not run on a cluster.
set -euo pipefail
cluster=${1:?cluster}; device=${2:?TPU type, e.g. v6e-16}
config=${3:?config}; workdir=${4:?workdir (gs://BUCKET/PATH)}
shift 4
case "$workdir" in
  gs://*) ;;
  *) echo "error: workdir must be on Cloud Storage (gs://...), reachable" \
          "from every pod; got $workdir" >&2; exit 2 ;;
esac
project=${XPK_PROJECT:?set XPK_PROJECT}; zone=${XPK_ZONE:?set XPK_ZONE}
name=${XPK_WORKLOAD:-jaxser-$(date +%m%d-%H%M%S)}
image=${XPK_BASE_IMAGE:-us-docker.pkg.dev/cloud-tpu-images/jax-ai-image/tpu:latest}
here=$(cd "$(dirname "$0")/.." && pwd)
data=${JAXSER_DATA_GCS:-}

data_root=()
command="set -euo pipefail
cd /app
python3 -m pip install -q -e . google-cloud-storage
"
if [ -n "$data" ]; then
  command+="mkdir -p /tmp/jaxser_corpora
gcloud storage rsync --recursive $(printf %q "$data") /tmp/jaxser_corpora
"
  data_root=(--config.data.root=/tmp/jaxser_corpora)
fi
command+="python3 -m jaxser.main --distributed $(printf '%q ' \
  "--config=$config" "--workdir=$workdir") ${data_root[*]:-} $(printf '%q ' "$@")"

docker pull "$image"
docker tag "$image" jaxser-tpu-base
xpk workload create --cluster="$cluster" --workload="$name" \
  --device-type="$device" --num-slices="${XPK_NUM_SLICES:-1}" \
  --base-docker-image=jaxser-tpu-base --script-dir="$here" \
  --project="$project" --zone="$zone" --command="$command"
