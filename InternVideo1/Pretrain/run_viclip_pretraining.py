"""ViCLIP video-text contrastive training, followed by retrieval on --test_file."""

import argparse

from internvideo1.pretrain.viclip import add_viclip_args, run_viclip

if __name__ == "__main__":
    run_viclip(add_viclip_args(argparse.ArgumentParser("ViCLIP training")).parse_args())
