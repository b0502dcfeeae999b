"""ANet / HACS interval lists: the clip is sampled inside [start, end] of each video.

The video carries its frame index in every frame (``coded_frames``), so the sampled indices are
read back from the decoded pixels and compared with ranges computed by hand from the original's
rule: fps = decoded frames / listed duration, first = int(fps * start), count = int(fps * (end - start)),
then the sparse sampling of ``count`` frames, shifted by ``first``.
"""

from __future__ import annotations

import argparse

import pytest

from ivtools.data import ClipSampling, VideoClassificationDataset, read_interval_list, window_frames
from ivtools.train.classification import DATASETS, add_classification_args, build_classification_datasets
from ivtools.video.synthetic import coded_frames, read_frame_code, write_video

FRAMES, FPS = 50, 10  # a 5 s video


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    root = tmp_path_factory.mktemp("intervals")
    write_video(root / "a b.mp4", coded_frames(FRAMES), fps=FPS)
    return root


def identity(frames, *_):
    return frames


def codes(frames) -> list[int]:
    return [read_frame_code(f) for f in frames]


def dataset(root, lines: list[str], mode: str, segments: int = 1) -> VideoClassificationDataset:
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    records = read_interval_list(root / "list.csv", prefix=str(root), num_classes=3)
    clip = ClipSampling("sparse", num_frames=4, test_num_segment=segments, test_num_crop=1)
    return VideoClassificationDataset(records, mode, clip, identity, num_classes=3)


def test_reader_columns_prefix_and_whole_video_marker(tmp_path):
    (tmp_path / "l.csv").write_text("v/a b.mp4 5.0 1 3.5 2\n\nv/c.mp4 -1 -1 -1 0\n/abs.mp4 8 0 8 1\n")
    a, c, absolute = read_interval_list(tmp_path / "l.csv", prefix="/data")
    assert (a.path, a.label, a.window) == ("/data/v/a b.mp4", 2, (5.0, 1.0, 3.5))
    assert (c.path, c.window) == ("/data/v/c.mp4", None)
    assert (absolute.path, absolute.window) == ("/abs.mp4", (8.0, 0.0, 8.0))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a.mp4 5 1 3", "expected"),
        ("a.mp4 5 x 3 1", "not numbers"),
        ("a.mp4 5 3 3 1", "start < end"),
        ("a.mp4 0 1 3 1", "duration > 0"),
        ("a.mp4 5 1 3 7", "outside the class range"),
    ],
)
def test_reader_errors_name_the_line(tmp_path, line, message):
    (tmp_path / "l.csv").write_text("ok.mp4 5 1 3 0\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"l\.csv:2: .*{message}"):
        read_interval_list(tmp_path / "l.csv", num_classes=3)


def test_window_frames_uses_frame_count_over_listed_duration():
    assert window_frames(50, (5.0, 1.0, 3.0)) == (10, 20)
    assert window_frames(50, (10.0, 2.0, 6.0)) == (10, 20)  # listed at another rate: same frames
    assert window_frames(50, (5.0, 1.05, 1.08)) == (10, 1)  # never empty
    assert window_frames(50, (5.0, 4.5, 6.0)) == (45, 5)  # cut at the last decoded frame
    assert window_frames(50, (5.0, 6.0, 7.0)) == (49, 1)  # starts inside the video


def test_val_and_test_views_sample_inside_the_window(coded):
    # 20-frame window from frame 10: segment 19/4 = 4.75, starts 0, 5, 10, 14, 19.
    line = "a b.mp4 5.0 1.0 3.0 1"
    val = dataset(coded, [line], "val")
    # One view: offset int(4.75 / 2) = 2.
    item = val[0]
    assert codes(item["video"]) == [12, 17, 22, 26] and item["label"] == 1
    # Two temporal views: offsets int(4.75 / 3 * 1) = 1 and int(4.75 / 3 * 2) = 3.
    test = dataset(coded, [line], "test", segments=2)
    assert [codes(test[i]["video"]) for i in range(2)] == [[11, 16, 21, 25], [13, 18, 23, 27]]


def test_listed_duration_not_decoded_rate_sets_the_window(coded):
    # The same 5 s file listed as 10 s long: fps 5, start 2 s -> frame 10, 4 s -> 20 frames.
    assert codes(dataset(coded, ["a b.mp4 10 2 6 0"], "val")[0]["video"]) == [12, 17, 22, 26]


def test_whole_video_marker_and_window_past_the_end(coded):
    # -1: the whole 50 frames, segment 49/4 = 12.25, starts 0, 12, 24, 37, offset 6.
    assert codes(dataset(coded, ["a b.mp4 -1 -1 -1 0"], "val")[0]["video"]) == [6, 18, 30, 43]
    # 4.5 s .. 6 s: from frame 45, 15 frames listed but 5 decoded: segment 4/4 = 1, offset 0.
    assert codes(dataset(coded, ["a b.mp4 5 4.5 6 0"], "val")[0]["video"]) == [45, 46, 47, 48]


def test_training_draws_one_frame_per_segment_of_the_window(coded):
    train = dataset(coded, ["a b.mp4 5.0 1.0 3.0 1"], "train")
    ranges = [(10, 15), (15, 20), (20, 24), (24, 29)]  # 10 + [start_i, start_i+1], both ends included
    seen = set()
    for epoch in range(12):
        sampled = codes(train[(0, epoch)]["video"])
        assert all(lo <= f <= hi for f, (lo, hi) in zip(sampled, ranges)), sampled
        seen.update(sampled)
    assert len(seen) > 8  # random within the segments, not a fixed view


@pytest.mark.parametrize("name", ["ANet_interval", "HACS_interval"])
def test_classification_data_sets_read_interval_lists(coded, name):
    (coded / "train.csv").write_text("a b.mp4 5.0 1.0 3.0 2\n")
    (coded / "val.csv").write_text("a b.mp4 5.0 2.0 4.0 0\n")
    parser = add_classification_args(argparse.ArgumentParser())
    args = parser.parse_args(
        ["--data_set", name, "--data_path", str(coded), "--prefix", str(coded), "--nb_classes", "3"]
        + ["--num_frames", "4", "--test_num_segment", "1", "--test_num_crop", "1"]
    )
    assert DATASETS[name] == ("sparse", True)
    data = build_classification_datasets(args)
    assert data["train"].records[0].window == (5.0, 1.0, 3.0)
    # Test falls back to val.csv: window from frame 20, 20 frames, offset 2 -> 22, 27, 32, 36.
    frames = data["test"].load_frames(data["test"].records[0], 0, 1, rng=None)
    assert codes(frames) == [22, 27, 32, 36]
