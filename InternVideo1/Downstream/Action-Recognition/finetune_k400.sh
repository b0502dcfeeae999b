#!/usr/bin/env bash
# Fine-tune VideoMAE-L (16x4, 224 px) on Kinetics-400 from a VideoMAE pretraining checkpoint and
# test with 5 clips x 3 crops. Usage: finetune_k400.sh <list dir> <video root> <pretrain.pth> [nodes] [gpus]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ivtools-launch --nodes "${4:-1}" --gpus "${5:-8}" "$HERE/run_action_recognition.py" -- \
    --family videomae --model vit_large_patch16_224 --data_set Kinetics --nb_classes 400 \
    --data_path "$1" --prefix "$2" --finetune "$3" --num_frames 16 --sampling_rate 4 \
    --batch_size 8 --epochs 50 --lr 1e-3 --layer_decay 0.8 --drop_path 0.2 --warmup_epochs 5 \
    --test_num_segment 5 --test_num_crop 3 --dist_eval --enable_deepspeed --bf16 \
    --output_dir "${OUTPUT_DIR:-$HERE/work_dirs/k400_videomae_l}"
