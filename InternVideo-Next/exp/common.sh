# Sourced by every InternVideo-Next pretraining recipe. `run <entry point> <job name> <args...>`
# launches it through ivtools-launch with the settings all four recipes of the original share
# (SLURM, 16 nodes x 8 GPUs, AdamW, DeepSpeed ZeRO-1, bf16). Environment:
#   DATA_PATH (pretraining list) and BERT (local ModernBERT-large folder): required;
#   NODES, GPUS, PARTITION: cluster shape; SLURM=0 starts local processes instead;
#   OUTPUT_ROOT: where <job name>/ goes (default: the recipe's folder); DRY_RUN=1 prints the command.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAUNCH=(ivtools-launch --gpus "${GPUS:-8}" --nodes "${NODES:-16}" --cpus-per-task 16)
if [ "${SLURM:-1}" = 1 ]; then LAUNCH+=(--slurm --partition "${PARTITION:-video}"); fi
if [ "${DRY_RUN:-0}" = 1 ]; then LAUNCH+=(--dry-run); fi
run() {  # run <entry point> <job name> <args...>
    local script="$1" job="$2"; shift 2
    local out="${OUTPUT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)}/$job"
    "${LAUNCH[@]}" --job-name "$job" "$HERE/$script" -- \
        --data_path "${DATA_PATH:?set DATA_PATH}" --bert_path "${BERT:?set BERT}" \
        --input_size 224 --tubelet_size 1 --layer_scale_init_value 1e-5 \
        --opt adamw --opt_eps 1e-6 --opt_betas 0.9 0.98 --clip_grad 5.0 --weight_decay 0.05 \
        --num_workers 14 --flip --enable_deepspeed --bf16 --zero_stage 1 --output_dir "$out" "$@"
}
