"""Clip extraction on real coded videos: exact frames, keyframe copy, audio, resume, failures."""

from __future__ import annotations

import os
import sys

import av
import pytest

from internvid.cutting import CutOptions, annotated_clips, check_download_template, cut_clips, marker_path
from internvid.manifest import Clip
from ivtools.video import open_video
from ivtools.video.synthetic import audio_seconds, coded_frames, read_frame_code, write_video


def codes(path) -> list[int]:
    with open_video(path) as video:
        return [read_frame_code(f) for f in video.get_frames(list(range(len(video))))]


def duration_of(path) -> float:
    with open_video(path) as video:
        return len(video) / video.fps


@pytest.mark.parametrize(
    "start, end, first, last",
    [
        # 25 fps: frame i is shown at i/25 s; keep frames with start <= i/25 < end.
        (500, 1500, 13, 37),  # 12.5 -> 13; 37.5 -> last below is 37
        (1000, 2000, 25, 49),  # exactly on frames: 25 kept, 50 excluded
        (1020, 2990, 26, 74),
        (0, 400, 0, 9),
        (3500, 4000, 88, 99),  # runs to the end of the video
    ],
)
def test_reencode_cuts_exactly_the_requested_frames(source_dir, tmp_path, ids, start, end, first, last):
    clip = Clip(ids[0], start, end, "a clip")
    summary = cut_clips(
        [clip], CutOptions(str(tmp_path / "out"), str(source_dir), mode="reencode"), progress=False
    )
    (result,) = summary.results
    assert result.status == "done", result.reason
    out = tmp_path / "out" / clip.default_clip_path
    assert codes(out) == list(range(first, last + 1))
    assert result.clip_frames == last - first + 1
    assert (result.clip_start_ms, result.clip_end_ms) == (first * 40, (last + 1) * 40)
    assert abs(duration_of(out) - clip.duration) <= 1 / 25 + 1e-9


def test_copy_starts_on_the_keyframe_and_covers_the_span(source_dir, tmp_path, ids):
    clips = [Clip(ids[0], 500, 1500, "a"), Clip(ids[1], 1020, 2990, "b")]
    summary = cut_clips(
        clips, CutOptions(str(tmp_path / "out"), str(source_dir), mode="copy"), progress=False
    )
    for clip, result, (keyframe, wanted_last) in zip(clips, summary.results, [(10, 37), (20, 74)]):
        assert result.status == "done", result.reason
        got = codes(tmp_path / "out" / clip.default_clip_path)
        # keyframes every 10 frames: the copy starts at the last one at or before the first wanted frame
        assert got[0] == keyframe
        assert got == list(range(got[0], got[0] + len(got)))  # gap-free
        assert got[-1] >= wanted_last
        assert result.clip_frames == len(got)
        assert result.clip_start_ms == keyframe * 40
        assert result.clip_end_ms == (got[-1] + 1) * 40


def write_av_source(path, num_frames: int = 100, fps: int = 25) -> None:
    """An H.264 + AAC mp4 whose audio is a 440 Hz tone as long as the video."""
    write_video(path, coded_frames(num_frames, 96, 160), fps=fps, gop=10, tone_hz=440)


def test_audio_is_trimmed_with_the_video(tmp_path):
    write_av_source(tmp_path / "src" / "CCCCCCCCCC3.mp4")
    clip = Clip("CCCCCCCCCC3", 500, 1500, "a tone")
    for mode in ("reencode", "copy"):
        summary = cut_clips(
            [clip], CutOptions(str(tmp_path / mode), str(tmp_path / "src"), mode=mode), progress=False
        )
        out = tmp_path / mode / clip.default_clip_path
        video_seconds = summary.results[0].clip_frames / 25
        gap = audio_seconds(out) - video_seconds
        # AAC codes 1024-sample frames: a re-encode trims to the sample and may pad the last frame;
        # a copy keeps whole packets, so it may also start up to one frame late.
        low = 0 if mode == "reencode" else -1024 / 16000
        assert low - 1e-9 <= gap <= 1024 / 16000 + 1e-9
        no_audio = CutOptions(str(tmp_path / f"{mode}_mute"), str(tmp_path / "src"), mode=mode, audio=False)
        cut_clips([clip], no_audio, progress=False)
        with av.open(str(tmp_path / f"{mode}_mute" / clip.default_clip_path)) as container:
            assert not container.streams.audio


def test_second_run_skips_done_clips_and_redoes_broken_ones(source_dir, tmp_path, ids):
    clips = [Clip(ids[0], 0, 1000, "a"), Clip(ids[0], 2000, 3000, "b"), Clip(ids[1], 1000, 2000, "c")]
    options = CutOptions(str(tmp_path / "out"), str(source_dir), mode="reencode")
    first = cut_clips(clips, options, progress=False)
    assert first.count("done") == 3
    files = [tmp_path / "out" / c.default_clip_path for c in clips]
    untouched = files[2].stat().st_mtime_ns
    # an interrupted run: one clip lost its marker, another was left half-written
    marker_path(files[0]).unlink()
    files[1].write_bytes(files[1].read_bytes()[:100])
    second = cut_clips(clips, options, progress=False)
    assert [r.status for r in second.results] == ["done", "done", "skipped"]
    assert files[2].stat().st_mtime_ns == untouched
    assert codes(files[1]) == list(range(50, 75))
    assert second.results[2].clip_frames == 25  # a skipped clip still reports what it holds
    # a marker from the other mode does not count as done
    third = cut_clips(
        clips[:1], CutOptions(str(tmp_path / "out"), str(source_dir), mode="copy"), progress=False
    )
    assert third.results[0].status == "done"


def test_corrupt_and_missing_sources_are_reported_and_skipped(source_dir, tmp_path, ids):
    (source_dir / f"{ids[1]}.mp4").write_bytes(os.urandom(5000))
    clips = [
        Clip(ids[0], 0, 1000, "good"),
        Clip(ids[1], 0, 1000, "corrupt source"),
        Clip("CCCCCCCCCC3", 0, 1000, "no source"),
        Clip(ids[0], 5000, 6000, "after the end"),
        Clip(ids[0], 1000, 2000, "good too"),
    ]
    summary = cut_clips(clips, CutOptions(str(tmp_path / "out"), str(source_dir)), progress=False)
    assert [r.status for r in summary.results] == ["done", "failed", "failed", "failed", "done"]
    reasons = [r.reason for r in summary.failed]
    assert reasons[0].startswith("cannot open source")
    assert reasons[1].startswith("source missing: no CCCCCCCCCC3.* in")
    assert "no frames between start and end" in reasons[2]
    text = summary.describe()
    assert text.startswith("cut 2, skipped 0 already done, failed 3")
    assert "1x cannot open source" in text and "1x source missing" in text
    assert not list((tmp_path / "out").rglob("*.part"))
    kept = annotated_clips(clips, summary)
    assert [c.caption for c in kept] == ["good", "good too"]
    assert kept[1].fields["clip_path"] == clips[4].default_clip_path
    assert kept[1].fields["clip_frames"] == len(codes(tmp_path / "out" / clips[4].default_clip_path))
    assert kept[1].fields["cut_mode"] == "copy"  # the default


def test_download_command_fetches_missing_sources(source_dir, tmp_path, ids):
    stash = tmp_path / "stash"
    source_dir.rename(stash)
    script = tmp_path / "fetch.py"
    # stands in for yt-dlp: copies the stashed video to {out}, fails for unknown ids
    script.write_text(
        "import shutil, sys\n"
        f"src = {str(stash)!r} + '/' + sys.argv[1] + '.mp4'\n"
        "try:\n    shutil.copy(src, sys.argv[2])\nexcept FileNotFoundError:\n"
        "    sys.exit('ERROR: video unavailable')\n"
    )
    options = CutOptions(
        str(tmp_path / "out"),
        str(tmp_path / "downloads"),
        download_cmd=f"{sys.executable} {script} {{youtube_id}} {{out}}",
        delete_downloaded=True,
    )
    clips = [Clip(ids[0], 0, 1000, "a"), Clip("CCCCCCCCCC3", 0, 1000, "gone")]
    summary = cut_clips(clips, options, workers=2, progress=False)
    assert [r.status for r in summary.results] == ["done", "failed"]
    assert summary.results[1].reason == "download failed: exit status 1: ERROR: video unavailable"
    assert codes(tmp_path / "out" / clips[0].default_clip_path)[0] == 0
    assert not (tmp_path / "downloads" / f"{ids[0]}.mp4").exists()  # deleted after cutting


def test_parallel_run_matches_serial(source_dir, tmp_path, ids):
    clips = [Clip(ids[0], 500, 1500, "a"), Clip(ids[1], 200, 900, "b"), Clip(ids[0], 2000, 2600, "c")]
    serial = cut_clips(
        clips, CutOptions(str(tmp_path / "s"), str(source_dir), mode="reencode"), progress=False
    )
    parallel = cut_clips(
        clips, CutOptions(str(tmp_path / "p"), str(source_dir), mode="reencode"), workers=2, progress=False
    )
    assert [r.key for r in parallel.results] == [c.key for c in clips]  # manifest order kept
    assert [(r.status, r.clip_frames) for r in parallel.results] == [
        (r.status, r.clip_frames) for r in serial.results
    ]
    for clip in clips:
        assert codes(tmp_path / "p" / clip.default_clip_path) == codes(
            tmp_path / "s" / clip.default_clip_path
        )


@pytest.mark.parametrize(
    "template, message",
    [("yt-dlp -o {out} {url}", "unknown field"), ("yt-dlp {youtube_id}", "must contain {out}")],
)
def test_download_template_is_checked(template, message):
    with pytest.raises(ValueError, match=message):
        check_download_template(template)
    with pytest.raises(ValueError, match="mode must be one of"):
        CutOptions("out", "src", mode="fast")
