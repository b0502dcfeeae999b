"""Downstream metrics against hand-computed values and scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from internvideo1.downstream.metrics import (
    Segment,
    binary_auroc,
    detection_map,
    retrieval_recall,
    temporal_iou,
    topk_accuracy,
)


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.03, 0.07]])
    top1, top2, top3 = topk_accuracy(scores, torch.tensor([2, 1]), ks=(1, 2, 3))
    assert (top1, top2, top3) == (0.0, 50.0, 100.0)


def test_retrieval_recall_one_caption_per_video():
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.8, 0.3, 0.7], [0.1, 0.2, 0.6]])
    out = retrieval_recall(sim, ks=(1, 2, 5))
    # t2v ranks of the right video: 0, 2, 0; v2t ranks of the right text: 0, 0, 1.
    assert out["t2v_r1"] == pytest.approx(200 / 3)
    assert out["t2v_r2"] == pytest.approx(200 / 3)
    assert out["t2v_r5"] == 100.0
    assert out["t2v_medr"] == 1.0
    assert out["t2v_meanr"] == pytest.approx(1 + 2 / 3)
    assert out["v2t_r1"] == pytest.approx(200 / 3)
    assert out["v2t_r2"] == 100.0
    assert out["mean_r"] == pytest.approx((200 / 3 * 3 + 100 * 3) / 6)


def test_retrieval_recall_several_captions_per_video():
    sim = torch.tensor([[0.2, 0.9], [0.8, 0.1], [0.3, 0.4], [0.6, 0.5]])
    out = retrieval_recall(sim, text_to_video=[0, 0, 1, 1], ks=(1, 2))
    assert out["t2v_r1"] == 50.0 and out["t2v_r2"] == 100.0
    # video 0's best text is t1 (rank 0); video 1's texts are ranked t0, t3, ... -> rank 1.
    assert out["v2t_r1"] == 50.0 and out["v2t_r2"] == 100.0


def test_retrieval_recall_rejects_bad_mapping():
    with pytest.raises(ValueError, match="outside"):
        retrieval_recall(torch.zeros(2, 2), text_to_video=[0, 5])
    with pytest.raises(ValueError, match="no text"):
        retrieval_recall(torch.zeros(2, 2), text_to_video=[0, 0])


def test_binary_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(size=200) + labels, 1)  # rounding creates ties
    assert binary_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert binary_auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
    assert binary_auroc([0.5, 0.5], [0, 1]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        binary_auroc([0.1, 0.2], [1, 1])


def test_temporal_iou_by_hand():
    ious = temporal_iou((2.0, 6.0), np.array([[2.0, 6.0], [4.0, 8.0], [7.0, 9.0], [0.0, 10.0]]))
    np.testing.assert_allclose(ious, [1.0, 2 / 6, 0.0, 0.4])


def _detection_case():
    gt = [Segment("a", 0, 10, 0), Segment("a", 20, 30, 0), Segment("b", 5, 15, 1)]
    preds = [
        Segment("a", 0, 10, 0, 0.9),  # hit
        Segment("a", 1, 10, 0, 0.8),  # duplicate of the matched instance: false positive
        Segment("a", 40, 50, 0, 0.7),  # miss; the second instance is never found
        Segment("a", 0, 10, 1, 0.95),  # class 1 in a video without class 1: false positive first
        Segment("b", 5, 13, 1, 0.5),  # tIoU 0.8
    ]
    return gt, preds


def test_detection_map_duplicates_and_misses():
    gt, preds = _detection_case()
    # class 0: precision 1, 1/2, 1/3 at recall 1/2 -> AP 0.5; class 1: precision 0, 1/2 at recall
    # 0, 1 -> interpolated AP 0.5.
    out = detection_map(gt, preds)
    for t in ("0.3", "0.4", "0.5", "0.6", "0.7"):
        assert out[f"mAP@{t}"] == pytest.approx(50.0)
    assert out["average_mAP"] == pytest.approx(50.0)
    # Above tIoU 0.8 the class-1 prediction no longer counts.
    out = detection_map(gt, preds, tious=(0.5, 0.85))
    assert out["mAP@0.85"] == pytest.approx(25.0)
    assert out["average_mAP"] == pytest.approx(37.5)


def test_detection_map_matches_best_unmatched_instance():
    # Two overlapping instances; the first prediction overlaps both and must take the better one,
    # leaving the other for the second prediction: both are true positives.
    gt = [Segment("v", 0, 10, 0), Segment("v", 8, 18, 0)]
    preds = [Segment("v", 7, 17, 0, 0.9), Segment("v", 0, 9, 0, 0.8)]
    assert detection_map(gt, preds, tious=(0.5,))["mAP@0.5"] == pytest.approx(100.0)
