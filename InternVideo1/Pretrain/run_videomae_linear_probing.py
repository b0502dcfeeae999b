"""VideoMAE linear probing: a classifier on the frozen encoder (the original's ``run_class_linear.py``)."""

import argparse

from internvideo1.pretrain.videomae import (
    add_videomae_linear_args,
    build_linear_probe_model,
    load_finetune_pretrained,
)
from ivtools.train.classification import run_classification

if __name__ == "__main__":
    parser = add_videomae_linear_args(argparse.ArgumentParser("VideoMAE linear probing"))
    run_classification(parser.parse_args(), build_linear_probe_model, load_finetune_pretrained)
