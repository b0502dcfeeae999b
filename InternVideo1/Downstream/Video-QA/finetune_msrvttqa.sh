#!/usr/bin/env bash
# MSRVTT-QA: train the open-ended answer head (1500 answers) on the frozen multi-modality model.
# Usage: finetune_msrvttqa.sh <train.json> <test.json> <video root> <mm_b16.pth> <bpe_simple_vocab_16e6.txt.gz> [gpus]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ivtools-launch --gpus "${6:-8}" "$HERE/run_video_qa.py" -- \
    --task open --model internvideo_mm_b16 --checkpoint "$4" --bpe_path "$5" \
    --train_file "$1" --test_file "$2" --prefix "$3" --num_frames 16 --clip_frames 8 --max_txt_l 40 \
    --max_answers 1500 --batch_size 32 --epochs 10 --lr 1e-4 --warmup_epochs 1 --bf16 \
    --output_dir "${OUTPUT_DIR:-$HERE/work_dirs/msrvttqa}"
