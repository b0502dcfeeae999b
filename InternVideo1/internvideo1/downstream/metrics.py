"""Metrics of InternVideo1's downstream tasks.

* :func:`topk_accuracy` -- classification top-k (re-exported from :mod:`ivtools.train.evaluation`);
* :func:`retrieval_recall` -- text→video and video→text R@k, median and mean rank;
* :func:`binary_auroc` -- area under the ROC curve (the open-set AUROC);
* :func:`temporal_iou` / :func:`average_precision_at_tiou` / :func:`detection_map` -- ActivityNet's
  detection mAP at temporal-IoU thresholds (0.3:0.7 for THUMOS14, 0.5:0.95 for ActivityNet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ivtools.train.evaluation import topk_accuracy

__all__ = [
    "ANET_TIOUS",
    "THUMOS_TIOUS",
    "Segment",
    "average_precision_at_tiou",
    "binary_auroc",
    "detection_map",
    "interpolated_average_precision",
    "macro_f1",
    "retrieval_recall",
    "temporal_iou",
    "topk_accuracy",
]

THUMOS_TIOUS = (0.3, 0.4, 0.5, 0.6, 0.7)
ANET_TIOUS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())


def _ranks_of_targets(sim: torch.Tensor, targets: list[set[int]]) -> torch.Tensor:
    """0-based rank, in each row of ``sim`` (higher = better), of the best-placed target column."""
    order = sim.argsort(dim=1, descending=True)
    ranks = torch.empty(sim.shape[0], dtype=torch.long)
    for i, cols in enumerate(targets):
        hit = torch.isin(order[i], torch.tensor(sorted(cols), dtype=order.dtype))
        ranks[i] = int(hit.nonzero()[0, 0])
    return ranks


def _recall_table(ranks: torch.Tensor, prefix: str, ks: Sequence[int]) -> dict[str, float]:
    out = {f"{prefix}_r{k}": 100.0 * (ranks < k).float().mean().item() for k in ks}
    out[f"{prefix}_medr"] = float(ranks.float().median().item()) + 1.0
    out[f"{prefix}_meanr"] = float(ranks.float().mean().item()) + 1.0
    return out


def retrieval_recall(
    sim: torch.Tensor, text_to_video: Sequence[int] | None = None, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Retrieval recall in both directions from a ``(num_texts, num_videos)`` similarity matrix.

    ``text_to_video[i]`` is the video of text ``i`` (default: text ``i`` describes video ``i``). A
    text→video query hits at ``k`` when its video is among the ``k`` best; a video→text query
    hits when any of its texts is (the convention for sets with several captions per video).
    Returns ``t2v_r{k}``, ``v2t_r{k}`` (in %), median/mean ranks (1-based) and ``mean_r``, the
    mean of all the R@k values.
    """
    sim = sim.detach().float().cpu()
    n_text, n_video = sim.shape
    if text_to_video is None:
        if n_text != n_video:
            raise ValueError(f"similarity is {n_text}x{n_video}: pass text_to_video for unequal counts")
        text_to_video = range(n_text)
    text_to_video = [int(v) for v in text_to_video]
    if len(text_to_video) != n_text:
        raise ValueError(f"text_to_video has {len(text_to_video)} entries for {n_text} texts")
    bad = [v for v in text_to_video if not 0 <= v < n_video]
    if bad:
        raise ValueError(f"text_to_video names videos {bad[:5]} outside 0..{n_video - 1}")
    texts_of_video: list[set[int]] = [set() for _ in range(n_video)]
    for t, v in enumerate(text_to_video):
        texts_of_video[v].add(t)
    missing = [v for v, texts in enumerate(texts_of_video) if not texts]
    if missing:
        raise ValueError(f"videos {missing[:5]} have no text")
    out = _recall_table(_ranks_of_targets(sim, [{v} for v in text_to_video]), "t2v", ks)
    out.update(_recall_table(_ranks_of_targets(sim.t(), texts_of_video), "v2t", ks))
    out["mean_r"] = float(np.mean([out[f"{d}_r{k}"] for d in ("t2v", "v2t") for k in ks]))
    return out


def binary_auroc(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` separating ``labels == 1`` from ``labels == 0``.

    Computed as the Mann-Whitney statistic: the probability that a random positive outscores a
    random negative, ties counting one half (equal to the trapezoidal ROC area).
    """
    scores = np.asarray(torch.as_tensor(scores).detach().cpu().double().numpy()).ravel()
    labels = np.asarray(torch.as_tensor(labels).detach().cpu().numpy()).ravel().astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs both classes: got {n_pos} positives and {n_neg} negatives")
    # Average ranks of tied scores give each tie half a win.
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_f1(truth: np.ndarray | torch.Tensor, pred: np.ndarray | torch.Tensor, num_classes: int) -> float:
    """Unweighted mean over classes ``0..num_classes-1`` of the per-class F1 (0 for an empty class)."""
    truth = np.asarray(torch.as_tensor(truth).cpu().numpy()).ravel()
    pred = np.asarray(torch.as_tensor(pred).cpu().numpy()).ravel()
    scores = []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (truth == c))
        denom = np.sum(pred == c) + np.sum(truth == c)
        scores.append(2.0 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def temporal_iou(segment: Sequence[float], segments: np.ndarray) -> np.ndarray:
    """IoU in time between one ``[start, end]`` segment and each row of ``segments`` ``(N, 2)``."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(segment[1], segments[:, 1]) - np.maximum(segment[0], segments[:, 0]), 0, None)
    union = (segment[1] - segment[0]) + (segments[:, 1] - segments[:, 0]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision envelope (ActivityNet's interpolated AP, VOC-2010 style)."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mprec[steps]))


@dataclass(frozen=True)
class Segment:
    """One ground-truth or predicted action instance (times in seconds)."""

    video: str
    start: float
    end: float
    label: int
    score: float = 1.0


def average_precision_at_tiou(
    ground_truth: Sequence[Segment], predictions: Sequence[Segment], tious: Sequence[float]
) -> np.ndarray:
    """AP of one class at each tIoU threshold (ActivityNet's matching rule).

    Predictions are visited by decreasing score; each is a true positive at threshold ``t`` when
    some not-yet-matched ground truth of the same video overlaps it with tIoU >= ``t`` (the best
    overlapping one is taken); duplicates of a matched instance are false positives.
    """
    tious = np.asarray(tious, dtype=np.float64)
    if not ground_truth:
        return np.zeros(len(tious))
    by_video: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(ground_truth):
        by_video[g.video].append(i)
    gt_array = np.array([[g.start, g.end] for g in ground_truth], dtype=np.float64)
    preds = sorted(predictions, key=lambda p: -p.score)
    tp = np.zeros((len(tious), len(preds)))
    matched = np.zeros((len(tious), len(ground_truth)), dtype=bool)
    for j, p in enumerate(preds):
        candidates = np.array(by_video.get(p.video, []), dtype=np.int64)
        if candidates.size == 0:
            continue
        ious = temporal_iou((p.start, p.end), gt_array[candidates])
        best_first = np.argsort(-ious, kind="mergesort")
        for t, thr in enumerate(tious):
            for k in best_first:
                if ious[k] < thr:
                    break
                g = candidates[k]
                if not matched[t, g]:
                    matched[t, g] = True
                    tp[t, j] = 1
                    break
    tp_cum = np.cumsum(tp, axis=1)
    fp_cum = np.cumsum(1 - tp, axis=1)
    recall = tp_cum / len(ground_truth)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1e-12)
    return np.array([interpolated_average_precision(precision[t], recall[t]) for t in range(len(tious))])


def detection_map(
    ground_truth: Sequence[Segment],
    predictions: Sequence[Segment],
    tious: Sequence[float] = THUMOS_TIOUS,
    num_classes: int | None = None,
) -> dict[str, float]:
    """Mean AP over the classes that have ground truth, per tIoU and averaged (all in %).

    Returns ``{"mAP@0.5": ..., ..., "average_mAP": ...}``; classes present only in the predictions
    do not enter the mean (as in ActivityNet's evaluation, which averages over the labelled classes).
    """
    gt_by_class: Mapping[int, list[Segment]] = defaultdict(list)
    pred_by_class: Mapping[int, list[Segment]] = defaultdict(list)
    for g in ground_truth:
        gt_by_class[g.label].append(g)
    for p in predictions:
        pred_by_class[p.label].append(p)
    classes = (
        sorted(gt_by_class) if num_classes is None else [c for c in range(num_classes) if gt_by_class[c]]
    )
    if not classes:
        raise ValueError("detection_map needs at least one ground-truth segment")
    ap = np.stack([average_precision_at_tiou(gt_by_class[c], pred_by_class[c], tious) for c in classes])
    per_tiou = 100.0 * ap.mean(axis=0)
    out = {f"mAP@{t:g}": float(v) for t, v in zip(tious, per_tiou)}
    out["average_mAP"] = float(per_tiou.mean())
    return out
