"""Pretraining-list time windows: frames are drawn inside [start_time, end_time] (coded video)."""

import numpy as np
import pytest

from internvideo_next.data.pretrain import build_pretrain_dataset, read_pretrain_list, window_frames
from ivtools.video.synthetic import read_frame_code


def _codes(dataset, index, seed=0):
    frames = dataset.load_frames(dataset.records[index], None, 1, np.random.default_rng(seed))
    return [read_frame_code(f) for f in frames]


def test_frames_come_from_the_window_one_per_segment(make_video, tmp_path):
    video = make_video("coded.mp4", num_frames=64, fps=16)  # 4 seconds
    rows = [f"k400 {video.name} 4.0 1.0 2.5 3", f"k400 {video.name} -1 -1 -1 3", f"{video.name} 0"]
    (tmp_path / "list.txt").write_text("\n".join(rows) + "\n")
    dataset = build_pretrain_dataset(tmp_path / "list.txt", 4, 28, prefix=str(video.parent))
    # fps 64 / 4 s = 16: the window is frames int(16 * 1.0) = 16 .. 16 + int(16 * 1.5) = 40 (24 frames),
    # 4 segments of 6 frames: segment x draws a frame in [16 + 6x, 22 + 6x).
    for seed in range(3):
        codes = _codes(dataset, 0, seed)
        assert [(c - 16) // 6 for c in codes] == [0, 1, 2, 3], codes
    # without a window the whole video is used: segments of 16 frames
    for index in (1, 2):
        assert [c // 16 for c in _codes(dataset, index)] == [0, 1, 2, 3]


def test_window_frames_hand_values():
    assert window_frames(300, 10.0, 2.0, 5.0) == (60, 90)  # 30 fps
    assert window_frames(100, 10.0, 9.5, 12.0) == (95, 5)  # an end past the video is cut at the last frame
    assert window_frames(100, 10.0, 20.0, 21.0) == (99, 1)  # a start past the video keeps the last frame


def test_bad_window_is_reported_with_its_line(tmp_path):
    (tmp_path / "list.txt").write_text("src a.mp4 10 1 2 0\nsrc b.mp4 10 5 3 0\n")
    with pytest.raises(ValueError, match=r"list.txt:2: window start 5.0 end 3.0"):
        read_pretrain_list(tmp_path / "list.txt")
    (tmp_path / "list.txt").write_text("src a.mp4 ten 1 2 0\n")
    with pytest.raises(ValueError, match=r"list.txt:1: total/start/end times"):
        read_pretrain_list(tmp_path / "list.txt")
