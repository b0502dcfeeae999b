"""Anchor-free temporal action localization over pre-extracted clip features (ActionFormer-style).

The original fine-tunes ActionFormer on InternVideo features. This is its smallest real form:

* a masked 1D-conv backbone that builds a feature pyramid (stride 1, 2, 4, ... in feature steps);
* heads shared over levels: per-timestep classification (sigmoid, focal loss) and distances to
  the action's start and end (ReLU, scaled per level, 1 - DIoU loss);
* ground-truth assignment by center sampling and per-level regression ranges;
* decoding to segments with per-class NMS (hard or Gaussian soft-NMS).

Times inside the model are in feature steps; :mod:`.localization_data` converts to seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from internvideo1.downstream.nms import batched_nms_1d


@dataclass
class LocalizerConfig:
    input_dim: int
    num_classes: int
    embed_dim: int = 256
    num_levels: int = 6
    stem_layers: int = 2
    head_layers: int = 2
    kernel_size: int = 3
    # Regression range of each level in feature steps; None: ActionFormer's doubling ranges
    # (0, 4), (4, 8), ..., with the last level open-ended.
    regression_ranges: tuple[tuple[float, float], ...] | None = None
    center_sample_radius: float = 1.5
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    reg_loss_weight: float = 1.0
    dropout: float = 0.0
    # Inference.
    pre_nms_thresh: float = 1e-3
    pre_nms_topk: int = 2000
    nms_method: str = "soft"
    nms_iou: float = 0.5
    nms_sigma: float = 0.5
    min_duration: float = 0.05
    max_detections: int = 200
    prior_prob: float = 0.01

    def __post_init__(self) -> None:
        if self.regression_ranges is None:
            bounds = [0.0] + [4.0 * 2**i for i in range(self.num_levels - 1)] + [1e4]
            self.regression_ranges = tuple(zip(bounds[:-1], bounds[1:]))
        if len(self.regression_ranges) != self.num_levels:
            raise ValueError(
                f"{self.num_levels} pyramid levels need as many regression ranges, got {len(self.regression_ranges)}"
            )

    @property
    def max_stride(self) -> int:
        return 2 ** (self.num_levels - 1)


class MaskedConv1d(nn.Module):
    """Conv1d (stride 1 or 2) that zeroes padded steps and returns the matching mask."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, stride, padding=kernel_size // 2, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stride > 1:
            mask = mask[:, :: self.stride]
        return self.conv(x) * mask[:, None].to(x.dtype), mask


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, T)`` sequence."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvBlock(nn.Module):
    """Pre-norm residual conv block; with ``stride`` 2 it halves the sequence (max-pooled shortcut)."""

    def __init__(self, dim: int, kernel_size: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.stride = stride
        self.norm = ChannelLayerNorm(dim)
        self.conv1 = MaskedConv1d(dim, dim, kernel_size, stride)
        self.conv2 = MaskedConv1d(dim, dim, kernel_size)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shortcut = F.max_pool1d(x, self.stride, self.stride, ceil_mode=True) if self.stride > 1 else x
        y, out_mask = self.conv1(F.gelu(self.norm(x)), mask)
        y, out_mask = self.conv2(F.gelu(y), out_mask)
        return (shortcut + self.drop(y)) * out_mask[:, None].to(x.dtype), out_mask


class PredictionHead(nn.Module):
    """Conv layers shared over pyramid levels, then a conv to ``out_dim`` per step."""

    def __init__(self, dim: int, out_dim: int, num_layers: int, kernel_size: int):
        super().__init__()
        self.convs = nn.ModuleList(MaskedConv1d(dim, dim, kernel_size, bias=False) for _ in range(num_layers))
        self.norms = nn.ModuleList(ChannelLayerNorm(dim) for _ in range(num_layers))
        self.out = MaskedConv1d(dim, out_dim, kernel_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x, mask)[0]))
        return self.out(x, mask)[0]


class ActionLocalizer(nn.Module):
    """Features ``(B, C, T)`` + valid mask ``(B, T)`` → per-level class logits and distances."""

    def __init__(self, cfg: LocalizerConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.embed = MaskedConv1d(cfg.input_dim, d, cfg.kernel_size)
        self.embed_norm = ChannelLayerNorm(d)
        self.stem = nn.ModuleList(
            ConvBlock(d, cfg.kernel_size, 1, cfg.dropout) for _ in range(cfg.stem_layers)
        )
        self.branch = nn.ModuleList(
            ConvBlock(d, cfg.kernel_size, 2, cfg.dropout) for _ in range(cfg.num_levels - 1)
        )
        self.level_norms = nn.ModuleList(ChannelLayerNorm(d) for _ in range(cfg.num_levels))
        self.cls_head = PredictionHead(d, cfg.num_classes, cfg.head_layers, cfg.kernel_size)
        self.reg_head = PredictionHead(d, 2, cfg.head_layers, cfg.kernel_size)
        # Levels share the regression head; a learnt scale per level lets each keep its range.
        self.reg_scales = nn.Parameter(torch.ones(cfg.num_levels))
        # Focal-loss prior: start every class at probability ``prior_prob`` so that the many
        # background steps do not swamp the first updates.
        nn.init.constant_(self.cls_head.out.conv.bias, -math.log((1 - cfg.prior_prob) / cfg.prior_prob))

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> tuple[list, list, list]:
        """Returns per level: class logits ``(B, T_l, K)``, distances ``(B, T_l, 2)``, masks ``(B, T_l)``."""
        if feats.shape[-1] % self.cfg.max_stride:
            raise ValueError(f"sequence length {feats.shape[-1]} is not a multiple of {self.cfg.max_stride}")
        x, mask = self.embed(feats, mask)
        x = F.relu(self.embed_norm(x))
        for block in self.stem:
            x, mask = block(x, mask)
        levels, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            levels.append(x)
            masks.append(mask)
        logits, offsets = [], []
        for lvl, (x, mask) in enumerate(zip(levels, masks)):
            x = self.level_norms[lvl](x)
            logits.append(self.cls_head(x, mask).transpose(1, 2))
            offsets.append(F.relu(self.reg_head(x, mask) * self.reg_scales[lvl]).transpose(1, 2))
        return logits, offsets, masks


def level_points(lengths: list[int], cfg: LocalizerConfig, device=None) -> torch.Tensor:
    """Every pyramid step as ``(position, range_min, range_max, stride)``, levels concatenated."""
    rows = []
    for lvl, n in enumerate(lengths):
        stride = 2**lvl
        lo, hi = cfg.regression_ranges[lvl]
        pos = torch.arange(n, dtype=torch.float32, device=device) * stride
        rows.append(
            torch.stack(
                [pos, torch.full_like(pos, lo), torch.full_like(pos, hi), torch.full_like(pos, stride)], 1
            )
        )
    return torch.cat(rows)


def assign_targets(
    points: torch.Tensor, segments: torch.Tensor, labels: torch.Tensor, cfg: LocalizerConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class targets ``(P, K)`` and distance targets ``(P, 2)`` (in strides) for one video.

    A point is positive for an action when it lies within ``center_sample_radius`` strides of
    the action's centre (and inside the action) and its larger distance to the boundaries falls
    in its level's regression range; a point claimed by several actions takes the shortest.
    """
    num_points = points.shape[0]
    cls_t = points.new_zeros(num_points, cfg.num_classes)
    reg_t = points.new_zeros(num_points, 2)
    if segments.numel() == 0:
        return cls_t, reg_t
    pos, lo, hi, stride = points.unbind(1)
    start, end = segments[:, 0][None], segments[:, 1][None]
    left, right = pos[:, None] - start, end - pos[:, None]
    centre = (start + end) / 2
    radius = stride[:, None] * cfg.center_sample_radius
    in_centre = (
        torch.minimum(
            pos[:, None] - torch.maximum(centre - radius, start),
            torch.minimum(centre + radius, end) - pos[:, None],
        )
        >= 0
    )
    reach = torch.maximum(left, right)
    in_range = (reach >= lo[:, None]) & (reach <= hi[:, None])
    lengths = (end - start).expand(num_points, -1).masked_fill(~(in_centre & in_range), math.inf)
    best_len, best = lengths.min(dim=1)
    positive = torch.isfinite(best_len)
    rows = positive.nonzero(as_tuple=True)[0]
    cls_t[rows, labels[best[rows]]] = 1.0
    reg_t[rows] = torch.stack([left[rows, best[rows]], right[rows, best[rows]]], 1) / stride[rows, None]
    return cls_t, reg_t


def diou_loss_1d(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pair ``1 - DIoU`` between distance pairs ``(N, 2)`` measured from the same point."""
    lp, rp = pred.unbind(1)
    lt, rt = target.unbind(1)
    inter = torch.minimum(lp, lt) + torch.minimum(rp, rt)
    union = lp + rp + lt + rt - inter
    iou = inter / union.clamp(min=1e-8)
    enclosing = torch.maximum(lp, lt) + torch.maximum(rp, rt)
    centre_gap = 0.5 * ((rp - lp) - (rt - lt))
    return 1.0 - iou + centre_gap**2 / enclosing.clamp(min=1e-8) ** 2


def localization_loss(
    model_out: tuple[list, list, list],
    segments: list[torch.Tensor],
    labels: list[torch.Tensor],
    cfg: LocalizerConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Focal classification loss + weighted DIoU regression loss, both per positive point."""
    logits, offsets, masks = model_out
    points = level_points([x.shape[1] for x in logits], cfg, logits[0].device)
    logits, offsets, masks = torch.cat(logits, 1), torch.cat(offsets, 1), torch.cat(masks, 1)
    targets = [
        assign_targets(points, s.to(points), lab.to(points.device), cfg) for s, lab in zip(segments, labels)
    ]
    cls_t = torch.stack([t[0] for t in targets])
    reg_t = torch.stack([t[1] for t in targets])
    positive = (cls_t.sum(-1) > 0) & masks
    num_pos = positive.sum().clamp(min=1).float()
    cls_loss = sigmoid_focal_loss(
        logits[masks].float(), cls_t[masks], alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, reduction="sum"
    )
    cls_loss = cls_loss / num_pos
    if positive.any():
        reg_loss = diou_loss_1d(offsets[positive].float(), reg_t[positive]).sum() / num_pos
    else:
        reg_loss = offsets.sum() * 0.0
    loss = cls_loss + cfg.reg_loss_weight * reg_loss
    return loss, {"cls_loss": cls_loss.detach(), "reg_loss": reg_loss.detach(), "num_pos": num_pos.detach()}


@torch.no_grad()
def decode_detections(
    model_out: tuple[list, list, list], cfg: LocalizerConfig
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per video: segments ``(N, 2)`` in feature steps, scores ``(N,)`` and labels ``(N,)`` after NMS."""
    logits, offsets, masks = model_out
    points = level_points([x.shape[1] for x in logits], cfg, logits[0].device)
    logits, offsets, masks = torch.cat(logits, 1), torch.cat(offsets, 1), torch.cat(masks, 1)
    results = []
    for b in range(logits.shape[0]):
        probs = logits[b].float().sigmoid() * masks[b, :, None]
        flat = probs.flatten()
        keep = (flat > cfg.pre_nms_thresh).nonzero(as_tuple=True)[0]
        scores = flat[keep]
        if scores.numel() > cfg.pre_nms_topk:
            scores, top = scores.topk(cfg.pre_nms_topk)
            keep = keep[top]
        point_idx, cls_idx = keep // cfg.num_classes, keep % cfg.num_classes
        pos, stride = points[point_idx, 0], points[point_idx, 3]
        dist = offsets[b, point_idx].float() * stride[:, None]
        segs = torch.stack([pos - dist[:, 0], pos + dist[:, 1]], 1)
        long_enough = (segs[:, 1] - segs[:, 0]) > cfg.min_duration
        segs, scores, cls_idx = segs[long_enough], scores[long_enough], cls_idx[long_enough]
        segs, scores, cls_idx = batched_nms_1d(
            segs.cpu(),
            scores.cpu(),
            cls_idx.cpu(),
            cfg.nms_iou,
            cfg.nms_method,
            cfg.nms_sigma,
            cfg.pre_nms_thresh,
        )
        results.append(
            (segs[: cfg.max_detections], scores[: cfg.max_detections], cls_idx[: cfg.max_detections])
        )
    return results
