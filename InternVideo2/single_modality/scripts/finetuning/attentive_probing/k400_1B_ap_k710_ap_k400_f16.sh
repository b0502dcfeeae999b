#!/usr/bin/env bash
# Attentive probing (attention pool + head trained, backbone frozen) 1B K710 -> K400, 16 frames.
source "$(dirname "$0")/../../common.sh"
run run_linear_probing.py 1B_ap_k710_ap_k400_f16 --open_clip_projector \
    --model internvideo2_1B_patch14_224 --data_path "$DATA/k400" --prefix "$DATA/k400" \
    --data_set Kinetics_sparse --split ',' --nb_classes 400 --finetune "$MODELS/1B_ap_k710_ap_k400_f16.pth" \
    --steps_per_print 10 --batch_size 64 --num_sample 1 --input_size 224 --short_side_size 224 \
    --save_ckpt_freq 100 --num_frames 16 --orig_t_size 16 --num_workers 12 --warmup_epochs 0 \
    --tubelet_size 1 --epochs 3 --lr 1e-5 --min_lr 0 --drop_path 0.0 --layer_decay 1.0 \
    --layer_scale_init_value 1e-5 --aa rand-m5-n2-mstd0.25-inc1 --opt adamw --opt_betas 0.9 0.999 \
    --weight_decay 0 --test_num_segment 1 --test_num_crop 3 --dist_eval --enable_deepspeed --bf16 \
    --zero_stage 1 --test_best
