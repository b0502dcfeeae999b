#!/usr/bin/env bash
# InternVideo-Next large, stage 2 pretraining, as the original recipe (128 GPUs = 16 nodes x 8).
# Set DATA_PATH (pretraining list), STAGE1_CKPT (stage-1 checkpoint) and BERT (local ModernBERT-large).
set -euo pipefail
cd "$(dirname "$0")/../../.."
JOB_NAME=internvideo_next_vit_large_s2
OUTPUT_DIR=exp/large/pretrain/$JOB_NAME
ivtools-launch --slurm --partition "${PARTITION:-video}" --nodes "${NODES:-16}" --gpus 8 --cpus-per-task 16 \
    --job-name "$JOB_NAME" main_stage2.py -- \
    --data_path "${DATA_PATH:?set DATA_PATH}" --bert_path "${BERT:?set BERT}" \
    --stage1_checkpoint "${STAGE1_CKPT:?set STAGE1_CKPT}" --momentum 1.0 --num_frames 32 --batch_size 14 \
    --warmup_epochs 0 --epochs 101 --save_ckpt_freq 60 \
    --model internvideo_next_stage2_large --input_size 224 --tubelet_size 1 \
    --lr 1e-4 --drop_path 0.2 --layer_scale_init_value 1e-5 --opt adamw --opt_eps 1e-6 --opt_betas 0.9 0.98 \
    --clip_grad 5.0 --weight_decay 0.05 --num_workers 14 --flip \
    --enable_deepspeed --bf16 --zero_stage 1 --output_dir "$OUTPUT_DIR" "$@"
