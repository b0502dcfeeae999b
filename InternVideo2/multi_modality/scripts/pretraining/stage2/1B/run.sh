#!/usr/bin/env bash
# Stage-2 pretraining of InternVideo2-1B. GPUS/NODES per node; add --slurm -p PART via LAUNCH_OPTS.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ivtools-launch --gpus "${GPUS:-8}" --nodes "${NODES:-1}" ${LAUNCH_OPTS:-} run_pretrain.py -- \
    scripts/pretraining/stage2/1B/config.py output_dir="${OUTPUT_DIR:-outputs/stage2_1B}" "$@"
