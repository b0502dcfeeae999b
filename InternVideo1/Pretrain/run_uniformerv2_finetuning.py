"""UniFormerV2 fine-tuning and multi-view testing on Kinetics-style data."""

import argparse

from internvideo1.pretrain.uniformerv2 import (
    add_uniformerv2_args,
    build_uniformerv2_model,
    load_uniformerv2_pretrained,
)
from ivtools.train.classification import add_classification_args, run_classification

if __name__ == "__main__":
    parser = add_classification_args(add_uniformerv2_args(argparse.ArgumentParser("UniFormerV2 fine-tuning")))
    run_classification(parser.parse_args(), build_uniformerv2_model, load_uniformerv2_pretrained)
