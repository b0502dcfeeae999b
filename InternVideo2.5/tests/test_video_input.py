"""Frame sampling, tiling and normalisation as the model card's load_video."""

import numpy as np
import pytest
import torch
from PIL import Image

from internvideo2_5.constants import IMAGENET_MEAN, IMAGENET_STD
from internvideo2_5.data.video import (
    dynamic_preprocess,
    iter_pixel_chunks,
    load_video,
    normalize_tile,
    num_frames_for_duration,
    plan_video,
    released_frame_indices,
)
from ivtools.video import VideoReadError
from ivtools.video.synthetic import coded_frames, read_frame_code, write_video


def test_released_indices_hand_computed():
    # max_frame 39, segment 4.875: int(2.4375 + round(4.875 i)), round-half-to-even (19.5 -> 20).
    assert released_frame_indices(40, 10.0, 8) == [2, 7, 12, 17, 22, 26, 31, 36]
    # A 2-second bound at 10 fps: frames 10..30.
    assert released_frame_indices(40, 10.0, 4, bound=(1.0, 3.0)) == [12, 17, 22, 27]


def test_fewer_frames_than_asked_repeats_frames():
    # segment 0.25: int(0.125 + round(0.25 i)) with round(0.5) = 0 and round(1.5) = 2.
    assert released_frame_indices(3, 25.0, 8) == [0, 0, 0, 1, 1, 1, 2, 2]


def test_num_frames_for_duration():
    assert num_frames_for_duration(10) == 128
    assert num_frames_for_duration(301) == 300
    assert num_frames_for_duration(3600) == 512


def test_dynamic_preprocess_tiles_and_thumbnail():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 255  # right half white
    tiles = dynamic_preprocess(Image.fromarray(image), max_num=6, image_size=50)
    assert len(tiles) == 3  # a 2x1 grid for a 2:1 image, plus the thumbnail
    left, right = np.asarray(tiles[0]), np.asarray(tiles[1])
    # Away from the seam (bicubic rings a few pixels), the tiles are the two halves.
    assert left[:, :40].max() == 0 and right[:, 10:].min() == 255
    assert len(dynamic_preprocess(Image.fromarray(image), max_num=1, image_size=50)) == 1


def test_normalize_constant_tile():
    tile = Image.new("RGB", (8, 8), (255, 0, 128))
    out = normalize_tile(tile, 8)
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD)]
    torch.testing.assert_close(out[:, 3, 3], torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_load_video_reads_the_planned_frames(coded_video):
    plan = plan_video(coded_video, 8)
    assert plan.frame_indices == [2, 7, 12, 17, 22, 26, 31, 36]
    assert plan.timestamps[1] == pytest.approx(0.7)
    clip = load_video(coded_video, 8, input_size=56)
    assert clip.pixel_values.shape == (8, 3, 56, 56) and clip.num_patches_list == [1] * 8
    from ivtools.video import read_frames

    codes = [read_frame_code(f) for f in read_frames(coded_video, plan.frame_indices)]
    assert codes == plan.frame_indices
    chunks = [p for p, _ in iter_pixel_chunks(plan, 3, 56)]
    assert [len(c) for c in chunks] == [3, 3, 2]
    torch.testing.assert_close(torch.cat(chunks), clip.pixel_values)


def test_unreadable_videos_raise_video_read_error(tmp_path, corrupt_videos):
    with pytest.raises(VideoReadError, match="no such file"):
        load_video(tmp_path / "missing.mp4", 4)
    with pytest.raises(VideoReadError):
        load_video(corrupt_videos["garbage"], 4)


def test_short_video_gives_repeated_frames(tmp_path):
    path = write_video(tmp_path / "short.mp4", coded_frames(3, 64, 96), fps=25)
    clip = load_video(path, 8, input_size=28)
    assert clip.pixel_values.shape[0] == 8
    torch.testing.assert_close(clip.pixel_values[0], clip.pixel_values[1])
