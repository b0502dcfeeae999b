"""Non-maximum suppression for 1D segments ``(N, 2)`` ``[start, end]``."""

from __future__ import annotations

import torch


def segment_iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise temporal IoU between segments ``a`` ``(N, 2)`` and ``b`` ``(M, 2)``."""
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(
        min=0
    )
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms_1d(segments: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: indices of the kept segments, by decreasing score.

    A segment is dropped when its tIoU with an already kept, higher-scoring one exceeds
    ``iou_threshold``.
    """
    order = scores.argsort(descending=True)
    if order.numel() == 0:
        return order
    iou = segment_iou_matrix(segments[order], segments[order])
    suppressed = torch.zeros(order.numel(), dtype=torch.bool)
    keep = []
    for i in range(order.numel()):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def soft_nms_1d(
    segments: torch.Tensor, scores: torch.Tensor, sigma: float = 0.5, min_score: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian soft-NMS: kept segments and their decayed scores, by decreasing score.

    Each time the best remaining segment is taken, every other remaining score is multiplied by
    ``exp(-iou**2 / sigma)``; segments whose score falls below ``min_score`` are dropped.
    """
    segments, scores = segments.clone(), scores.clone().float()
    kept_segments, kept_scores = [], []
    while scores.numel():
        best = int(scores.argmax())
        if scores[best] < min_score:
            break
        kept_segments.append(segments[best])
        kept_scores.append(scores[best])
        rest = torch.arange(scores.numel()) != best
        segments, scores = segments[rest], scores[rest]
        if scores.numel():
            iou = segment_iou_matrix(kept_segments[-1][None], segments)[0]
            scores = scores * torch.exp(-(iou**2) / sigma)
    if not kept_scores:
        return segments.new_zeros(0, 2), scores.new_zeros(0)
    return torch.stack(kept_segments), torch.stack(kept_scores)


def batched_nms_1d(
    segments: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
    method: str = "hard",
    sigma: float = 0.5,
    min_score: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NMS within each label (``method`` "hard" or "soft"); returns segments, scores, labels."""
    if method not in ("hard", "soft"):
        raise ValueError(f"unknown NMS method {method!r}: use 'hard' or 'soft'")
    out_seg, out_score, out_label = [], [], []
    for label in labels.unique():
        sel = labels == label
        seg, sc = segments[sel], scores[sel]
        if method == "hard":
            keep = nms_1d(seg, sc, iou_threshold)
            seg, sc = seg[keep], sc[keep]
        else:
            seg, sc = soft_nms_1d(seg, sc, sigma, min_score)
        out_seg.append(seg)
        out_score.append(sc)
        out_label.append(torch.full((sc.numel(),), int(label), dtype=torch.long))
    if not out_seg:
        return segments.new_zeros(0, 2), scores.new_zeros(0), labels.new_zeros(0)
    seg, sc, lab = torch.cat(out_seg), torch.cat(out_score), torch.cat(out_label)
    order = sc.argsort(descending=True)
    return seg[order], sc[order], lab[order]
