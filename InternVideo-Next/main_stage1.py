"""Stage-1 pretraining of InternVideo-Next (masked video modelling against a SigLIP teacher)."""

import argparse

from internvideo_next.configs import add_pretrain_args
from internvideo_next.engine import run_stage1

if __name__ == "__main__":
    run_stage1(add_pretrain_args(argparse.ArgumentParser(description=__doc__), stage=1).parse_args())
