"""Annotation parsing, clip datasets (determinism, bad videos), transforms and multi-view scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from ivtools.data import (
    ClipSampling,
    EvalTransform,
    TrainTransform,
    TrainTransformConfig,
    VideoClassificationDataset,
    VideoRecord,
    label_map_between,
    read_video_list,
)
from ivtools.data.transforms import VideoRandAugment
from ivtools.train.evaluation import evaluate_classification, mean_average_precision, topk_accuracy
from ivtools.video.synthetic import read_frame_code


def test_video_list_formats_and_errors_name_the_line(tmp_path):
    listing = tmp_path / "train.csv"
    listing.write_text("a/x.mp4 3\nb/my clip.mp4 120 1\n\nc.mp4 0,2\n")
    records = read_video_list(listing, prefix="/data", num_classes=4)
    assert records == [
        VideoRecord("/data/a/x.mp4", (3,)),
        VideoRecord("/data/b/my clip.mp4", (1,), 120),
        VideoRecord("/data/c.mp4", (0, 2)),
    ]
    listing.write_text("a.mp4 1\nb.mp4 7\n")
    with pytest.raises(ValueError, match=r"train.csv:2: label 7 outside the class range \[0, 4\)"):
        read_video_list(listing, num_classes=4)
    listing.write_text("a.mp4 1\nb.mp4 cat\n")
    with pytest.raises(ValueError, match=r"train.csv:2: label 'cat'"):
        read_video_list(listing)


def test_label_map_between_class_lists():
    # e.g. Kinetics-710 head (source) -> Kinetics-400 classes (target): index into the source
    assert label_map_between(["b", "c", "Riding_Bike", "a"], ["a", "riding bike", "b"]) == [3, 2, 0]
    with pytest.raises(KeyError, match="'d'"):
        label_map_between(["a", "b"], ["a", "d"])


def _dataset(records, mode, transform, **kw):
    return VideoClassificationDataset(records, mode, ClipSampling("sparse", 4, 1, 2, 3), transform, **kw)


def _codes(frames: np.ndarray) -> list[int]:
    return [read_frame_code(f) for f in frames]


def test_training_clips_are_a_function_of_index_and_epoch(sample_videos):
    records = [VideoRecord(str(sample_videos["mp4"].path), (0,))] * 3
    seen = []
    ds = _dataset(records, "train", _codes, num_classes=1, seed=5)
    assert ds[(1, 0)]["video"] == ds[(1, 0)]["video"]  # same key, same clip (any worker, any rank)
    for epoch in range(4):
        seen.append(tuple(ds[(1, epoch)]["video"]))
    assert len(set(seen)) > 1  # a new epoch draws new frames
    for codes in seen:
        assert list(codes) == sorted(codes) and all(0 <= c < 60 for c in codes)


def test_unreadable_training_video_is_replaced_and_counted(sample_videos, corrupt_videos):
    good = VideoRecord(str(sample_videos["mp4"].path), (1,))
    bad = VideoRecord(str(corrupt_videos["garbage"]), (0,))
    ds = _dataset([bad, good], "train", _codes, num_classes=2, seed=0)
    item = ds[(0, 0)]
    assert item["skipped"] >= 1 and item["label"] == 1 and item["index"] == 1
    assert len(item["video"]) == 4


def test_unreadable_test_video_is_excluded_not_faked(sample_videos, corrupt_videos):
    records = [
        VideoRecord(str(corrupt_videos["truncated"]), (0,)),
        VideoRecord(str(corrupt_videos["empty"]), (1,)),
    ]
    ds = _dataset(records, "test", EvalTransform(32, 32, 3), num_classes=2)
    assert len(ds) == 2 * 2 * 3  # videos x clips x crops
    item = ds[len(ds) - 1]
    assert item["valid"] is False and item["skipped"] == 1 and item["index"] == 1


def test_test_views_cover_clips_and_crops(sample_videos):
    video = sample_videos["mp4"]
    records = [VideoRecord(str(video.path), (0,))]
    clip = ClipSampling("sparse", 4, 1, test_num_segment=2, test_num_crop=3)

    def codes_and_crop(frames, crop_idx):
        return _codes(frames), crop_idx

    ds = VideoClassificationDataset(records, "test", clip, codes_and_crop, num_classes=1)
    views = [ds[i]["video"] for i in range(len(ds))]
    assert [crop for _, crop in views] == [0, 1, 2, 0, 1, 2]
    from ivtools.video import sparse_indices

    assert views[0][0] == sparse_indices(60, 4, clip_idx=0, num_clips=2)
    assert views[3][0] == sparse_indices(60, 4, clip_idx=1, num_clips=2)


def test_eval_crops_slide_along_the_long_side():
    frames = np.zeros((2, 40, 80, 3), dtype=np.uint8)
    frames[..., :, :, 0] = np.arange(80, dtype=np.uint8)  # red channel encodes the column
    tf = EvalTransform(crop_size=20, short_side=20, num_crops=3)
    # short side 40 -> 20: width 80 -> 40; 20-px crops start at columns 0, 10, 20 of the resized frame
    firsts = []
    for crop in range(3):
        out = tf(frames, crop)
        assert out.shape == (3, 2, 20, 20)
        firsts.append(out[0, 0, 0, 0])
    assert firsts[0] < firsts[1] < firsts[2]


def test_video_rand_augment_applies_the_same_ops_to_every_frame():
    aug = VideoRandAugment("rand-m9-n6-mstd0.5-inc1", img_size=32)
    frame = np.random.default_rng(0).integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
    clip = torch.from_numpy(np.stack([frame] * 4)).permute(0, 3, 1, 2)  # (T, C, H, W)
    changed = 0
    for _ in range(20):  # many draws: every op (shear, rotate, posterize ...) gets exercised
        out = torch.as_tensor(aug(clip))
        for t in range(1, 4):
            assert torch.equal(out[t], out[0])
        changed += int(not torch.equal(out[0], clip[0]))
    assert changed > 10


def test_train_transform_output_shape_and_normalisation():
    frames = np.full((4, 48, 64, 3), 124, dtype=np.uint8)  # ~ImageNet mean red
    cfg = TrainTransformConfig(input_size=32, rand_augment=None, reprob=0.0)
    out = TrainTransform(cfg)(frames)
    assert out.shape == (3, 4, 32, 32)
    assert abs(out[0].mean().item() - (124 / 255 - 0.485) / 0.229) < 1e-2


class _Lookup(torch.nn.Module):
    """A 'model' whose logits are a fixed table indexed by the clip's first value."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, video):
        return self.table[video[:, 0, 0, 0, 0].long()]


def test_multi_view_scores_are_averaged_per_video_as_softmax():
    torch.manual_seed(0)
    num_videos, views, classes = 5, 3, 4
    logits = torch.randn(num_videos * views, classes) * 3
    labels = torch.tensor([0, 1, 2, 3, 1])
    batches = []
    for start in range(0, num_videos * views, 4):  # views of one video split across batches
        idx = torch.arange(start, min(start + 4, num_videos * views))
        video = idx.float().view(-1, 1, 1, 1, 1).expand(-1, 1, 1, 1, 1).clone()
        batches.append(
            {"video": video, "index": idx // views, "label": labels[idx // views], "valid": idx >= 0}
        )
    result = evaluate_classification(_Lookup(logits), batches, num_videos, classes, torch.device("cpu"))
    scores = logits.softmax(1).view(num_videos, views, classes).mean(1)
    expected_top1 = (scores.argmax(1) == labels).float().mean().item() * 100
    assert result["val_top1"] == pytest.approx(expected_top1)
    assert result["val_videos"] == num_videos


def test_topk_and_map_against_hand_values_and_sklearn():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    assert topk_accuracy(scores, torch.tensor([1, 1, 0]), ks=(1, 2)) == pytest.approx([100 / 3, 200 / 3])
    rng = np.random.default_rng(0)
    s = rng.random((20, 5))
    t = (rng.random((20, 5)) > 0.6).astype(float)
    expected = np.mean([average_precision_score(t[:, c], s[:, c]) for c in range(5) if t[:, c].any()])
    assert mean_average_precision(torch.tensor(s), torch.tensor(t)) == pytest.approx(100 * expected, rel=1e-6)
