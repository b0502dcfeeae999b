"""Supervised instruction fine-tuning of a released-layout InternVideo2.5 chat checkpoint.

Writes resume checkpoints to --output_dir and, at the end, the fine-tuned model in the released
layout to --output_dir/released (load it with run_chat.py --model).
"""

import argparse

from internvideo2_5.engine.finetune import add_finetune_args, run_finetuning


def main() -> None:
    run_finetuning(add_finetune_args(argparse.ArgumentParser(description=__doc__)).parse_args())


if __name__ == "__main__":
    main()
