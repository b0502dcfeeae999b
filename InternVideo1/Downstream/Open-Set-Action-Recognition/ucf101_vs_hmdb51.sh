#!/usr/bin/env bash
# DEAR's protocol: UCF-101 is the known set, HMDB-51 the unknown one. Features are (N, D) arrays
# from a fine-tuned encoder (e.g. the pooled VideoMAE feature) saved as .npz {features, labels}.
# Usage: ucf101_vs_hmdb51.sh <ucf_train.npz> <ucf_test.npz> <hmdb_test.npz> [output json]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ivtools-launch "$HERE/run_open_set.py" -- \
    --train_features "$1" --known_features "$2" --unknown_features "$3" \
    --loss evidential --annealing_epochs 10 --epochs 50 --lr 1e-2 --accept_rate 0.95 \
    --output_json "${4:-$HERE/open_set_results.json}"
