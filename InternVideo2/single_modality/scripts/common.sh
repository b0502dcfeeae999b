# Sourced by every recipe. LAUNCH runs the entry point through ivtools-launch:
#   GPUS=8 NODES=4 SLURM=1 PARTITION=video bash scripts/finetuning/full_tuning/k400_1B_f8.sh
# Without SLURM=1 it starts GPUS local processes (torchrun); GPUS=0 runs one CPU process.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${INTERNVIDEO2_DATA_PATH:-your_data_path}"
MODELS="${INTERNVIDEO2_MODEL_PATH:-your_model_path}"
LAUNCH=(ivtools-launch --gpus "${GPUS:-8}" --nodes "${NODES:-1}")
if [ "${SLURM:-0}" = 1 ]; then LAUNCH+=(--slurm --partition "${PARTITION:-video}"); fi
run() {  # run <entry point> <job name> <args...>
    local script="$1" job="$2"; shift 2
    local out="${OUTPUT_ROOT:-$HERE/outputs}/$job"
    "${LAUNCH[@]}" --job-name "$job" "$HERE/$script" -- "$@" --output_dir "$out" --log_dir "$out"
}
