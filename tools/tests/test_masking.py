"""Shared tube / random mask generators against hand-computed counts and structure."""

from __future__ import annotations

import numpy as np
import pytest

from ivtools.data.masking import (
    MASK_GENERATORS,
    RandomMaskGenerator,
    TubeMaskGenerator,
    build_mask_generator,
)


def test_tube_mask_repeats_one_spatial_pattern_with_truncated_count():
    gen = TubeMaskGenerator((8, 16, 16), 0.9)
    assert (gen.num_tokens, gen.num_masked) == (2048, 8 * 230)  # int(0.9 * 256) = 230, not 231
    mask = gen(np.random.default_rng(1))
    assert mask.dtype == bool and mask.shape == (2048,)
    frames = mask.reshape(8, 256)
    assert (frames.sum(1) == 230).all() and (frames == frames[0]).all()
    assert not (gen(np.random.default_rng(2)).reshape(8, 256)[0] == frames[0]).all()


def test_random_mask_exact_total_and_not_tube_shaped():
    gen = RandomMaskGenerator((4, 7, 7), 0.75)
    assert (gen.num_tokens, gen.num_masked) == (196, 147)
    mask = gen(np.random.default_rng(0))
    assert mask.sum() == 147
    frames = mask.reshape(4, 49)
    assert not (frames == frames[0]).all()


def test_same_rng_seed_same_mask_and_global_seed_reproduces():
    gen = RandomMaskGenerator((2, 3, 3), 0.5)
    assert (gen(np.random.default_rng(5)) == gen(np.random.default_rng(5))).all()
    np.random.seed(3)
    first = gen()
    np.random.seed(3)
    assert (gen() == first).all()


def test_zero_ratio_masks_nothing():
    assert not TubeMaskGenerator((2, 2, 2), 0.0)().any()
    assert not RandomMaskGenerator((2, 2, 2), 0.0)().any()


def test_validation_and_names():
    with pytest.raises(ValueError, match="mask_ratio"):
        TubeMaskGenerator((2, 2, 2), 1.0)
    with pytest.raises(ValueError, match="window"):
        RandomMaskGenerator((2, 2), 0.5)
    with pytest.raises(ValueError, match="block"):
        build_mask_generator("block", (2, 2, 2), 0.5)
    assert isinstance(build_mask_generator("t_consist", (1, 2, 2), 0.5), TubeMaskGenerator)
    assert set(MASK_GENERATORS) == {"tube", "t_consist", "random"}
