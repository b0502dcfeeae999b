"""VideoMAE pretraining (the original's ``run_mae_pretraining.py``)."""

import argparse

from internvideo1.pretrain.videomae import add_videomae_pretraining_args, run_videomae_pretraining

if __name__ == "__main__":
    parser = add_videomae_pretraining_args(argparse.ArgumentParser("VideoMAE pretraining"))
    run_videomae_pretraining(parser.parse_args())
