#!/usr/bin/env bash
# Instruction fine-tuning of InternVideo2_5_Chat_8B with LoRA on the LLM (InternVL's 2nd-stage LoRA
# flags: vision encoder and projector frozen, rank 16; activation checkpointing on, as InternVL's
# default), 16 frames per video, bf16, ZeRO-1.
# Usage: [GPUS=8 NODES=1 SLURM=1 PARTITION=video] scripts/finetune_lora.sh MODEL_DIR DATA VIDEO_ROOT OUTPUT_DIR
# DATA is an annotation JSON/JSONL (VideoChat QA or LLaVA conversations) or a meta JSON of several.
# Full fine-tuning of projector + LLM: replace the LoRA flags by "--freeze_backbone".
set -euo pipefail
cd "$(dirname "$0")/.."
LAUNCH=(ivtools-launch --gpus "${GPUS:-8}" --nodes "${NODES:-1}")
if [ "${SLURM:-0}" = 1 ]; then LAUNCH+=(--slurm --partition "${PARTITION:-video}"); fi
"${LAUNCH[@]}" --job-name internvideo2_5_sft run_finetuning.py -- \
    --model "$1" --data "$2" --video_root "$3" --output_dir "$4" \
    --freeze_backbone --freeze_mlp --freeze_llm --use_llm_lora 16 --grad_checkpoint True \
    --num_frames 16 --batch_size 1 --update_freq 16 --epochs 1 --lr 8e-5 --warmup_epochs 0.03 \
    --weight_decay 0.05 --clip_grad 1.0 --bf16 --enable_deepspeed --zero_stage 1 --num_workers 4
