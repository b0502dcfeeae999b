"""Video QA: multiple choice by similarity, answer vocabulary, the open-ended head, end-to-end runs."""

import argparse
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from internvideo1.downstream.video_qa import (
    OpenEndedQAModel,
    add_qa_args,
    build_answer_vocab,
    multiple_choice_predictions,
    read_multiple_choice_json,
    read_open_ended_json,
    run_video_qa,
)
from ivtools.video.synthetic import MOTION_CLASSES


def test_build_answer_vocab_by_frequency_then_name():
    answers = ["dog", "cat", "dog", "bird", "cat", "ant", "dog"]
    assert build_answer_vocab(answers, 3) == ["dog", "cat", "ant"]


def test_multiple_choice_picks_most_similar_candidate():
    videos = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    candidates = [torch.tensor([[0.0, 1.0], [3.0, 0.1], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.2, 5.0]])]
    assert multiple_choice_predictions(videos, candidates).tolist() == [1, 1]


def test_qa_annotation_errors(tmp_path):
    path = tmp_path / "mc.json"
    path.write_text(json.dumps([{"video": "a.mp4", "caption": ["x", "y"], "answer": 2}]))
    with pytest.raises(ValueError, match="answer 2 is not one of its 2 candidates"):
        read_multiple_choice_json(path)
    path.write_text(json.dumps([{"video": "a.mp4", "question": "q"}]))
    with pytest.raises(ValueError, match=r"entry 0 lacks \['answer'\]"):
        read_open_ended_json(path)


def test_open_ended_labels_outside_vocab(tmp_path):
    path = tmp_path / "qa.json"
    rows = [
        {"video": f"v{i}.mp4", "question": "what?", "answer": a}
        for i, a in enumerate(["Dog", "cat", "dog", "emu"])
    ]
    path.write_text(json.dumps(rows))
    qa = read_open_ended_json(path, prefix="/data", max_answers=2)
    assert qa.answers == ["dog", "cat"] and qa.labels.tolist() == [0, 1, 0, -100]
    assert qa.records[0].path == "/data/v0.mp4" and qa.records[0].captions == ("what?",)


class _ColourEncoder(nn.Module):
    """A stand-in dual encoder: the video feature is a linear map of the mean colour."""

    embed_dim, context_length = 4, 8

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 4)

    def encode_video(self, video):
        return self.proj(video.mean((2, 3, 4)))

    def encode_text(self, ids):
        return F.one_hot(ids[:, 1] % 4, 4).float()


def test_open_ended_head_learns_on_frozen_encoder():
    encoder = _ColourEncoder()
    model = OpenEndedQAModel(encoder, num_answers=3, freeze_encoder=True).train()
    colours = torch.eye(3)
    video = colours[:, :, None, None, None].expand(3, 3, 2, 4, 4)  # answer c = the video's colour c
    ids = torch.tensor([[5, 1, 7, 0, 0, 0, 0, 0]]).expand(3, -1)
    target = torch.arange(3)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(model(video, ids), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model(video, ids).argmax(-1).tolist() == [0, 1, 2]
    assert encoder.proj.weight.grad is None and not encoder.training


@pytest.fixture
def motion_qa(tmp_path, motion_dataset, make_bpe):
    rows = {}
    for split in ("train", "val"):
        lines = [line.split() for line in Path(motion_dataset[split]).read_text().splitlines()]
        rows[split] = [(p, MOTION_CLASSES[int(lab)]) for p, lab in lines]
    (tmp_path / "open_train.json").write_text(
        json.dumps(
            [{"video": p, "question": "where does the square move", "answer": d} for p, d in rows["train"]]
        )
    )
    (tmp_path / "open_test.json").write_text(
        json.dumps(
            [{"video": p, "question": "where does the square move", "answer": d} for p, d in rows["val"]]
        )
    )
    (tmp_path / "mc.json").write_text(json.dumps(
        [{"video": p, "caption": [f"moving {c}" for c in MOTION_CLASSES], "answer": MOTION_CLASSES.index(d)}
         for p, d in rows["val"][:4]]))  # fmt: skip
    words = ["a", "square", "moving", "where", "does", "the", "move", *MOTION_CLASSES]
    return tmp_path, make_bpe(words), Path(motion_dataset["root"])


def _qa_args(tmp_path, bpe, root, *extra):
    return add_qa_args(argparse.ArgumentParser()).parse_args(
        ["--bpe_path", str(bpe), "--prefix", str(root), "--num_frames", "8", "--clip_frames", "4",
         "--input_size", "32", "--max_txt_l", "12", "--num_workers", "0", "--device", "cpu", *extra]
    )  # fmt: skip


def test_run_multiple_choice_with_viclip(motion_qa, monkeypatch):
    from internvideo1.models import viclip as vc

    tmp_path, bpe, root = motion_qa
    monkeypatch.setitem(vc._CONFIGS, "b16", ((32, 16, 32, 1, 2, 16), (32, 2, 1)))
    args = _qa_args(
        tmp_path, bpe, root, "--task", "mc", "--model", "viclip_b16", "--test_file", str(tmp_path / "mc.json")
    )
    acc = run_video_qa(args)["mc_accuracy"]
    assert acc in (0.0, 25.0, 50.0, 75.0, 100.0)


def test_run_open_ended_with_multimodal_model(motion_qa, tiny_internvideo_mm):
    tmp_path, bpe, root = motion_qa
    args = _qa_args(
        tmp_path, bpe, root, "--task", "open", "--model", "internvideo_mm_b16", "--train_file",
        str(tmp_path / "open_train.json"), "--test_file", str(tmp_path / "open_test.json"), "--batch_size", "4",
        "--epochs", "1", "--max_updates_per_epoch", "2", "--warmup_epochs", "0", "--lr", "1e-2",
    )  # fmt: skip
    results = run_video_qa(args)
    assert len(results["history"]) == 1 and results["train_loss"] > 0
    assert results["qa_accuracy"] * 12 / 100 == pytest.approx(round(results["qa_accuracy"] * 12 / 100))
