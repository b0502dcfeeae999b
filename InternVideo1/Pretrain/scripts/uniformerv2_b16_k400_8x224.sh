#!/usr/bin/env bash
# UniFormerV2-B/16 on Kinetics-400, 8x224 sparse sampling, from the Kinetics-710 checkpoint
# (exp/k400/k400+k710_b16_f8x224: no local modules, no temporal downsampling, new head).
set -euo pipefail
DATA=${DATA:?set DATA to the folder with train/val/test.csv}
ivtools-launch --gpus "${GPUS:-8}" "$(dirname "$0")/../run_uniformerv2_finetuning.py" -- \
  --model uniformerv2_b16 --data_set Kinetics_sparse --nb_classes 400 --data_path "$DATA" \
  --num_frames 8 --input_size 224 --no_lmhra true --temporal_downsample false \
  --finetune "${CKPT:?set CKPT to k710_uniformerv2_b16_8x224.pyth}" --delete_special_head \
  --batch_size 32 --lr 4e-4 --layer_decay 1.0 --weight_decay 0.05 --warmup_epochs 0 --epochs 5 \
  --mixup 0 --cutmix 0 --test_num_segment 4 --test_num_crop 3 \
  --output_dir "${OUT:-work_dirs/uniformerv2_b16_k400}" "$@"
