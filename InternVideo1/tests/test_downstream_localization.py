"""Temporal action localization: NMS, target assignment, losses, training and the mAP pipeline."""

import argparse
import json
import math

import numpy as np
import pytest
import torch

from internvideo1.downstream.localization import (
    ActionLocalizer,
    LocalizerConfig,
    assign_targets,
    decode_detections,
    diou_loss_1d,
    level_points,
    localization_loss,
)
from internvideo1.downstream.localization_data import read_activitynet_json
from internvideo1.downstream.localization_engine import add_localization_args, run_localization
from internvideo1.downstream.metrics import Segment, detection_map
from internvideo1.downstream.nms import batched_nms_1d, nms_1d, soft_nms_1d

SEGS = torch.tensor([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 5.0]])
SCORES = torch.tensor([0.9, 0.8, 0.7, 0.6])


def test_nms_1d_by_hand():
    # tIoU with the best: 0.9, 0, 0.5 -> only the near duplicate goes at 0.5 (strictly greater).
    assert nms_1d(SEGS, SCORES, 0.5).tolist() == [0, 2, 3]
    assert nms_1d(SEGS, SCORES, 0.4).tolist() == [0, 2]
    assert nms_1d(SEGS[[3, 0]], SCORES[[3, 0]], 0.4).tolist() == [1]


def test_soft_nms_1d_by_hand():
    segs, scores = soft_nms_1d(SEGS, SCORES, sigma=0.5, min_score=1e-3)
    s3 = 0.6 * math.exp(-0.25 / 0.5)
    s1 = 0.8 * math.exp(-0.81 / 0.5) * math.exp(-0.16 / 0.5)  # decayed by [0, 10], then by [0, 5]
    np.testing.assert_allclose(scores.numpy(), [0.9, 0.7, s3, s1], rtol=1e-5)
    assert segs.tolist() == [[0, 10], [20, 30], [0, 5], [1, 10]]


def test_batched_nms_keeps_other_classes():
    segs, scores, labels = batched_nms_1d(SEGS, SCORES, torch.tensor([0, 1, 0, 0]), 0.4)
    assert labels.tolist() == [0, 1, 0] and scores.tolist() == pytest.approx([0.9, 0.8, 0.7])


def test_assign_targets_center_sampling_and_ranges():
    cfg = LocalizerConfig(input_dim=4, num_classes=2, num_levels=2, regression_ranges=((0, 4), (4, 1e4)))
    points = level_points([16, 8], cfg)
    cls_t, reg_t = assign_targets(points, torch.tensor([[2.0, 4.0], [4.0, 14.0]]), torch.tensor([1, 0]), cfg)
    positive = {(int(points[i, 3]), int(points[i, 0])) for i in cls_t.sum(1).nonzero()[:, 0].tolist()}
    # Short action: level-0 points 2..4; long action: level-1 (stride 2) points 6..12 within 3 steps of centre 9.
    assert positive == {(1, 2), (1, 3), (1, 4), (2, 6), (2, 8), (2, 10), (2, 12)}
    assert reg_t[2].tolist() == [0, 2] and reg_t[4].tolist() == [2, 0] and cls_t[3].tolist() == [0, 1]
    lvl1 = {int(points[i, 0]): reg_t[i].tolist() for i in range(16, 24)}
    assert lvl1[6] == [1, 4] and lvl1[12] == [4, 1]
    assert cls_t[16 + 3].tolist() == [1, 0]


def test_assign_targets_prefers_shortest_action():
    cfg = LocalizerConfig(
        input_dim=4, num_classes=2, num_levels=1, regression_ranges=((0, 1e4),), center_sample_radius=10
    )
    points = level_points([8], cfg)
    cls_t, reg_t = assign_targets(points, torch.tensor([[0.0, 7.0], [4.0, 6.0]]), torch.tensor([0, 1]), cfg)
    assert cls_t[5].tolist() == [0, 1] and reg_t[5].tolist() == [1, 1]
    assert cls_t[2].tolist() == [1, 0] and reg_t[2].tolist() == [2, 5]


def test_diou_loss_by_hand():
    pred = torch.tensor([[1.0, 1.0], [0.0, 2.0], [3.0, 1.0]])
    target = torch.tensor([[2.0, 2.0], [1.0, 1.0], [3.0, 1.0]])
    np.testing.assert_allclose(diou_loss_1d(pred, target).numpy(), [0.5, 1 - 1 / 3 + 1 / 9, 0.0], atol=1e-6)


def test_decode_detections_by_hand():
    cfg = LocalizerConfig(
        input_dim=4, num_classes=3, num_levels=2, regression_ranges=((0, 4), (4, 1e4)), nms_method="hard"
    )
    logits = [torch.full((1, 8, 3), -20.0), torch.full((1, 4, 3), -20.0)]
    offsets = [torch.zeros(1, 8, 2), torch.zeros(1, 4, 2)]
    logits[1][0, 2, 1] = 3.0  # level-1 point at step 4 (stride 2), class 1
    offsets[1][0, 2] = torch.tensor([1.5, 0.5])
    masks = [torch.ones(1, 8, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool)]
    ((segs, scores, labels),) = decode_detections((logits, offsets, masks), cfg)
    assert segs.tolist() == [[1.0, 5.0]] and labels.tolist() == [1]
    assert scores.item() == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def _synthetic_video(rng, length=64, dim=8, num_classes=2):
    """Noise features, with the class's channel raised inside each action."""
    feats = rng.normal(0, 0.3, (length, dim)).astype(np.float32)
    segments, labels = [], []
    for start in (rng.integers(2, 20), rng.integers(34, 50)):
        end = start + rng.integers(6, 14)
        cls = int(rng.integers(0, num_classes))
        feats[start:end, cls] += 2.0
        segments.append((float(start), float(end)))
        labels.append(cls)
    return feats, segments, labels


@pytest.fixture
def one_thread():
    # Dozens of updates on tensors this small are dominated by thread hand-offs; on a busy 2-core
    # machine one thread is several times faster.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_localizer_learns_synthetic_segments(one_thread):
    rng = np.random.default_rng(0)
    cfg = LocalizerConfig(
        input_dim=8, num_classes=2, embed_dim=32, num_levels=4, nms_method="hard", nms_iou=0.3
    )
    model = ActionLocalizer(cfg)
    videos = [_synthetic_video(rng) for _ in range(6)]
    feats = torch.from_numpy(np.stack([v[0] for v in videos])).transpose(1, 2)
    mask = torch.ones(feats.shape[0], feats.shape[2], dtype=torch.bool)
    segments = [torch.tensor(v[1]) - 0.5 for v in videos]  # feature i is centred at i + 0.5
    labels = [torch.tensor(v[2]) for v in videos]
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        loss, metrics = localization_loss(model(feats, mask), segments, labels, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert metrics["num_pos"] > 0
    assert losses[-1] < 0.4 * losses[0]
    model.eval()
    with torch.no_grad():
        results = decode_detections(model(feats, mask), cfg)
    truth = [Segment(str(i), s, e, c) for i, v in enumerate(videos) for (s, e), c in zip(v[1], v[2])]
    preds = [
        Segment(str(i), s + 0.5, e + 0.5, c, p)
        for i, (segs, scores, labs) in enumerate(results)
        for (s, e), p, c in zip(segs.tolist(), scores.tolist(), labs.tolist())
    ]
    assert detection_map(truth, preds, tious=(0.5,))["mAP@0.5"] > 60.0


def test_localizer_masks_padding():
    cfg = LocalizerConfig(input_dim=4, num_classes=2, embed_dim=16, num_levels=3)
    model = ActionLocalizer(cfg).eval()
    x = torch.randn(1, 4, 16)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[:, :12] = True
    padded = x.clone()
    padded[..., 12:] = 100.0  # garbage in the padded tail must not reach the valid steps
    a, b = model(x * mask[:, None], mask), model(padded * mask[:, None], mask)
    torch.testing.assert_close(a[0][0][:, :12], b[0][0][:, :12])
    with pytest.raises(ValueError, match="multiple of 4"):
        model(torch.randn(1, 4, 10), torch.ones(1, 10, dtype=torch.bool))


def _write_tal_dataset(root, rng):
    database = {}
    (root / "feats").mkdir()
    for i in range(6):
        feats, segs, labels = _synthetic_video(rng, length=32 + 8 * (i % 2))
        duration = 2.0 * len(feats)  # two seconds per feature step
        np.save(root / "feats" / f"v{i}.npy", feats)
        database[f"v{i}"] = {
            "subset": "training" if i < 4 else "validation",
            "duration": duration,
            "annotations": [
                {"segment": [2 * s, 2 * e], "label": ["jump", "run"][c]} for (s, e), c in zip(segs, labels)
            ],
        }
    path = root / "ann.json"
    path.write_text(json.dumps({"version": "test", "database": database}))
    return path


def test_run_localization_end_to_end(tmp_path):
    ann = _write_tal_dataset(tmp_path, np.random.default_rng(1))
    videos, classes = read_activitynet_json(ann, "Validation")
    assert classes == ["jump", "run"] and [v.video for v in videos] == ["v4", "v5"]
    args = add_localization_args(argparse.ArgumentParser()).parse_args(
        ["--annotations", str(ann), "--feature_dir", str(tmp_path / "feats"), "--epochs", "2",
         "--batch_size", "2", "--embed_dim", "16", "--num_levels", "3", "--num_workers", "0",
         "--warmup_epochs", "1", "--output_dir", str(tmp_path / "out"), "--tious", "anet"]
    )  # fmt: skip
    history = run_localization(args)
    assert len(history) == 2 and "mAP@0.95" in history[-1] and 0.0 <= history[-1]["average_mAP"] <= 100.0
    assert (tmp_path / "out" / "history.json").is_file()


def test_read_activitynet_json_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "database": {
                    "x": {
                        "subset": "training",
                        "duration": 5,
                        "annotations": [{"segment": [1, 2], "label": "fly"}],
                    }
                }
            }
        )
    )
    with pytest.raises(ValueError, match="'fly' outside the class list"):
        read_activitynet_json(bad, class_names=["run"])
    with pytest.raises(ValueError, match="no videos in subset"):
        read_activitynet_json(bad, "testing")
    (tmp_path / "nodb.json").write_text("{}")
    with pytest.raises(ValueError, match="no 'database' key"):
        read_activitynet_json(tmp_path / "nodb.json")
