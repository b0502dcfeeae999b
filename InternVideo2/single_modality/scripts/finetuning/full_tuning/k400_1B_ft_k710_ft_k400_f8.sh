#!/usr/bin/env bash
# K710-fine-tuned 1B -> K400, 8 frames (the original: 32 GPUs; published 91.3 top-1 at 8x3x4).
source "$(dirname "$0")/../../common.sh"
run run_finetuning.py 1B_ft_k710_ft_k400_f8 \
    --model internvideo2_1B_patch14_224 --data_path "$DATA/k400" --prefix "$DATA/k400" \
    --data_set Kinetics_sparse --split ',' --nb_classes 400 --finetune "$MODELS/1B_ft_k710_f8.pth" \
    --steps_per_print 10 --batch_size 8 --num_sample 2 --input_size 224 --short_side_size 224 \
    --save_ckpt_freq 100 --num_frames 8 --sampling_rate 8 --num_workers 12 --warmup_epochs 0 \
    --tubelet_size 1 --epochs 3 --lr 1e-5 --drop_path 0.3 --layer_decay 0.9 \
    --use_checkpoint --checkpoint_num 6 --layer_scale_init_value 1e-5 \
    --opt adamw --opt_betas 0.9 0.999 --weight_decay 0.05 \
    --test_num_segment 4 --test_num_crop 3 --dist_eval --enable_deepspeed --bf16 --zero_stage 1 --test_best
