#!/usr/bin/env bash
# Zero-shot retrieval: eval.sh <msrvtt|didemo|anet|lsmdc|msvd|vatex> [key=value overrides ...]
set -euo pipefail
dataset=${1:?usage: eval.sh <msrvtt|didemo|anet|lsmdc|msvd|vatex> [overrides]}
shift
cd "$(dirname "$0")/../../../../.."
ivtools-launch --gpus "${GPUS:-1}" ${LAUNCH_OPTS:-} run_retrieval.py -- \
    "scripts/evaluation/stage2/zero_shot/1B/config_${dataset}.py" output_dir="${OUTPUT_DIR:-outputs/zs_${dataset}}" "$@"
