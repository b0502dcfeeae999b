#!/usr/bin/env bash
# Zero-shot Kinetics-400 classification with ViCLIP-L/14 (8 frames), the 16 action prompts averaged.
# Usage: zeroshot_k400.sh <val list> <video root> <class names> <ViCLIP-L_InternVid-FLT-10M.pth> <bpe.txt.gz>
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ivtools-launch --nodes 1 --gpus 1 "$HERE/run_zero_shot.py" -- \
    --model viclip_l14 --checkpoint "$4" --bpe_path "$5" --num_frames 8 --input_size 224 \
    --data_path "$1" --prefix "$2" --class_names "$3" --batch_size 16 \
    --output_json "${OUTPUT_DIR:-$HERE/work_dirs/zeroshot_k400}/metrics.json"
