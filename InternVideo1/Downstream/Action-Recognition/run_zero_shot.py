"""Zero-shot action recognition (top-1/top-5) with ViCLIP, InternVideo-MM or the multi-modality model."""

import argparse

from internvideo1.downstream.zero_shot import add_zero_shot_args, run_zero_shot

if __name__ == "__main__":
    run_zero_shot(
        add_zero_shot_args(argparse.ArgumentParser("InternVideo1 zero-shot action recognition")).parse_args()
    )
