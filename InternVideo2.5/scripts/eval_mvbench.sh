#!/usr/bin/env bash
# MVBench-style evaluation of a released-layout checkpoint (one process; 128 frames, 16 tokens each).
# Usage: scripts/eval_mvbench.sh MODEL_DIR QUESTIONS_JSON VIDEO_ROOT [OUTPUT_JSON]
set -euo pipefail
cd "$(dirname "$0")/.."
python run_mvbench_eval.py --model "$1" --questions "$2" --video-root "$3" \
    --num-frames 128 --max-new-tokens 32 ${4:+--output "$4"}
