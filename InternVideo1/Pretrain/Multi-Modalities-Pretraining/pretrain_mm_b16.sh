#!/usr/bin/env bash
# InternVideo-MM-B/16: start both streams from released VideoMAE-B and ViCLIP-B checkpoints and train
# the cross-model attention, the projections and the caption decoder on video-text pairs.
# Usage: pretrain_mm_b16.sh <train.json> <test.json> <videomae_b.pth> <viclip_b16.pth> <bpe_simple_vocab_16e6.txt.gz> [nodes] [gpus per node]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUTPUT_DIR:-$HERE/work_dirs/mm_b16}"
ivtools-launch --nodes "${6:-1}" --gpus "${7:-8}" "$HERE/run_pretraining.py" -- \
    --model internvideo_mm_b16 --train_file "$1" --test_file "$2" \
    --mae_checkpoint "$3" --clip_checkpoint "$4" --bpe_path "$5" \
    --num_frames 16 --clip_frames 8 --input_size 224 --max_txt_l 32 \
    --fusion_depth 2 --decoder_layers 4 --loss_names contrastive=1 cap=1 \
    --batch_size 32 --epochs 10 --lr 1e-5 --warmup_epochs 1 --weight_decay 0.02 --clip_grad 1.0 \
    --bf16 --num_workers 8 --output_dir "$OUT" --resume auto
