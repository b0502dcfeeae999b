"""Training objectives of InternVideo1's pretraining models.

* :func:`mae_targets` / :func:`mae_loss` -- VideoMAE's pixel reconstruction of masked tubelets;
* :func:`contrastive_loss` -- the symmetric video-text InfoNCE of ViCLIP and the multi-modality
  model, scored against the batch gathered from every rank;
* :func:`caption_loss` -- next-token cross-entropy of the multi-modality caption decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ivtools.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ivtools.distributed import all_gather_concat, all_gather_with_grad


def patchify(video: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """``(B, C, T, H, W)`` → ``(B, N, tubelet*patch*patch, C)``, tubelets in (t, h, w) raster order.

    The pixel axis is ordered (dt, dy, dx), matching the decoder's output layout.
    """
    b, c, t, h, w = video.shape
    if t % tubelet_size or h % patch_size or w % patch_size:
        raise ValueError(
            f"clip {tuple(video.shape[2:])} is not divisible into {tubelet_size}x{patch_size}x{patch_size}"
        )
    x = video.reshape(
        b, c, t // tubelet_size, tubelet_size, h // patch_size, patch_size, w // patch_size, patch_size
    )
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # b, t', h', w', dt, dy, dx, c
    return x.reshape(b, -1, tubelet_size * patch_size * patch_size, c)


def unpatchify(
    patches: torch.Tensor, grid: tuple[int, int, int], patch_size: int, tubelet_size: int
) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, N, tubelet*patch*patch, C)`` → ``(B, C, T, H, W)``."""
    b, _, _, c = patches.shape
    t, h, w = grid
    x = patches.reshape(b, t, h, w, tubelet_size, patch_size, patch_size, c)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # b, c, t', dt, h', dy, w', dx
    return x.reshape(b, c, t * tubelet_size, h * patch_size, w * patch_size)


def to_pixels(
    video: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """A normalised ``(B, C, T, H, W)`` clip back in [0, 1] pixels."""
    mean_t = torch.as_tensor(mean, dtype=video.dtype, device=video.device).view(1, -1, 1, 1, 1)
    std_t = torch.as_tensor(std, dtype=video.dtype, device=video.device).view(1, -1, 1, 1, 1)
    return video * std_t + mean_t


def mae_targets(
    video: torch.Tensor,
    patch_size: int,
    tubelet_size: int = 2,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    normalize_target: bool = True,
) -> torch.Tensor:
    """Reconstruction targets ``(B, N, tubelet*patch*patch*3)`` from a normalised clip.

    The clip is first brought back to [0, 1] pixels. With ``normalize_target`` each tubelet is
    standardised per colour channel over its own pixels (mean, unbiased std + 1e-6), as VideoMAE
    does; the flattened layout is (dt, dy, dx, c).
    """
    with torch.no_grad():
        patches = patchify(to_pixels(video, mean, std), patch_size, tubelet_size)
        if normalize_target:
            centred = patches - patches.mean(dim=-2, keepdim=True)
            patches = centred / (patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
        return patches.flatten(2)


def mae_loss(pred: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error between ``pred`` (``(B, N_masked, P)``) and the masked ``targets``."""
    mask = mask.flatten(1).bool()
    labels = targets[mask].reshape(targets.shape[0], -1, targets.shape[-1])
    if labels.shape != pred.shape:
        raise ValueError(
            f"prediction {tuple(pred.shape)} does not match masked targets {tuple(labels.shape)}"
        )
    return F.mse_loss(pred.float(), labels.float())


def contrastive_loss(
    vision: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor | float,
    idx: torch.Tensor | None = None,
    all_gather: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised ``vision`` and ``text`` features ``(B, D)``.

    Logits are ``logit_scale * cos``. Without ``idx`` the i-th video matches the i-th text; with
    ``idx`` (a sample id per pair) every pair sharing an id is a positive and the target row is
    spread evenly over them (ViCLIP's ``vtc_loss``). With ``all_gather`` each rank scores its
    samples against the whole global batch; gradients flow back through the gathered copies.
    """
    vision = F.normalize(vision.float(), dim=-1)
    text = F.normalize(text.float(), dim=-1)
    if all_gather:
        vision, text = all_gather_with_grad(vision), all_gather_with_grad(text)
        idx = all_gather_concat(idx) if idx is not None else None
    logits = logit_scale * vision @ text.t()
    if idx is None:
        targets = torch.eye(logits.shape[0], device=logits.device)
    else:
        idx = idx.view(-1, 1)
        targets = (idx == idx.t()).float()
        targets = targets / targets.sum(1, keepdim=True)
    loss_v2t = -(F.log_softmax(logits, dim=1) * targets).sum(1).mean()
    loss_t2v = -(F.log_softmax(logits.t(), dim=1) * targets).sum(1).mean()
    return (loss_v2t + loss_t2v) / 2


def caption_loss(
    logits: torch.Tensor, text_ids: torch.Tensor, special_tokens_mask: torch.Tensor
) -> torch.Tensor:
    """Next-token cross-entropy: ``logits[:, i]`` predicts ``text_ids[:, i + 1]``.

    ``logits`` ``(B, L-1, V)`` come from the decoder fed ``text[:, :-1]``; padding positions
    (``special_tokens_mask`` True) are ignored.
    """
    labels = text_ids[:, 1:].long().masked_fill(special_tokens_mask[:, 1:], -100)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100
    )
