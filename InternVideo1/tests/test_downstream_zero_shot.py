"""Zero-shot action recognition: prompt averaging by hand, and the entry point on real video files
with an encoder whose features are hand-made (so the right answer is known)."""

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from internvideo1.downstream import zero_shot as zs
from internvideo1.tokenizer import ClipBPETokenizer
from ivtools.video.synthetic import MOTION_CLASSES


class MotionOracle(nn.Module):
    """A stand-in video-text encoder with hand-made features over the four direction words.

    A text's feature counts how often each direction word occurs in it; a clip's feature is the
    one-hot of the direction in which its bright square moves between consecutive frames (found
    by trying every circular shift of the thresholded frame).
    """

    context_length = 8

    def __init__(self, word_ids: list[int]):
        super().__init__()
        self.register_buffer("word_ids", torch.tensor(word_ids))
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the model a device

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids[:, :, None] == self.word_ids).sum(1).float()

    def encode_video(self, clip: torch.Tensor) -> torch.Tensor:
        gray = clip.mean(1)  # B, T, H, W
        low, high = gray.amin((2, 3), keepdim=True), gray.amax((2, 3), keepdim=True)
        bright = gray > (low + high) / 2
        size = bright.shape[-1]
        votes = torch.zeros(clip.shape[0], 4)
        for k, (dim, sign) in enumerate(((3, -1), (3, 1), (2, -1), (2, 1))):  # left right up down
            for step in range(1, size // 2):
                moved = bright[:, :-1].roll(sign * step, dims=dim)
                overlap = (moved & bright[:, 1:]).sum((1, 2, 3)).float()
                votes[:, k] = torch.maximum(votes[:, k], overlap)
        return nn.functional.one_hot(votes.argmax(1), 4).float()


@pytest.fixture
def bpe_words(make_bpe):
    return make_bpe(["a", "video", "of", *MOTION_CLASSES])


def _word_ids(tokenizer) -> list[int]:
    ids, _ = tokenizer(list(MOTION_CLASSES), 8)
    return ids[:, 1].tolist()  # after the start-of-text token


def test_class_features_average_normalised_prompts(bpe_words):
    tokenizer = ClipBPETokenizer(bpe_words)
    model = MotionOracle(_word_ids(tokenizer))
    feats = zs.class_text_features(model, tokenizer, ["right", "up"], templates=("{}", "{} left"))
    # "right" → e_right; "right left" → (e_right + e_left) / sqrt(2); their mean is not renormalised.
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[r / 2, (1 + r) / 2, 0.0, 0.0], [r / 2, 0.0, (1 + r) / 2, 0.0]])
    torch.testing.assert_close(feats, expected)
    # A video's score is the mean cosine over the prompts, whatever its feature's scale.
    scores = zs.zero_shot_scores(torch.tensor([[0.0, 5.0, 0.0, 0.0]]), feats)
    torch.testing.assert_close(scores, torch.tensor([[(1 + r) / 2, 0.0]]))
    probs, labels = zs.zero_shot_predict(scores, topk=5)
    assert labels.tolist() == [[0, 1]] and probs.shape == (1, 2)
    torch.testing.assert_close(probs[0, 0], torch.sigmoid(torch.tensor(100 * (1 + r) / 2)))
    with pytest.raises(ValueError, match="template"):
        zs.class_text_features(model, tokenizer, ["up"], templates=("no slot",))


def _run(tmp_path, motion_dataset, bpe_words, monkeypatch, class_names):
    tokenizer = ClipBPETokenizer(bpe_words)
    monkeypatch.setattr(zs, "encoder_from_args", lambda args: MotionOracle(_word_ids(tokenizer)))
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(class_names) + "\n")
    args = zs.add_zero_shot_args(argparse.ArgumentParser()).parse_args(
        ["--bpe_path", str(bpe_words), "--data_path", str(motion_dataset["val"]), "--class_names", str(names),
         "--prefix", str(motion_dataset["root"]), "--num_frames", "4", "--input_size", "56", "--max_txt_l", "8",
         "--templates", "a video of {}", "{}", "--device", "cpu", "--output_json", str(tmp_path / "out.json")]
    )  # fmt: skip
    return zs.run_zero_shot(args)


def test_zero_shot_entry_point_on_real_videos(tmp_path, motion_dataset, bpe_words, monkeypatch):
    results = _run(tmp_path, motion_dataset, bpe_words, monkeypatch, MOTION_CLASSES)
    assert results == {"top1": 100.0, "top5": 100.0, "num_videos": 12}
    written = json.loads((tmp_path / "out.json").read_text())
    first = Path(motion_dataset["root"]) / "val" / "left_0000.mp4"
    assert written["top5_labels"][str(first)][0] == 0
    # Class names in another order: every video is now named by a wrong label.
    rotated = _run(tmp_path, motion_dataset, bpe_words, monkeypatch, [*MOTION_CLASSES[1:], MOTION_CLASSES[0]])
    assert rotated["top1"] == 0.0 and rotated["top5"] == 100.0
