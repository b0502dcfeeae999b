"""Masking generators against hand-computed counts and structure."""

from __future__ import annotations

import pytest
import torch

from internvideo2.data.masking import (
    attention_guided_mask,
    build_mask_generator,
    with_cls_column,
)
from ivtools.data.masking import RandomMaskGenerator, TubeMaskGenerator


def test_mask_types_map_to_shared_generators():
    tube = build_mask_generator("tube", (8, 16, 16), 0.9)
    assert isinstance(tube, TubeMaskGenerator) and tube.num_masked == 8 * int(0.9 * 256)
    assert isinstance(build_mask_generator("random", (4, 7, 7), 0.75), RandomMaskGenerator)


def test_ratio_and_type_validation():
    with pytest.raises(ValueError, match="mask_ratio"):
        build_mask_generator("attention", (2, 2, 2), 1.0)
    with pytest.raises(ValueError, match="mask_type"):
        build_mask_generator("block", (2, 2, 2), 0.5)
    assert build_mask_generator("attention", (2, 2, 2), 0.5) is None


def test_attention_mask_keeps_exact_count_per_frame_and_follows_attention():
    batch, frames, patches = 2, 3, 10
    attn = torch.full((batch * frames, patches), 1e-9)
    attn[:, [1, 4]] = 1.0  # all the weight on two patches in every frame
    mask = attention_guided_mask(attn, batch, mask_ratio=0.8)
    assert mask.shape == (batch, frames * patches)
    per_frame = mask.reshape(batch, frames, patches)
    assert ((~per_frame).sum(-1) == patches - int(patches * 0.8)).all()  # 2 visible per frame
    assert (~per_frame[..., [1, 4]]).all()


def test_cls_column_is_visible():
    mask = torch.tensor([[True, False], [False, True]])
    assert with_cls_column(mask).tolist() == [[False, True, False], [False, False, True]]
