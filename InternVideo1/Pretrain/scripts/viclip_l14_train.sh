#!/usr/bin/env bash
# ViCLIP-L/14 contrastive training on video-text pairs (JSON {video, caption}), 8 frames, 90% token
# masking, frozen text tower; retrieval on the test list afterwards.
set -euo pipefail
ivtools-launch --gpus "${GPUS:-8}" "$(dirname "$0")/../run_viclip_pretraining.py" -- \
  --model viclip_l14 --bpe_path "${BPE:?set BPE to bpe_simple_vocab_16e6.txt.gz}" \
  --train_file "${TRAIN:?set TRAIN}" --test_file "${TEST:-}" --prefix "${PREFIX:-}" \
  --num_frames 8 --masking_prob 0.9 --batch_size 64 --epochs 10 --lr 4e-6 \
  --output_dir "${OUT:-work_dirs/viclip_l14}" "$@"
