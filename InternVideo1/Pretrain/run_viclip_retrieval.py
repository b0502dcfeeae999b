"""Zero-shot video-text retrieval with a ViCLIP checkpoint (R@1/5/10 both ways)."""

import argparse

from internvideo1.pretrain.viclip import add_viclip_args, run_viclip

if __name__ == "__main__":
    parser = add_viclip_args(argparse.ArgumentParser("ViCLIP retrieval"))
    parser.set_defaults(evaluate=True)
    run_viclip(parser.parse_args())
