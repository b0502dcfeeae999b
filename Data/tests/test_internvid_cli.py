"""The ``internvid`` command line, end to end on small real videos."""

from __future__ import annotations

import json

from internvid.cli import main


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_validate_reports_bad_rows_and_exit_status(row, ids, lines_file, tmp_path, capsys):
    path = lines_file(
        "m.jsonl", [row(ids[0], "00:00:01.000", "00:00:02.000"), "{oops", row("bad", "00:00:01", "00:00:02")]
    )
    assert main(["validate", str(path), "--rejects", str(tmp_path / "rej.jsonl")]) == 1
    captured = capsys.readouterr()
    assert f"{path}:2: not valid JSON" in captured.err
    assert f"{path}:3: YoutubeID 'bad' is not an 11-character YouTube id" in captured.err
    assert f"{path}: 1 valid, 2 bad" in captured.out
    assert [r["line"] for r in read_jsonl(tmp_path / "rej.jsonl")] == [2, 3]
    assert main(["validate", str(path), "--loose-ids", "--max-report", "0"]) == 1
    good = lines_file("good.jsonl", [row(ids[0], "00:00:01.000", "00:00:02.000")])
    assert main(["validate", str(good)]) == 0


def test_cut_filter_dedup_convert_shard_pipeline(row, ids, lines_file, source_dir, tmp_path, capsys):
    manifest = lines_file(
        "m.jsonl",
        [
            row(ids[0], "00:00:00.500", "00:00:01.500", "a red car drives", UMT_Score=0.40),
            row(ids[0], "00:00:00.600", "00:00:01.500", "a red car again", UMT_Score=0.30),
            row(ids[1], "00:00:01.000", "00:00:02.000", "a blue boat sails", UMT_Score=0.20),
            row("CCCCCCCCCC3", "00:00:01.000", "00:00:02.000", "no such source", UMT_Score=0.9),
        ],
    )
    cut = tmp_path / "cut.jsonl"
    args = ["cut", str(manifest), "--source-dir", str(source_dir), "--out-dir", str(tmp_path / "clips")]
    assert (
        main(
            [
                *args,
                "--mode",
                "reencode",
                "--output",
                str(cut),
                "--failures",
                str(tmp_path / "f.jsonl"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "cut 3, skipped 0 already done, failed 1" in capsys.readouterr().out
    rows = read_jsonl(cut)
    assert [r["clip_frames"] for r in rows] == [25, 23, 25]  # frames 13-37, 15-37, 25-49
    assert [r["key"] for r in read_jsonl(tmp_path / "f.jsonl")] == ["CCCCCCCCCC3_000001000_000002000"]
    assert main([*args, "--mode", "reencode", "--no-progress", "--strict"]) == 1  # one clip still fails
    assert "cut 0, skipped 3 already done, failed 1" in capsys.readouterr().out

    kept = tmp_path / "kept.jsonl"
    assert (
        main(
            [
                "filter",
                str(cut),
                str(kept),
                "--min",
                "UMT_Score=0.25",
                "--min-height",
                "90",
                "--clips-dir",
                str(tmp_path / "clips"),
            ]
        )
        == 0
    )
    assert [r["UMT_Score"] for r in read_jsonl(kept)] == [0.40, 0.30]
    dedup = tmp_path / "dedup.jsonl"
    assert main(["dedup", str(kept), str(dedup), "--dropped", str(tmp_path / "dropped.jsonl")]) == 0
    assert [r["Caption"] for r in read_jsonl(dedup)] == ["a red car drives"]
    assert read_jsonl(tmp_path / "dropped.jsonl")[0]["reason"].startswith("overlaps")

    anno = tmp_path / "anno.json"
    assert main(["convert", str(cut), str(anno), "--to", "viclip", "--data-root", "clips"]) == 0
    assert "internvid=[" in capsys.readouterr().out
    assert json.loads(anno.read_text())[0] == {"video": rows[0]["clip_path"], "caption": "a red car drives"}

    assert (
        main(
            [
                "shard",
                str(dedup),
                "--clips-dir",
                str(tmp_path / "clips"),
                "--pattern",
                str(tmp_path / "sh" / "%04d.tar"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "sh" / "shards.json").read_text())["total"] == 1


def test_convert_rejects_captions_the_loaders_would_drop(row, ids, lines_file, tmp_path, capsys):
    manifest = lines_file(
        "m.jsonl", [row(ids[0], "00:00:01", "00:00:02", "Hello!"), row(ids[0], "00:00:03", "00:00:04")]
    )
    out = tmp_path / "a.json"
    assert main(["convert", str(manifest), str(out), "--to", "internvideo2"]) == 1
    assert "m.jsonl:1: Caption 'Hello!' has 1 word(s)" in capsys.readouterr().err
    assert not out.exists()  # --on-error fail writes nothing
    rejects = tmp_path / "rej.jsonl"
    assert (
        main(
            [
                "convert",
                str(manifest),
                str(out),
                "--to",
                "internvideo2",
                "--on-error",
                "reject",
                "--rejects",
                str(rejects),
            ]
        )
        == 0
    )
    assert len(json.loads(out.read_text())) == 1 and read_jsonl(rejects)[0]["line"] == 1


def test_score_and_sample_with_a_plugin_scorer(row, ids, lines_file, source_dir, tmp_path, monkeypatch):
    (tmp_path / "tiny_scorer.py").write_text(
        "class LengthScorer:\n"
        "    def __init__(self, scale=1.0):\n        self.scale = scale\n"
        "    def score(self, frames, texts):\n        return [self.scale * len(frames) * len(t) for t in texts]\n"
        "class CountCaptioner:\n"
        "    def caption_frames(self, frames):\n        return [f'frame of {len(frames)}' for _ in frames]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    manifest = lines_file(
        "m.jsonl",
        [row(ids[0], "00:00:00", "00:00:01", "abcd"), row(ids[1], "00:00:00", "00:00:01", "ab cd ef")],
    )
    cut = tmp_path / "cut.jsonl"
    assert (
        main(
            [
                "cut",
                str(manifest),
                "--source-dir",
                str(source_dir),
                "--out-dir",
                str(tmp_path / "c"),
                "--output",
                str(cut),
                "--no-progress",
            ]
        )
        == 0
    )
    scored = tmp_path / "scored.jsonl"
    args = [
        "score",
        str(cut),
        str(scored),
        "--clips-dir",
        str(tmp_path / "c"),
        "--scorer",
        "tiny_scorer:LengthScorer",
    ]
    assert main([*args, "--scorer-arg", "scale=0.5", "--num-frames", "3", "--field", "My_Score"]) == 0
    assert [r["My_Score"] for r in read_jsonl(scored)] == [0.5 * 3 * 4, 0.5 * 3 * 8]
    assert main([*args[:-1], "tiny_scorer:Missing"]) == 1
    captioned = tmp_path / "cap.jsonl"
    cap = ["caption", str(cut), str(captioned), "--clips-dir", str(tmp_path / "c"), "--num-frames", "2"]
    assert main([*cap, "--frame-captioner", "tiny_scorer:CountCaptioner", "--field", "Gen"]) == 0
    assert [r["Gen"] for r in read_jsonl(captioned)] == ["frame of 2"] * 2  # repeats joined once
    assert main(cap) == 1  # no captioner named
    sampled = tmp_path / "s.jsonl"
    assert main(["sample", str(scored), str(sampled), "--count", "1"]) == 0
    assert len(read_jsonl(sampled)) == 1


def test_instruct_commands(tmp_path, capsys):
    src = tmp_path / "instruct.json"
    src.write_text(
        json.dumps([{"video": "a.mp4", "QA": [{"q": "What?", "a": "This."}, {"q": "Why?", "a": "So."}]}])
    )
    assert main(["instruct", "validate", str(src)]) == 0
    stats = json.loads(capsys.readouterr().out.splitlines()[0])
    assert stats == {"samples": 1, "turns": 2, "single_turn": 0, "multi_turn": 1, "max_turns": 2}
    out = tmp_path / "sft.json"
    assert main(["instruct", "convert", str(src), str(out), "--to", "conversations"]) == 0
    assert [m["from"] for m in json.loads(out.read_text())[0]["conversations"]] == [
        "human",
        "gpt",
        "human",
        "gpt",
    ]
    assert main(["instruct", "validate", str(src), "--video-root", str(tmp_path)]) == 1
    assert "video 'a.mp4' not found" in capsys.readouterr().err
