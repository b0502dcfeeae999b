"""Helper started by test_multiprocess.py (directly or through ivtools-launch): fine-tune the tiny
test ViT with the shared classification pipeline, exactly as a generation's run_finetuning.py does.

Usage: python tiny_finetune.py [run_finetuning arguments]
"""

import argparse

from ivtools.testing.tiny import TinyVideoViT
from ivtools.train.classification import add_classification_args, run_classification


def build_model(args: argparse.Namespace) -> TinyVideoViT:
    return TinyVideoViT(num_classes=args.nb_classes, img_size=args.input_size, num_frames=args.num_frames)


if __name__ == "__main__":
    run_classification(add_classification_args(argparse.ArgumentParser()).parse_args(), build_model)
