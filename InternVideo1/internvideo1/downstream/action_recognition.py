"""Action recognition: fine-tune and test an InternVideo1 encoder with the shared classification
pipeline (:func:`ivtools.train.classification.run_classification`: Kinetics/SSv2/UCF/HMDB lists,
RandAugment, mixup, layer decay, multi-view testing).

``--family`` picks the encoder and its arguments: ``videomae`` (VideoMAE ViT, the original's
``vit_*_patch16_224`` names) or ``uniformerv2`` (UniFormerV2 on a CLIP ViT). Everything after it
is the original's argument set for that family.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from internvideo1.pretrain.uniformerv2 import (
    add_uniformerv2_args,
    build_uniformerv2_model,
    load_uniformerv2_pretrained,
)
from internvideo1.pretrain.videomae import (
    add_videomae_finetune_args,
    build_finetune_model,
    load_finetune_pretrained,
)
from ivtools.train.classification import add_classification_args, run_classification

FAMILIES = {
    "videomae": (add_videomae_finetune_args, build_finetune_model, load_finetune_pretrained),
    "uniformerv2": (add_uniformerv2_args, build_uniformerv2_model, load_uniformerv2_pretrained),
}


def _family_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="videomae", help="encoder family")
    return parser


def build_action_recognition_parser(family: str) -> argparse.ArgumentParser:
    """The full parser for one family: ``--family``, the family's model arguments, the pipeline's."""
    if family not in FAMILIES:
        raise ValueError(f"unknown encoder family {family!r}; choose from {sorted(FAMILIES)}")
    parser = argparse.ArgumentParser(
        f"InternVideo1 action recognition ({family})", parents=[_family_parser()]
    )
    return add_classification_args(FAMILIES[family][0](parser))


def parse_action_recognition_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    family = _family_parser().parse_known_args(argv)[0].family
    return build_action_recognition_parser(family).parse_args(argv)


def run_action_recognition(args: argparse.Namespace) -> dict:
    """Fine-tune (or with ``--eval`` only test) the chosen encoder; returns the final metrics."""
    _, build_model, load_pretrained = FAMILIES[args.family]
    return run_classification(args, build_model, load_pretrained)
