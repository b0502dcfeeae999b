#!/usr/bin/env bash
# VideoMAE ViT-B fine-tuning on Kinetics-400 from a pretraining checkpoint, then 5x3-view test.
set -euo pipefail
DATA=${DATA:?set DATA to the folder with train/val/test.csv}
ivtools-launch --gpus "${GPUS:-8}" "$(dirname "$0")/../run_videomae_finetuning.py" -- \
  --model vit_base_patch16_224 --data_set Kinetics --nb_classes 400 --data_path "$DATA" \
  --finetune "${CKPT:?set CKPT}" --batch_size 8 --num_sample 2 --input_size 224 --num_frames 16 \
  --sampling_rate 4 --opt adamw --lr 1e-3 --layer_decay 0.75 --opt_betas 0.9 0.999 \
  --weight_decay 0.05 --epochs 75 --test_num_segment 5 --test_num_crop 3 \
  --output_dir "${OUT:-work_dirs/videomae_vit_b_k400_ft}" "$@"
