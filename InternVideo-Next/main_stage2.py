"""Stage-2 pretraining of InternVideo-Next (self-distillation from the stage-1 model)."""

import argparse

from internvideo_next.configs import add_pretrain_args
from internvideo_next.engine import run_stage2

if __name__ == "__main__":
    run_stage2(add_pretrain_args(argparse.ArgumentParser(description=__doc__), stage=2).parse_args())
