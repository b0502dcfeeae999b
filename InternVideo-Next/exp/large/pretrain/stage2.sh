#!/usr/bin/env bash
# InternVideo-Next large, stage 2 pretraining, as the original recipe (128 GPUs = 16 nodes x 8).
# Set DATA_PATH, BERT (see ../../common.sh) and STAGE1_CKPT (the stage-1 checkpoint).
source "$(dirname "$0")/../../common.sh"
run main_stage2.py internvideo_next_vit_large_s2 \
    --model internvideo_next_stage2_large --drop_path 0.2 --stage1_checkpoint "${STAGE1_CKPT:?set STAGE1_CKPT}" \
    --momentum 1.0 --num_frames 32 --batch_size 14 --lr 1e-4 --warmup_epochs 0 --epochs 101 --save_ckpt_freq 60 "$@"
