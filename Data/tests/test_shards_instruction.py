"""WebDataset shard round trips and the video instruction data."""

from __future__ import annotations

import json
import tarfile

import pytest
import torch

from internvid.instruction import (
    InstructionDataset,
    read_instructions,
    to_conversation_row,
    to_qa_row,
    write_instructions,
)
from internvid.jsonio import BadRowsError, RowErrors
from internvid.manifest import Clip
from internvid.shards import ShardDataset, shard_urls, write_shards
from ivtools.video.synthetic import coded_frames, read_frame_code, write_video


@pytest.fixture
def five_clips(tmp_path):
    root = tmp_path / "clips"
    clips = []
    for i in range(5):
        clip = Clip(
            "AAAAAAAAAA1", i * 1000, i * 1000 + 800, f"caption number {i}", {"UMT_Score": i / 10}, line=i + 1
        )
        write_video(root / clip.clip_path, coded_frames(20 + i), fps=25)
        clips.append(clip)
    return root, clips


def test_shards_round_trip(five_clips, tmp_path):
    root, clips = five_clips
    shards = write_shards(
        clips, root, str(tmp_path / "shards" / "iv-%03d.tar"), RowErrors("fail"), max_count=2
    )
    assert [s.count for s in shards] == [2, 2, 1]
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    assert index["total"] == 5 and [s["path"] for s in index["shards"]] == [
        "iv-000.tar",
        "iv-001.tar",
        "iv-002.tar",
    ]
    with tarfile.open(shards[0].path) as tar:
        names = tar.getnames()
    # a sample's members are adjacent (WebDataset groups consecutive members by key)
    assert [n.split(".")[0] for n in names] == [clips[0].key] * 3 + [clips[1].key] * 3
    assert sorted(n.split(".", 1)[1] for n in names[:3]) == ["json", "mp4", "txt"]
    samples = list(ShardDataset(str(tmp_path / "shards" / "shards.json")))
    assert [caption for _, caption, _ in samples] == [c.caption for c in clips]
    for (video, _, meta), clip in zip(samples, clips):
        assert video == (root / clip.clip_path).read_bytes()
        assert meta == clip.to_row()
    decoded = list(
        ShardDataset(
            shard_urls(str(tmp_path / "shards" / "iv-{000..002}.tar")), decode="frames", num_frames=3
        )
    )
    for (frames, _, _), count in zip(decoded, range(20, 25)):
        # middles of 3 equal intervals of `count` frames
        edges = [int(k * count / 3) for k in range(4)]
        assert [read_frame_code(f) for f in frames] == [(edges[k] + edges[k + 1] - 1) // 2 for k in range(3)]


def test_shard_size_limit_and_bad_clips(five_clips, tmp_path):
    root, clips = five_clips
    (root / clips[2].clip_path).unlink()
    errors = RowErrors("fail")
    limit = 20 * 1024 + 6 * 1024  # the end-of-archive record plus room for about one sample
    shards = write_shards(
        clips + [clips[0]], root, str(tmp_path / "s" / "%d.tar"), errors, "m.jsonl", max_size=limit
    )
    assert sum(s.count for s in shards) == 4
    assert all(s.bytes <= limit for s in shards if s.count > 1)
    assert [(e.line, e.reason.split(":")[0]) for e in errors.errors] == [
        (3, "clip file unreadable"),
        (1, f"duplicate key {clips[0].key} (first on line 1)"),
    ]


def test_shards_split_across_dataloader_workers(five_clips, tmp_path):
    root, clips = five_clips
    write_shards(clips, root, str(tmp_path / "w" / "%02d.tar"), RowErrors("fail"), max_count=1)
    loader = torch.utils.data.DataLoader(
        ShardDataset(str(tmp_path / "w" / "shards.json")),
        batch_size=None,
        num_workers=2,
        collate_fn=lambda x: x,
    )
    assert sorted(caption for _, caption, _ in loader) == sorted(c.caption for c in clips)  # each once


QA_ROWS = [
    {"video": "v1.mp4", "QA": [{"q": "Describe the video in detail.", "a": "A man walks."}]},
    {
        "video": "v2.mp4",
        "QA": [{"i": "Answer briefly.", "q": "Who?", "a": "A dog."}, {"q": "Where?", "a": "A park."}],
    },
]


def test_qa_and_conversation_layouts_convert_both_ways(tmp_path):
    path = tmp_path / "instruct.json"
    path.write_text(json.dumps(QA_ROWS, indent=1))
    samples = read_instructions(path)
    assert [s.line for s in samples] == [2, 11]  # where each item's '{' is
    conversation = to_conversation_row(samples[1])
    assert conversation == {
        "video": "v2.mp4",
        "conversations": [
            {"from": "human", "value": "<video>\nAnswer briefly.\nWho?"},
            {"from": "gpt", "value": "A dog."},
            {"from": "human", "value": "Where?"},
            {"from": "gpt", "value": "A park."},
        ],
    }
    assert [to_qa_row(s) for s in samples] == QA_ROWS
    out = tmp_path / "conv.jsonl"
    assert write_instructions(out, samples, "conversations") == 2
    back = read_instructions(out)
    assert (
        to_conversation_row(back[0])["conversations"][0]["value"] == "<video>\nDescribe the video in detail."
    )
    assert [t.prompt for t in back[1].turns] == ["Answer briefly.\nWho?", "Where?"]


def test_bad_instruction_rows_are_reported_by_line(tmp_path):
    rows = [
        {"video": "ok.mp4", "QA": [{"q": "Q?", "a": "A."}]},
        {"video": "x.mp4", "QA": []},
        {"video": "x.mp4", "QA": [{"q": "", "a": "A."}]},
        {"video": "x.mp4", "QA": [{"q": "Q?"}]},
        {"QA": [{"q": "Q?", "a": "A."}]},
        {
            "video": "x.mp4",
            "conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "<video>"}],
        },
        {
            "video": "x.mp4",
            "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "<video> A."}],
        },
        {"video": "x.mp4", "conversations": [{"from": "human", "value": "<video>\nWhat?"}]},
        {"video": "x.mp4", "QA": [{"q": "Q?", "a": "A."}], "conversations": []},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BadRowsError) as info:
        read_instructions(path)
    reasons = {e.line: e.reason for e in info.value.errors}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert reasons[2] == "QA must be a non-empty list of {q, a} turns"
    assert reasons[3] == "QA turn 1 has neither a question ('q') nor an instruction ('i')"
    assert reasons[4] == "QA turn 1 has no 'a'"
    assert reasons[5] == "missing column video"
    assert reasons[6].startswith("message 1 is from 'gpt', expected 'human'")
    assert reasons[7] == "<video> must appear once, in message 1; found in message(s) [2]"
    assert reasons[8].startswith("conversations has 1 messages")
    assert reasons[9] == "row needs exactly one of 'QA' (qa layout) or 'conversations'"
    errors = RowErrors("fail")
    assert [s.video for s in read_instructions(path, errors, video_root=tmp_path)] == []
    assert errors.errors[0].reason == f"video 'ok.mp4' not found under {tmp_path}"


def test_instruction_dataset_loads_frames_and_skips_unreadable_videos(tmp_path):
    write_video(tmp_path / "v1.mp4", coded_frames(16), fps=8)
    (tmp_path / "v2.mp4").write_bytes(b"not a video")
    path = tmp_path / "i.json"
    path.write_text(json.dumps(QA_ROWS))
    dataset = InstructionDataset(read_instructions(path), tmp_path, num_frames=4)
    item = dataset[0]
    assert [read_frame_code(f) for f in item["frames"]] == [
        1,
        5,
        9,
        13,
    ]  # middles of [0,3] [4,7] [8,11] [12,15]
    assert item["conversations"][0]["value"] == "<video>\nDescribe the video in detail."
    assert item["skipped"] == 0
    item = dataset[1]  # v2 is unreadable: the next sample (v1) stands in, and the skip is counted
    assert item["skipped"] == 1 and item["video"].endswith("v1.mp4")
