#!/usr/bin/env bash
# CLIP (stage-1) alignment: run.sh <B14|1B> [key=value overrides ...]
set -euo pipefail
size=${1:?usage: run.sh <B14|1B> [overrides]}
shift
cd "$(dirname "$0")/../../.."
ivtools-launch --gpus "${GPUS:-8}" --nodes "${NODES:-1}" ${LAUNCH_OPTS:-} run_pretrain.py -- \
    "scripts/pretraining/clip/${size}/config.py" output_dir="${OUTPUT_DIR:-outputs/clip_${size}}" "$@"
