"""InternVideo2 single-modality data: token masking, pretraining clips, Kinetics-710 head maps."""

from .k710 import k710_head_indices, remap_k710_head
from .masking import (
    MASK_TYPES,
    attention_guided_mask,
    build_mask_generator,
    with_cls_column,
)
from .pretrain_dataset import MultiScaleCrop, PretrainRecord, PretrainVideoDataset, read_pretrain_list

__all__ = [
    "MASK_TYPES",
    "MultiScaleCrop",
    "PretrainRecord",
    "PretrainVideoDataset",
    "attention_guided_mask",
    "build_mask_generator",
    "k710_head_indices",
    "read_pretrain_list",
    "remap_k710_head",
    "with_cls_column",
]
