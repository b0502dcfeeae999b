#!/usr/bin/env bash
# THUMOS14 with InternVideo features (ActionFormer's schedule: 35 epochs, lr 1e-4, soft-NMS),
# mAP at tIoU 0.3:0.7. Usage: thumos14.sh <thumos14.json> <feature dir> [output dir]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ivtools-launch "$HERE/run_tal.py" -- \
    --annotations "$1" --feature_dir "$2" --train_subset validation --val_subset test --tious thumos \
    --max_seq_len 2304 --embed_dim 512 --num_levels 6 --batch_size 2 --epochs 35 --lr 1e-4 \
    --warmup_epochs 5 --nms_method soft --nms_sigma 0.5 --max_detections 200 \
    --output_dir "${3:-$HERE/work_dirs/thumos14}"
