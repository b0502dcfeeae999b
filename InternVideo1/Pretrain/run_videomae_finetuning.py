"""VideoMAE fine-tuning and multi-view testing (the original's ``run_class_finetuning.py``)."""

import argparse

from internvideo1.pretrain.videomae import (
    add_videomae_finetune_args,
    build_finetune_model,
    load_finetune_pretrained,
)
from ivtools.train.classification import add_classification_args, run_classification

if __name__ == "__main__":
    parser = add_classification_args(
        add_videomae_finetune_args(argparse.ArgumentParser("VideoMAE fine-tuning"))
    )
    run_classification(parser.parse_args(), build_finetune_model, load_finetune_pretrained)
