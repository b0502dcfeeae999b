"""Re-encoding for fast sparse sampling: same frames in the same order, short GOPs, folders resume."""

from __future__ import annotations

import av
import numpy as np
import pytest

from ivtools.video import open_video
from ivtools.video.reencode import (
    ReencodeOptions,
    main,
    output_size,
    reencode_folder,
    reencode_video,
)
from ivtools.video.synthetic import audio_seconds, coded_frames, read_frame_code, write_video


def keyframe_indices(path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sorted((p.pts, p.is_keyframe) for p in container.demux(stream) if p.size)
    return [i for i, (_, key) in enumerate(packets) if key]


def test_output_size_shrinks_the_short_side_keeps_the_aspect_and_never_upscales():
    assert output_size(240, 426, 120) == (120, 212)  # 213 cut to even
    assert output_size(426, 240, 120) == (212, 120)
    assert output_size(96, 160, 320) == (96, 160)
    assert output_size(97, 161) == (96, 160)  # yuv420p needs even sizes


def test_reencoded_video_has_every_frame_in_order_with_the_asked_keyframe_interval(tmp_path):
    src = write_video(tmp_path / "src.mp4", coded_frames(60, 96, 160), fps=30, gop=1000)
    assert keyframe_indices(src) == [0]
    frames = reencode_video(src, tmp_path / "out.mp4", ReencodeOptions(keyint=8, short_side=48))
    assert frames == 60
    keys = keyframe_indices(tmp_path / "out.mp4")
    assert keys[0] == 0 and max(np.diff(keys + [60])) <= 8
    with open_video(tmp_path / "out.mp4", backend="pyav") as reader:
        assert len(reader) == 60 and reader.fps == pytest.approx(30)
        decoded = reader.get_frames(list(range(60)))
    assert decoded.shape == (60, 48, 80, 3)
    assert [read_frame_code(f) for f in decoded] == list(range(60))


def test_soundtrack_is_copied_unless_dropped(tmp_path):
    write_video(tmp_path / "tone.mp4", coded_frames(50, 96, 160), fps=25, gop=1000, tone_hz=440)
    reencode_video(tmp_path / "tone.mp4", tmp_path / "kept.mp4", ReencodeOptions(keyint=10))
    reencode_video(tmp_path / "tone.mp4", tmp_path / "dropped.mp4", ReencodeOptions(keyint=10, audio=False))
    assert audio_seconds(tmp_path / "kept.mp4") == pytest.approx(audio_seconds(tmp_path / "tone.mp4"))
    assert audio_seconds(tmp_path / "kept.mp4") == pytest.approx(2.0, abs=0.1)
    assert audio_seconds(tmp_path / "dropped.mp4") == 0.0
    assert keyframe_indices(tmp_path / "kept.mp4")[:5] == [0, 10, 20, 30, 40]


def test_webm_names_get_h264_in_matroska_that_every_reader_opens(tmp_path):
    src = write_video(tmp_path / "clip.webm", coded_frames(20, 96, 160), fps=25)
    reencode_video(src, tmp_path / "out" / "clip.webm", ReencodeOptions(keyint=4))
    with av.open(str(tmp_path / "out" / "clip.webm")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    with open_video(tmp_path / "out" / "clip.webm") as reader:
        assert [read_frame_code(f) for f in reader.get_frames([0, 9, 19])] == [0, 9, 19]


def test_an_undecodable_source_raises_naming_it_and_leaves_no_output(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    with pytest.raises(RuntimeError, match="bad.mp4"):
        reencode_video(bad, tmp_path / "out" / "bad.mp4", ReencodeOptions())
    assert list((tmp_path / "out").iterdir()) == []


def test_folder_keeps_relative_paths_reports_failures_and_resumes(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    write_video(src / "a" / "one.mp4", coded_frames(12, 96, 160), fps=25)
    write_video(src / "b" / "two.mkv", coded_frames(14, 96, 160), fps=25)
    (src / "b" / "broken.mp4").write_bytes(b"\x00" * 4096)
    (src / "notes.txt").write_text("not a video")
    report = reencode_folder(src, out, ReencodeOptions(keyint=4), workers=2)
    assert sorted(report.done) == [str(src / "a" / "one.mp4"), str(src / "b" / "two.mkv")]
    ((failed, reason),) = report.failed
    assert failed == str(src / "b" / "broken.mp4") and "broken.mp4" in reason
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "a/one.mp4",
        "b/two.mkv",
    ]
    with open_video(out / "b" / "two.mkv") as reader:
        assert len(reader) == 14
    before = (out / "a" / "one.mp4").stat().st_mtime_ns
    again = reencode_folder(src, out, ReencodeOptions(keyint=4))
    assert sorted(again.skipped) == sorted(report.done) and again.done == []
    assert (out / "a" / "one.mp4").stat().st_mtime_ns == before
    assert main([str(src), str(out), "--keyint", "4"]) == 1  # the broken file still fails


def test_bad_options_and_folders_are_named(tmp_path):
    with pytest.raises(ValueError, match="keyint"):
        ReencodeOptions(keyint=0)
    with pytest.raises(FileNotFoundError, match="missing"):
        reencode_folder(tmp_path / "missing", tmp_path / "out", ReencodeOptions())
    with pytest.raises(ValueError, match="must differ"):
        reencode_folder(tmp_path, tmp_path, ReencodeOptions())
    with pytest.raises(ValueError, match=".gif"):
        reencode_video(tmp_path / "a.mp4", tmp_path / "a.gif", ReencodeOptions())


def test_an_output_folder_inside_the_source_folder_is_not_read_as_sources(tmp_path):
    write_video(tmp_path / "one.mp4", coded_frames(8, 96, 160), fps=25)
    first = reencode_folder(tmp_path, tmp_path / "fast", ReencodeOptions(keyint=4))
    second = reencode_folder(tmp_path, tmp_path / "fast", ReencodeOptions(keyint=4))
    assert len(first.done) == 1 and second.skipped == first.done and second.done == []
    assert [p.name for p in (tmp_path / "fast").rglob("*.mp4")] == ["one.mp4"]
