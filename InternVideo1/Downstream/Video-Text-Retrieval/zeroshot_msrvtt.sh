#!/usr/bin/env bash
# Zero-shot MSR-VTT 1k-A retrieval with a ViCLIP-L/14 checkpoint (8 frames, dual softmax on).
# Usage: zeroshot_msrvtt.sh <msrvtt_1k_test.json> <video root> <viclip_l14.pth> <bpe_simple_vocab_16e6.txt.gz>
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ivtools-launch "$HERE/run_retrieval.py" -- \
    --model viclip_l14 --checkpoint "$3" --bpe_path "$4" --test_file "$1" --prefix "$2" \
    --num_frames 8 --input_size 224 --max_txt_l 32 --dual_softmax 100 --batch_size 16 \
    --output_json "${OUTPUT_DIR:-$HERE/work_dirs}/msrvtt_zs.json"
