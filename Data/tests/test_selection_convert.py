"""Filters on known scores, dedup by time overlap, diversity sampling, training-format conversion."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from internvid.convert import corpus_entry, exact_rate, frame_range, to_annotations
from internvid.cutting import CutOptions, cut_clips
from internvid.jsonio import RowErrors
from internvid.manifest import Clip
from internvid.selection import FilterSpec, dedup_clips, diversity_sample, filter_clips, temporal_overlap
from ivtools.video.synthetic import coded_frames, write_video

A, B = "AAAAAAAAAA1", "BBBBBBBBBB2"


def clip(vid: str, start_s: float, end_s: float, line: int = 0, **fields) -> Clip:
    return Clip(vid, round(start_s * 1000), round(end_s * 1000), f"caption {line}", dict(fields), line)


def test_filter_by_scores_and_duration_is_inclusive():
    clips = [
        clip(A, 0, 2, 1, UMT_Score=0.2, Aesthetic_Score=5.0),
        clip(A, 0, 2, 2, UMT_Score=0.3, Aesthetic_Score=4.0),
        clip(A, 0, 9, 3, UMT_Score=0.4, Aesthetic_Score=6.0),
        clip(A, 0, 0.5, 4, UMT_Score=0.5, Aesthetic_Score=5.0),
        clip(A, 0, 3, 5, UMT_Score=0.5, Aesthetic_Score=7.5),
        clip(A, 0, 3, 6, Aesthetic_Score=5.0),  # no UMT_Score column: an error, not a silent drop
    ]
    errors = RowErrors("fail")
    spec = FilterSpec({"UMT_Score": 0.3}, {"Aesthetic_Score": 7.0}, min_duration=1.0, max_duration=8.0)
    kept, dropped = filter_clips(clips, spec, errors, "m.jsonl")
    assert [c.line for c in kept] == [2]
    assert [(c.line, why) for c, why in dropped] == [
        (1, "UMT_Score 0.2 < 0.3"),
        (3, "duration 9s > 8s"),
        (4, "duration 0.5s < 1s"),
        (5, "Aesthetic_Score 7.5 > 7"),
    ]
    assert [(e.line, e.reason) for e in errors.errors] == [(6, "row has no 'UMT_Score' column")]


def test_filter_by_resolution_probes_the_clip_files(tmp_path):
    small, large = clip(A, 0, 1, 1), clip(B, 0, 1, 2)
    write_video(tmp_path / small.clip_path, coded_frames(5, 48, 80), fps=5)
    write_video(tmp_path / large.clip_path, coded_frames(5, 96, 160), fps=5)
    missing = clip(A, 5, 6, 3)
    errors = RowErrors("fail")
    kept, dropped = filter_clips(
        [small, large, missing], FilterSpec(min_height=60, min_width=100), errors, "m", tmp_path
    )
    assert kept == [large]
    assert [why for _, why in dropped] == ["height 48 < 60"]
    assert [e.line for e in errors.errors] == [3]
    with pytest.raises(ValueError, match="video_root"):
        filter_clips([small], FilterSpec(min_height=1), errors)


def test_temporal_overlap_by_hand():
    a, b = clip(A, 0, 10), clip(A, 2, 10)
    assert temporal_overlap(a, b) == pytest.approx(8 / 10)
    assert temporal_overlap(a, b, "overlap") == pytest.approx(1.0)
    assert temporal_overlap(clip(A, 0, 4), clip(A, 3, 8)) == pytest.approx(1 / 8)
    assert temporal_overlap(a, clip(B, 0, 10)) == 0.0
    assert temporal_overlap(clip(A, 0, 1), clip(A, 1, 2)) == 0.0


def test_dedup_keeps_the_best_scored_of_overlapping_clips():
    clips = [
        clip(A, 0, 10, 1, UMT_Score=0.5),
        clip(A, 2, 10, 2, UMT_Score=0.6),  # IoU 0.8 with line 1, better score: kept
        clip(A, 20, 30, 3, UMT_Score=0.1),
        clip(A, 9, 21, 4, UMT_Score=0.9),  # IoU 1/19 and 1/21: kept
        clip(B, 0, 10, 5, UMT_Score=0.1),  # other video: kept
        clip(A, 21, 29, 6, UMT_Score=0.1),  # IoU 0.8 with line 3, tie on score: the earlier row wins
    ]
    kept, dropped = dedup_clips(clips, RowErrors("fail"), threshold=0.5)
    assert [c.line for c in kept] == [2, 3, 4, 5]
    assert [(c.line, why) for c, why in dropped] == [
        (1, f"overlaps {clips[1].key} (iou 0.800)"),
        (6, f"overlaps {clips[2].key} (iou 0.800)"),
    ]
    kept, _ = dedup_clips(clips, RowErrors("fail"), metric="overlap", threshold=0.05)
    # line 4 (best) covers 1/8 of line 2, 1/10 of lines 1 and 3, and only touches line 6
    assert [c.line for c in kept] == [4, 5, 6]


def test_diversity_sample_matches_the_original_script():
    rng = np.random.default_rng(5)
    clips = [clip(f"VIDEO{int(v):06d}", i, i + 1, i) for i, v in enumerate(rng.integers(0, 7, size=40))]
    # the original div_sampling.py, re-derived: weight 1/count of the video, seed 42, no replacement
    counts = Counter(c.youtube_id for c in clips)
    weights = np.array([1.0 / counts[c.youtube_id] for c in clips])
    np.random.seed(42)
    expected = np.random.choice(len(clips), 15, replace=False, p=weights / weights.sum())
    chosen = diversity_sample(clips, 15, seed=42)
    assert [c.line for c in chosen] == sorted(expected.tolist())
    with pytest.raises(ValueError, match="cannot sample 41"):
        diversity_sample(clips, 41)


@pytest.mark.parametrize(
    "start, end, fps, expected",
    [
        (500, 1500, Fraction(25), (13, 37)),
        (1000, 2000, Fraction(25), (25, 49)),
        (1000, 2000, Fraction(30000, 1001), (30, 59)),  # 29.97 and 59.94 round up to 30 and 60
        (0, 33, Fraction(30), (0, 0)),
    ],
)
def test_frame_range(start, end, fps, expected):
    assert frame_range(start, end, fps) == expected


def test_frame_range_errors_and_exact_rate():
    with pytest.raises(ValueError, match="no frame"):
        frame_range(10, 20, Fraction(25))  # between frames 0 (0 ms) and 1 (40 ms)
    assert exact_rate(30000 / 1001) == Fraction(30000, 1001)
    assert exact_rate(25.0) == 25


def test_internvideo2_and_viclip_rows(source_dir, ids, tmp_path):
    clips = [clip(ids[0], 0.5, 1.5, 1, UMT_Score=0.4), clip(ids[1], 1.0, 2.0, 2, UMT_Score=0.3)]
    errors = RowErrors("fail")
    rows = to_annotations(clips, "viclip", errors, keep_fields=["UMT_Score"])
    assert rows == [
        {"video": f"{ids[0]}/{ids[0]}_000000500_000001500.mp4", "caption": "caption 1", "UMT_Score": 0.4},
        {"video": f"{ids[1]}/{ids[1]}_000001000_000002000.mp4", "caption": "caption 2", "UMT_Score": 0.3},
    ]
    rows = to_annotations(clips, "internvideo2", errors, video_from="source", source_dir=source_dir)
    assert rows == [
        {"video": f"{ids[0]}.mp4", "caption": "caption 1", "video_start_frame": 13, "video_end_frame": 37},
        {"video": f"{ids[1]}.mp4", "caption": "caption 2", "video_start_frame": 25, "video_end_frame": 49},
    ]
    # the loader reads end - start + 1 frames: as many as an exact cut of the same span holds
    summary = cut_clips(
        clips, CutOptions(str(tmp_path / "cut"), str(source_dir), mode="reencode"), progress=False
    )
    assert [r["video_end_frame"] - r["video_start_frame"] + 1 for r in rows] == [
        r.clip_frames for r in summary.results
    ]
    assert errors.errors == []


def test_conversion_errors_are_row_errors(source_dir, ids):
    errors = RowErrors("fail")
    clips = [clip("CCCCCCCCCC3", 0, 1, 7), clip(ids[0], 0, 1, 8)]
    rows = to_annotations(
        clips, "internvideo2", errors, "m.jsonl", video_from="source", source_dir=source_dir
    )
    assert [r["video"] for r in rows] == [f"{ids[0]}.mp4"]
    assert [(e.line, e.reason.split(" not found")[0]) for e in errors.errors] == [
        (7, "source video CCCCCCCCCC3.*")
    ]
    rows = to_annotations(clips, "viclip", errors, keep_fields=["Nope"])
    assert rows == [] and errors.errors[-1].reason == "row has no 'Nope' column to keep"
    with pytest.raises(ValueError, match="only the internvideo2 loader"):
        to_annotations(clips, "viclip", errors, video_from="source", source_dir=source_dir)


def test_corpus_entry_text():
    assert corpus_entry("viclip", "a/x.json", "clips") == "internvid=['a/x.json', 'clips', \"video\"]"
    entry = corpus_entry("internvideo2", "x.json", "src", "source")
    assert (
        entry
        == "internvid=dict(anno_path='x.json', data_root='src', media_type=\"video\", read_clip_from_video=True)"
    )
