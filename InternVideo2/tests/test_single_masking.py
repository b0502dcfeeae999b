"""Masking generators against hand-computed counts and structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from internvideo2.data.masking import (
    RandomMaskingGenerator,
    TubeMaskingGenerator,
    attention_guided_mask,
    build_mask_generator,
    with_cls_column,
)


def test_tube_mask_same_spatial_pattern_in_every_frame():
    gen = TubeMaskingGenerator((8, 16, 16), 0.9)
    mask = gen(np.random.default_rng(1)).reshape(8, 256)
    assert mask.dtype == bool
    assert (mask.sum(1) == int(0.9 * 256)).all()  # 230 per frame, never rounded up
    assert (mask == mask[0]).all()
    other = gen(np.random.default_rng(2)).reshape(8, 256)
    assert not (other[0] == mask[0]).all()  # a fresh pattern per draw


def test_random_mask_exact_total_count_and_varies_over_frames():
    gen = RandomMaskingGenerator((4, 7, 7), 0.75)
    mask = gen(np.random.default_rng(0))
    assert mask.shape == (196,) and mask.sum() == int(0.75 * 196) == 147
    per_frame = mask.reshape(4, 49)
    assert not (per_frame == per_frame[0]).all()


def test_ratio_and_type_validation():
    with pytest.raises(ValueError, match="mask_ratio"):
        TubeMaskingGenerator((2, 2, 2), 1.0)
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
