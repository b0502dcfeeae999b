#!/usr/bin/env bash
# InternVideo-Next base, stage 1 pretraining, as the original recipe (128 GPUs = 16 nodes x 8).
# Set DATA_PATH (pretraining list), TEACHER (local SigLIP2-1B res256 folder) and BERT (local ModernBERT-large).
set -euo pipefail
cd "$(dirname "$0")/../../.."
JOB_NAME=internvideo_next_vit_base_s1
OUTPUT_DIR=exp/base/pretrain/$JOB_NAME
ivtools-launch --slurm --partition "${PARTITION:-video}" --nodes "${NODES:-16}" --gpus 8 --cpus-per-task 16 \
    --job-name "$JOB_NAME" main_stage1.py -- \
    --data_path "${DATA_PATH:?set DATA_PATH}" --bert_path "${BERT:?set BERT}" \
    --clip_teacher_path "${TEACHER:?set TEACHER}" --clip_teacher_embed_dim 1536 --clip_teacher_final_dim 1536 \
    --clip_loss_ratio 1 1 1 --clip_return_layer 6 --clip_teacher_return_interval 3.33 --clip_student_return_interval 1 \
    --mask_type attention --mask_ratio 0.75 --num_frames 16 --batch_size 16 --warmup_epochs 7 --epochs 62 --save_ckpt_freq 20 \
    --model internvideo_next_stage1_base --input_size 224 --tubelet_size 1 \
    --lr 1e-3 --drop_path 0.1 --layer_scale_init_value 1e-5 --opt adamw --opt_eps 1e-6 --opt_betas 0.9 0.98 \
    --clip_grad 5.0 --weight_decay 0.05 --num_workers 14 --flip \
    --enable_deepspeed --bf16 --zero_stage 1 --output_dir "$OUTPUT_DIR" "$@"
