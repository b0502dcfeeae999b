#!/usr/bin/env bash
# Distil InternVideo2-1B (stage 2) into a small student (the original: 32 GPUs, 101 epochs).
# Usage: dist_1B_stage2.sh {S14|B14|L14}; S14_/B14_/L14_dist_1B_stage2.sh call it.
source "$(dirname "$0")/../common.sh"
case "${1:?student: S14, B14 or L14}" in
    S14) model=small batch=128 ;;
    B14) model=base batch=128 ;;
    L14) model=large batch=64 ;;
    *) echo "unknown student $1 (S14, B14 or L14)" >&2; exit 2 ;;
esac
run run_distill.py "$1_dist_1B_stage2" \
    --data_path "$DATA/train_1.1M.csv" --num_sample 1 --flip \
    --mask_type attention --mask_ratio 0.8 \
    --model "distill_internvideo2_${model}_patch14_224" \
    --clip_teacher teacher_internvideo2_stage2_1B --clip_teacher_ckpt "$MODELS/1B_stage2.pth" \
    --clip_input_resolution 224 --clip_teacher_embed_dim 1408 --clip_teacher_final_dim 768 \
    --clip_loss_ratio 1 1 --clip_norm_type l2 --clip_return_attn --clip_return_layer 6 \
    --clip_teacher_return_interval 3.34 --clip_student_return_interval 1 --clip_student_decoder MLP_Decoder \
    --tubelet_size 1 --lr 1e-3 --drop_path 0.05 --use_checkpoint --checkpoint_num 0 \
    --layer_scale_init_value 1e-5 --batch_size "$batch" --num_segments 8 --num_frames 8 --sampling_rate 1 \
    --num_workers 12 --opt adamw --opt_eps 1e-6 --opt_betas 0.9 0.98 --clip_grad 5.0 \
    --weight_decay 0.05 --warmup_epochs 20 --save_ckpt_freq 1000 --epochs 101 \
    --enable_deepspeed --bf16 --zero_stage 1
