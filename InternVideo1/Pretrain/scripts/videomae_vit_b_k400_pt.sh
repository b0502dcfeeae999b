#!/usr/bin/env bash
# VideoMAE ViT-B pretraining on Kinetics-400 (the original's 800-epoch recipe: tube mask 0.9,
# decoder depth 4, 16x4 clips, lr 1.5e-4 per 256, 64 GPUs x batch 32).
set -euo pipefail
DATA=${DATA:?set DATA to the folder with train.csv}
OUT=${OUT:-work_dirs/videomae_vit_b_k400_pt}
ivtools-launch --gpus "${GPUS:-8}" "$(dirname "$0")/../run_videomae_pretraining.py" -- \
  --data_path "$DATA/train.csv" --prefix "${PREFIX:-}" --mask_type tube --mask_ratio 0.9 \
  --model pretrain_mae_base_patch16_224 --decoder_depth 4 --batch_size 32 --num_frames 16 \
  --sampling_rate 4 --opt adamw --opt_betas 0.9 0.95 --warmup_epochs 40 --epochs 801 \
  --save_ckpt_freq 50 --output_dir "$OUT" "$@"
