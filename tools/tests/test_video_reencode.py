"""Re-encoding for fast sparse sampling: same frames in the same order, short GOPs, folders resume."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest

import ivtools.video.reencode as reencode_module
from ivtools.video import available_backends, open_video
from ivtools.video.reencode import (
    VIDEO_SUFFIXES,
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


def test_keyframes_follow_the_asked_interval_not_the_sources(tmp_path):
    src = write_video(tmp_path / "src.mp4", coded_frames(60, 96, 160), fps=30, gop=10)
    reencode_video(src, tmp_path / "short.mp4", ReencodeOptions(keyint=8))
    reencode_video(src, tmp_path / "long.mp4", ReencodeOptions(keyint=40))
    assert keyframe_indices(tmp_path / "short.mp4") == list(range(0, 60, 8))
    assert keyframe_indices(tmp_path / "long.mp4") == [0, 40]


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "frames"])
@pytest.mark.parametrize("suffix", sorted(VIDEO_SUFFIXES))
def test_every_output_name_reads_back_the_right_frames_with_every_backend(tmp_path, suffix, backend):
    src = write_video(tmp_path / "src.mp4", coded_frames(60, 96, 160), fps=30, gop=10)
    out = tmp_path / f"out{suffix}"
    reencode_video(src, out, ReencodeOptions(keyint=8))
    wanted = [0, 1, 10, 29, 59, 33]
    with open_video(out, backend=backend) as reader:
        assert len(reader) == 60
        assert [read_frame_code(f) for f in reader.get_frames(wanted)] == wanted


def frame_times(path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [frame.pts * frame.time_base for frame in container.decode(video=0)]


def test_every_frame_keeps_its_time_in_a_variable_frame_rate_video(tmp_path):
    src = tmp_path / "vfr.mp4"
    ticks = [0, 1, 3, 4, 8, 9, 10, 15, 16, 20]  # in 1/30 s
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 30)
        for tick, image in zip(ticks, coded_frames(len(ticks), 96, 160)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = tick, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    source_times = frame_times(src)
    assert source_times == [Fraction(t, 30) for t in ticks]
    for name in ("out.mp4", "out.mkv"):
        reencode_video(src, tmp_path / name, ReencodeOptions(keyint=4))
        assert frame_times(tmp_path / name) == pytest.approx(source_times, abs=1e-3)


def test_an_output_folder_holding_the_source_folder_still_reads_every_source(tmp_path):
    write_video(tmp_path / "raw" / "one.mp4", coded_frames(8, 96, 160), fps=25)
    report = reencode_folder(tmp_path / "raw", tmp_path, ReencodeOptions(keyint=4))
    assert report.done == [str(tmp_path / "raw" / "one.mp4")]
    assert (tmp_path / "one.mp4").is_file()


def _dies_on_crash_files(job):
    if job[0].name == "crash.mp4":
        os._exit(1)
    return reencode_module._reencode_one_unpatched(job)


def test_a_worker_that_dies_is_reported_not_raised(tmp_path, monkeypatch):
    for name in ("crash.mp4", "fine.mp4"):
        write_video(tmp_path / "src" / name, coded_frames(8, 96, 160), fps=25)
    monkeypatch.setattr(
        reencode_module, "_reencode_one_unpatched", reencode_module._reencode_one, raising=False
    )
    monkeypatch.setattr(reencode_module, "_reencode_one", _dies_on_crash_files)
    report = reencode_folder(tmp_path / "src", tmp_path / "out", ReencodeOptions(keyint=4), workers=2)
    assert str(tmp_path / "src" / "crash.mp4") in [src for src, _ in report.failed]
    assert all("worker process died" in reason for _, reason in report.failed)
    assert len(report.done) + len(report.failed) == 2
