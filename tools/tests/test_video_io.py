"""Decoding: every backend returns the frames that were encoded, and bad files fail clearly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from ivtools.video import VideoReadError, available_backends, open_video, read_frames
from ivtools.video.synthetic import coded_frames, read_frame_code

FILE_BACKENDS = [b for b in available_backends() if b != "frames"]
CONTAINERS = ["mp4", "avi", "webm", "mkv"]
INDICES = [0, 7, 8, 31, 30, 59, 0]  # unsorted, repeated, across keyframes (gop 10)


@pytest.mark.parametrize("backend", FILE_BACKENDS)
@pytest.mark.parametrize("container", CONTAINERS)
def test_frames_at_indices_carry_the_encoded_codes(sample_videos, backend, container):
    video = sample_videos[container]
    with open_video(video.path, backend=backend) as reader:
        assert len(reader) == video.num_frames
        assert reader.fps == pytest.approx(video.fps, rel=1e-3)
        frames = reader.get_frames(INDICES)
    assert frames.shape == (len(INDICES), video.height, video.width, 3)
    assert frames.dtype == np.uint8
    assert [read_frame_code(f) for f in frames] == INDICES


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_pixels_match_the_source_up_to_codec_loss(sample_videos, backend):
    video = sample_videos["mp4"]
    source = coded_frames(video.num_frames, video.height, video.width)
    frames = read_frames(video.path, [3, 44], backend=backend)
    error = np.abs(frames.astype(np.int16) - source[[3, 44]].astype(np.int16)).mean()
    assert error < 6.0  # x264 at default quality on smooth content; a wrong frame is ~30 off


def test_backends_agree_with_each_other(sample_videos):
    if len(FILE_BACKENDS) < 2:
        pytest.skip("one decoding backend installed")
    decoded = [read_frames(sample_videos["mp4"].path, [5, 25, 50], backend=b) for b in FILE_BACKENDS]
    for other in decoded[1:]:
        assert np.abs(decoded[0].astype(np.int16) - other.astype(np.int16)).max() <= 3


def test_frame_folder_reads_like_a_video(sample_videos):
    video = sample_videos["frames"]
    with open_video(video.path) as reader:
        assert len(reader) == video.num_frames
        frames = reader.get_frames([2, 40, 13])
    assert [read_frame_code(f) for f in frames] == [2, 40, 13]


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_decoding_to_a_smaller_size_keeps_content(sample_videos, backend):
    frames = read_frames(sample_videos["mp4"].path, [9, 33], backend=backend, size=(48, 80))
    assert frames.shape == (2, 48, 80, 3)
    assert [read_frame_code(f) for f in frames] == [9, 33]


@pytest.mark.parametrize("kind", ["garbage", "empty", "missing"])
def test_unreadable_files_raise_one_error_type_naming_the_file(corrupt_videos, kind):
    path = corrupt_videos[kind]
    with pytest.raises(VideoReadError) as info:
        read_frames(path, [0])
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_truncated_video_never_returns_garbage(corrupt_videos, backend):
    path = corrupt_videos["truncated"]
    try:
        with open_video(path, backend=backend) as reader:
            frames = reader.get_frames([0, len(reader) - 1])
    except VideoReadError as err:
        assert str(path) in str(err)
        return
    # Whatever a backend could decode must be real frames of the video, not filler.
    assert [read_frame_code(f) for f in frames][0] == 0


def test_out_of_range_index_is_an_error_naming_the_file(sample_videos):
    with pytest.raises((VideoReadError, IndexError)) as info:
        read_frames(sample_videos["mp4"].path, [sample_videos["mp4"].num_frames])
    assert "coded.mp4" in str(info.value) or "range" in str(info.value)


def test_video_read_error_survives_pickling_for_worker_processes():
    err = pickle.loads(pickle.dumps(VideoReadError("/data/x.mp4", "moov atom not found")))
    assert err.path == "/data/x.mp4" and "moov atom" in str(err)


def test_backend_can_be_chosen_by_environment(sample_videos, monkeypatch):
    monkeypatch.setenv("IVTOOLS_VIDEO_BACKEND", "pyav")
    with open_video(sample_videos["mp4"].path) as reader:
        assert type(reader).__name__ == "PyAVReader"
    with pytest.raises(ValueError, match="unknown video backend"):
        open_video(sample_videos["mp4"].path, backend="nope")


def test_real_footage_decodes_consistently(real_videos):
    path = real_videos[0]
    with open_video(path, backend="pyav") as reader:
        n = len(reader)
        frames = reader.get_frames([0, n // 2, n - 1])
        again = reader.get_frames([n - 1, n // 2])
    assert frames.shape[0] == 3 and frames.std() > 5  # real content, not a blank frame
    assert np.array_equal(frames[2], again[0]) and np.array_equal(frames[1], again[1])


def test_auto_backend_falls_back_when_decord_cannot_batch_a_frame_width(tmp_path):
    from ivtools.video.synthetic import write_video

    ramp = np.broadcast_to(np.linspace(0, 255, 48, dtype=np.uint8)[None, None, :, None], (10, 32, 48, 3))
    path = write_video(tmp_path / "narrow.mp4", np.ascontiguousarray(ramp), fps=10)
    frames = read_frames(path, [0, 9])  # decord's batch decode fails on 48-px-wide frames
    assert frames.shape == (2, 32, 48, 3)
    assert np.array_equal(frames, read_frames(path, [0, 9], backend="pyav"))
