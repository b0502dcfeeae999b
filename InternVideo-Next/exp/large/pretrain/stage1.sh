#!/usr/bin/env bash
# InternVideo-Next large, stage 1 pretraining, as the original recipe (128 GPUs = 16 nodes x 8).
# Set DATA_PATH, BERT (see ../../common.sh) and TEACHER (local SigLIP2-1B res256 folder).
source "$(dirname "$0")/../../common.sh"
run main_stage1.py internvideo_next_vit_large_s1 \
    --model internvideo_next_stage1_large --drop_path 0.2 --clip_teacher_path "${TEACHER:?set TEACHER}" \
    --clip_teacher_embed_dim 1536 --clip_teacher_final_dim 1536 --clip_loss_ratio 1 1 1 --clip_return_layer 6 \
    --clip_teacher_return_interval 1.67 --clip_student_return_interval 1 --mask_type attention --mask_ratio 0.75 \
    --num_frames 16 --batch_size 16 --lr 1e-3 --warmup_epochs 7 --epochs 62 --save_ckpt_freq 20 "$@"
