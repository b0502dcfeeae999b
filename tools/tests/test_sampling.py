"""Frame-index sampling against hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pytest

from ivtools.video import (
    dense_indices,
    fps_indices,
    multi_view_list,
    segment_indices,
    sparse_indices,
    spatial_crop_starts,
    uniform_indices,
)


def test_sparse_eval_takes_staggered_points_of_each_segment():
    # 100 frames, 4 segments: seg_size 99/4 = 24.75, starts round(24.75 * i) = 0, 25, 50, 74.
    assert sparse_indices(100, 4, clip_idx=0, num_clips=1) == [12, 37, 62, 86]
    # two views: offsets int(24.75 / 3 * 1) = 8 and int(24.75 / 3 * 2) = 16
    assert sparse_indices(100, 4, clip_idx=0, num_clips=2) == [8, 33, 58, 82]
    assert sparse_indices(100, 4, clip_idx=1, num_clips=2) == [16, 41, 66, 90]


def test_sparse_train_draws_one_frame_inside_each_segment():
    rng = np.random.default_rng(0)
    bounds = [(0, 25), (25, 50), (50, 74), (74, 99)]
    seen = set()
    for _ in range(200):
        idx = sparse_indices(100, 4, rng=rng)
        assert all(lo <= i <= hi for i, (lo, hi) in zip(idx, bounds, strict=True))
        seen.add(idx[0])
    assert len(seen) > 15  # really random, not a fixed offset


def test_sparse_short_video_stays_in_range():
    idx = sparse_indices(3, 8, clip_idx=0)
    assert len(idx) == 8 and max(idx) <= 2 and idx == sorted(idx)


def test_dense_eval_spreads_clip_starts():
    # 16 frames stride 4 spans 64; 100 frames leave slack 36.
    assert dense_indices(100, 16, 4, clip_idx=0, num_clips=1) == list(range(18, 82, 4))
    assert dense_indices(100, 16, 4, clip_idx=0, num_clips=3)[0] == 0
    assert dense_indices(100, 16, 4, clip_idx=1, num_clips=3)[0] == 18
    assert dense_indices(100, 16, 4, clip_idx=2, num_clips=3) == list(range(36, 100, 4))


def test_dense_short_video_repeats_the_last_frame():
    assert dense_indices(10, 4, 4, clip_idx=0) == [0, 4, 8, 8]


def test_dense_train_keeps_stride_and_range():
    rng = np.random.default_rng(1)
    for _ in range(50):
        idx = dense_indices(40, 8, 2, rng=rng)
        assert np.all(np.diff(idx) == 2) and 0 <= idx[0] <= 24


def test_segment_eval_views():
    assert segment_indices(40, 4, clip_idx=0) == [5, 15, 25, 35]  # middle of 10-frame segments
    # 2 views: tick 10, frames int(10 * x + v * 10 / 2)
    assert segment_indices(40, 4, clip_idx=1, num_clips=2) == [5, 15, 25, 35]
    assert segment_indices(40, 4, clip_idx=0, num_clips=2) == [0, 10, 20, 30]
    assert segment_indices(3, 5, clip_idx=0) == [0, 0, 0, 1, 2]


def test_uniform_matches_the_original_get_frame_indices():
    # linspace(0, 30, 5) -> 0, 7.5, 15, 22.5, 30 -> ints 0, 7, 15, 22, 30; ranges end at next - 1
    assert uniform_indices(30, 4, mode="middle") == [3, 10, 18, 25]  # (22 + 29) // 2
    assert uniform_indices(30, 4, mode="middle", fix_start=2) == [2, 9, 17, 24]
    assert uniform_indices(3, 5, mode="middle") == [0, 1, 2, 2, 2]
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = uniform_indices(30, 4, mode="rand", rng=rng)
        assert [0 <= idx[0] < 6, 7 <= idx[1] < 14, 15 <= idx[2] < 21, 22 <= idx[3] < 29] == [True] * 4


def test_fps_indices_take_slot_centres():
    # 30 fps video of 60 frames (2 s) at 2 fps: slot centres 0.25, 0.75, 1.25, 1.75 s
    assert fps_indices(60, 30.0, 2.0) == [8, 22, 38, 52]
    assert fps_indices(60, 30.0, 2.0, max_frames=3) == [8, 22, 38]


def test_spatial_crops_and_view_list():
    assert spatial_crop_starts(320, 224, 1) == [48]
    assert spatial_crop_starts(320, 224, 3) == [0, 48, 96]
    assert multi_view_list(2, 2, 3)[:4] == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)]
    assert len(multi_view_list(5, 4, 3)) == 60


@pytest.mark.parametrize(
    "call",
    [
        lambda: sparse_indices(0, 8),
        lambda: dense_indices(10, 4, 0),
        lambda: sparse_indices(10, 4, clip_idx=2),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()
