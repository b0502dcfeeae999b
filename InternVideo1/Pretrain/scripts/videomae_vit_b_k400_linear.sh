#!/usr/bin/env bash
# VideoMAE ViT-B linear probing on Kinetics-400: a linear classifier on the frozen pretrained encoder.
set -euo pipefail
DATA=${DATA:?set DATA to the folder with train/val/test.csv}
ivtools-launch --gpus "${GPUS:-8}" "$(dirname "$0")/../run_videomae_linear_probing.py" -- \
  --model vit_base_patch16_224 --data_set Kinetics --nb_classes 400 --data_path "$DATA" \
  --finetune "${CKPT:?set CKPT}" --batch_size 32 --num_sample 1 --input_size 224 --num_frames 16 \
  --sampling_rate 4 --opt sgd --lr 0.1 --weight_decay 0 --epochs 90 --warmup_epochs 10 \
  --test_num_segment 5 --test_num_crop 3 \
  --output_dir "${OUT:-work_dirs/videomae_vit_b_k400_linear}" "$@"
