#!/usr/bin/env bash
# 1B pretrained -> Something-Something V2, 8 frames (published 77.1 top-1). Lists: see DATASET.md.
source "$(dirname "$0")/../../common.sh"
run run_finetuning.py 1B_ft_ssv2_f8 \
    --model internvideo2_1B_patch14_224 --data_path "$DATA/sthv2" --prefix "$DATA/sthv2" \
    --data_set SSV2 --nb_classes 174 --finetune "$MODELS/1B_pt.pth" \
    --steps_per_print 10 --batch_size 8 --num_sample 2 --input_size 224 --short_side_size 224 \
    --save_ckpt_freq 100 --num_frames 8 --num_workers 12 --warmup_epochs 3 \
    --tubelet_size 1 --epochs 8 --lr 1e-4 --drop_path 0.3 --layer_decay 0.915 \
    --use_checkpoint --checkpoint_num 6 --layer_scale_init_value 1e-5 \
    --opt adamw --opt_betas 0.9 0.999 --weight_decay 0.05 \
    --test_num_segment 2 --test_num_crop 3 --dist_eval --enable_deepspeed --bf16 --zero_stage 1 --test_best
