"""Classification evaluation with the original's multi-view score averaging.

Every view's logits become probabilities (softmax; sigmoid for multi-label sets) and are summed
into a per-video table indexed by the dataset's ``index``; each video's score is the mean over
its views. The table is summed across ranks, so views of one video may be spread over ranks
and nothing is counted twice. Views of unreadable videos (``valid=False``) are excluded and
counted.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ivtools.distributed import all_reduce_sum


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> list[float]:
    """Percentage of rows whose target is among the ``k`` highest scores, for each ``k``."""
    if scores.shape[0] == 0:
        return [0.0 for _ in ks]
    maxk = min(max(ks), scores.shape[1])
    top = scores.topk(maxk, dim=1).indices
    hits = top.eq(targets.view(-1, 1))
    return [100.0 * hits[:, : min(k, maxk)].any(dim=1).float().mean().item() for k in ks]


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over classes of average precision (classes without positives are skipped), in %."""
    aps = []
    for c in range(scores.shape[1]):
        positives = targets[:, c] > 0
        if not positives.any():
            continue
        order = scores[:, c].argsort(descending=True)
        hits = positives[order].float()
        precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
        aps.append((precision * hits).sum() / hits.sum())
    return 100.0 * torch.stack(aps).mean().item() if aps else 0.0


@torch.no_grad()
def evaluate_classification(
    model: torch.nn.Module,
    loader,
    num_videos: int,
    num_classes: int,
    device: torch.device,
    autocast=contextlib.nullcontext,
    input_dtype: torch.dtype | None = None,
    multi_label: bool = False,
    prefix: str = "val_",
) -> dict:
    """Top-1/top-5 (or mAP) over videos after averaging each video's views; also the mean loss.

    ``input_dtype`` casts the clips (e.g. bf16 for a model that DeepSpeed holds in bf16).
    """
    was_training = model.training
    model.eval()
    score_sum = torch.zeros(num_videos, num_classes, device=device)
    view_count = torch.zeros(num_videos, device=device, dtype=torch.float64)
    targets = torch.zeros(num_videos, num_classes if multi_label else 1, device=device, dtype=torch.float64)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    invalid = torch.zeros((), device=device, dtype=torch.float64)
    for batch in loader:
        valid = batch["valid"].to(device)
        invalid += (~valid).sum()
        if not valid.any():
            continue
        index = batch["index"].to(device)[valid]
        label = batch["label"].to(device)[valid]
        with autocast():
            logits = model(batch["video"].to(device, input_dtype, non_blocking=True)[valid]).float()
        if multi_label:
            probs = logits.sigmoid()
            loss_sum += F.binary_cross_entropy_with_logits(logits, label.float(), reduction="sum")
            targets[index] = label.double()
        else:
            probs = logits.softmax(dim=1)
            loss_sum += F.cross_entropy(logits, label, reduction="sum")
            targets[index, 0] = label.double()
        score_sum.index_add_(0, index, probs)
        view_count.index_add_(0, index, torch.ones_like(index, dtype=torch.float64))
    # A video's label is known on the ranks that scored one of its views: average those copies.
    local_seen = (view_count > 0).double().unsqueeze(1)
    targets = all_reduce_sum(targets * local_seen) / all_reduce_sum(local_seen).clamp(min=1)
    score_sum, view_count, loss_sum, invalid = (
        all_reduce_sum(t) for t in (score_sum, view_count, loss_sum, invalid)
    )
    seen = view_count > 0
    scores = (score_sum[seen] / view_count[seen].unsqueeze(1)).float().cpu()
    result = {
        f"{prefix}loss": (loss_sum / view_count.sum().clamp(min=1)).item(),
        f"{prefix}videos": int(seen.sum().item()),
        f"{prefix}unreadable_views": int(invalid.item()),
    }
    if multi_label:
        result[f"{prefix}mAP"] = mean_average_precision(scores, targets[seen].cpu())
    else:
        top1, top5 = topk_accuracy(scores, targets[seen, 0].long().cpu())
        result.update({f"{prefix}top1": top1, f"{prefix}top5": top5})
    model.train(was_training)
    return result
