"""Timestamps, manifest validation with line numbers, and round trips."""

from __future__ import annotations

import gzip
import json
from fractions import Fraction

import pytest

from internvid.jsonio import BadRowsError, RowErrors, iter_json_array
from internvid.manifest import Clip, read_manifest, training_words, write_manifest
from internvid.timestamps import compact_timestamp, format_timestamp, parse_timestamp, to_seconds


@pytest.mark.parametrize(
    "text, millis",
    [
        ("00:10:41.467", 641467),
        ("00:00:00.000", 0),
        ("01:02:03.4", 3723400),
        ("00:00:05", 5000),
        ("123:00:00.001", 123 * 3600 * 1000 + 1),
    ],
)
def test_parse_timestamp(text, millis):
    assert parse_timestamp(text) == millis


@pytest.mark.parametrize("text", ["10:41.467", "00:61:00.000", "00:00:00.1234", "aa:bb:cc.ddd", 12.5, ""])
def test_parse_timestamp_rejects(text):
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(text)


def test_format_and_compact_timestamp():
    assert format_timestamp(641467) == "00:10:41.467"
    assert format_timestamp(3723400) == "01:02:03.400"
    assert compact_timestamp(641467) == "001041467"
    assert to_seconds(641467) == Fraction(641467, 1000)
    with pytest.raises(ValueError, match="negative"):
        format_timestamp(-1)


def test_training_words_matches_the_loaders_normalisation():
    # pre_text: lower-case, drop ,.'!?"()*#:;~ and turn - and / into spaces
    assert training_words("A Man's Bike-Ride (fast)!") == ["a", "mans", "bike", "ride", "fast"]
    assert training_words("...!") == []


def test_clip_key_and_row_round_trip(row, ids, tmp_path):
    rows = [
        row(
            ids[0], "00:10:41.467", "00:10:57.567", "two men in black", UMT_Score=0.4077, Aesthetic_Score=4.6
        ),
        row(ids[1], "00:00:01.000", "00:00:02.500", "a dog", ViCLIP_Score=0.3, Language="en"),
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    clips = read_manifest(path)
    assert [c.line for c in clips] == [1, 2]
    assert clips[0].key == f"{ids[0]}_001041467_001057567"
    assert clips[0].default_clip_path == f"{ids[0]}/{ids[0]}_001041467_001057567.mp4"
    assert clips[0].duration == pytest.approx(16.1)
    assert clips[1].score("ViCLIP_Score") == 0.3
    out = tmp_path / "out.jsonl.gz"
    assert write_manifest(out, clips) == 2
    with gzip.open(out, "rt") as handle:
        written = [json.loads(line) for line in handle]
    assert written == rows  # every column kept, timestamps byte-identical
    assert read_manifest(out) == clips


def test_bad_rows_are_reported_with_line_numbers(row, ids, lines_file):
    path = lines_file(
        "bad.jsonl",
        [
            row(ids[0], "00:00:01.000", "00:00:02.000"),  # 1 good
            "{not json",  # 2
            {"YoutubeID": ids[0], "Caption": "x y"},  # 3 missing timestamps
            row("short", "00:00:01.000", "00:00:02.000"),  # 4 bad id
            row(ids[0], "00:00:03.000", "00:00:02.000"),  # 5 end before start
            row(ids[0], "00:00:01.000", "00:00:02.000", caption="  "),  # 6 empty caption
            row(ids[0], "00:00:01.000", "00:00:02.000", UMT_Score="high"),  # 7 non-numeric score
            "",  # 8 blank lines are skipped, not errors
            "[1, 2]",  # 9 not an object
            row(ids[1], "00:00:01.000", "00:01:02.000"),  # 10 good
        ],
    )
    with pytest.raises(BadRowsError) as info:
        read_manifest(path)
    lines = [e.line for e in info.value.errors]
    assert lines == [2, 3, 4, 5, 6, 7, 9]
    message = str(info.value)
    assert f"{path}:3: missing column(s) Start_timestamp, End_timestamp" in message
    assert f"{path}:5: End_timestamp 00:00:02.000 is not after Start_timestamp 00:00:03.000" in message
    assert "UMT_Score 'high' is not a finite number" in message


def test_reject_mode_keeps_good_rows_and_writes_rejects(row, ids, lines_file, tmp_path):
    path = lines_file(
        "m.jsonl", [row(ids[0], "00:00:01.000", "00:00:02.000"), "oops", row(ids[1], "00:00:01", "00:00:03")]
    )
    rejects = tmp_path / "rejects.jsonl"
    errors = RowErrors("reject", rejects)
    clips = read_manifest(path, errors)
    errors.finish()
    assert [c.youtube_id for c in clips] == [ids[0], ids[1]]
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(w["line"], w["row"]) for w in written] == [(2, "oops")]


def test_unique_and_min_words_and_loose_ids(row, ids, lines_file):
    path = lines_file(
        "m.jsonl",
        [
            row(ids[0], "00:00:01.000", "00:00:02.000"),
            row(ids[0], "00:00:01.000", "00:00:02.000", caption="again, same span"),
            row(ids[0], "00:00:05.000", "00:00:06.000", caption="Hello!"),
            row("my-own_video", "00:00:05.000", "00:00:06.000"),
        ],
    )
    errors = RowErrors("fail")
    clips = read_manifest(path, errors, unique=True, min_caption_words=2, strict_ids=False)
    assert [c.line for c in clips] == [1, 4]
    assert [(e.line, e.reason.split(" (")[0]) for e in errors.errors] == [
        (2, "duplicate of line 1"),
        (3, "Caption 'Hello!' has 1 word(s) after the training's text normalisation"),
    ]


def test_json_list_items_carry_their_start_line(tmp_path):
    path = tmp_path / "list.json"
    path.write_text('[\n  {"a": 1},\n\n  {"b": [1,\n 2]},\n  3\n]\n')
    assert list(iter_json_array(path)) == [(2, {"a": 1}), (4, {"b": [1, 2]}), (6, 3)]
    path.write_text('[\n  {"a": 1}\n  {"b": 2}\n]')
    with pytest.raises(ValueError, match=r"list.json:3: expected ',' or ']'"):
        list(iter_json_array(path))


def test_clip_equality_ignores_line():
    assert Clip("AAAAAAAAAA1", 0, 1000, "x", line=3) == Clip("AAAAAAAAAA1", 0, 1000, "x", line=9)
