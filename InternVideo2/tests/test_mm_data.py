"""Annotation parsing, caption cleaning, retrieval index maps, mixed-media batch schedules."""

import json

import numpy as np
import pytest

from internvideo2.mm.data import MediaBatchDataset, RetrievalDataset, load_annotations, pre_text


def test_pre_text_hand_examples():
    assert pre_text("A man's  dog-walk, (at night)!") == "a mans dog walk at night"
    assert pre_text("<person> runs/jumps.", max_words=2) == "person runs"
    with pytest.raises(TypeError, match="string"):
        pre_text(3)


def test_annotation_errors_name_file_and_entry(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"video": "a.mp4", "caption": "x"}, {"video": "b.mp4"}]))
    with pytest.raises(ValueError, match=r"bad.json: entry 1 needs"):
        load_annotations(bad)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ValueError, match="empty.json"):
        load_annotations(empty)
    with pytest.raises(ValueError, match="cannot read"):
        load_annotations(tmp_path / "missing.json")


def test_retrieval_maps_and_paragraphs(tmp_path):
    ann = tmp_path / "test.json"
    ann.write_text(
        json.dumps(
            [
                {"video": "a.mp4", "caption": ["One.", "Two"]},
                {"video": "b.mp4", "caption": "three"},
                {"video": "c.mp4", "caption": ["four", "five", "six"]},
            ]
        )
    )
    records = load_annotations(ann, "/root")
    assert records[0].path == "/root/a.mp4"
    ds = RetrievalDataset(records, transform=None)
    assert ds.texts == ["one", "two", "three", "four", "five", "six"]
    assert ds.txt2vid == [0, 0, 1, 2, 2, 2] and ds.vid2txt == [[0, 1], [2], [3, 4, 5]]
    para = RetrievalDataset(records, transform=None, is_paragraph_retrieval=True)
    assert para.texts == ["one two", "three", "four five six"] and para.vid2txt == [[0], [1], [2]]


class _Pairs:
    def __init__(self, name, n):
        self.name, self.n = name, n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        return (self.name, key[0])


def test_mixed_media_schedule_is_homogeneous_per_step_across_ranks():
    datasets = {"image": _Pairs("image", 23), "video": _Pairs("video", 17)}
    ds = MediaBatchDataset(datasets, {"image": 3, "video": 2}, world_size=2, seed=0)
    # image: 23 // 3 = 7 batches -> 3 blocks of 2 ranks; video: 17 // 2 = 8 batches -> 4 blocks.
    assert len(ds) == (3 + 4) * 2
    for epoch in (0, 1):
        plan = ds.plan(epoch)
        for step in range(len(plan) // 2):  # rank r takes item step * 2 + r
            assert plan[2 * step][0] == plan[2 * step + 1][0]
        for media, size in (("image", 3), ("video", 2)):
            rows = np.concatenate([r for m, r in plan if m == media])
            assert len(rows) == len(set(rows.tolist())) and all(len(r) == size for m, r in plan if m == media)
    assert [m for m, _ in ds.plan(0)] != [m for m, _ in ds.plan(1)] or not np.array_equal(
        ds.plan(0)[0][1], ds.plan(1)[0][1]
    )
    batch = ds[(3, 0)]
    media = ds.plan(0)[3][0]
    assert [b[0] for b in batch] == [media] * ds.batch_sizes[media]
    with pytest.raises(ValueError, match="too few"):
        MediaBatchDataset({"image": _Pairs("image", 2)}, {"image": 3}, world_size=1)
