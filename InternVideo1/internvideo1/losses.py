"""Training objectives of InternVideo1's pretraining models.

* :func:`mae_targets` / :func:`mae_loss` -- VideoMAE's pixel reconstruction of masked tubelets;
* :func:`contrastive_loss` -- the symmetric video-text InfoNCE of ViCLIP and the multi-modality
  model, scored against the batch gathered from every rank;
* :func:`caption_loss` -- next-token cross-entropy of the multi-modality caption decoder;
* :func:`mask_text_for_mlm` / :func:`token_cross_entropy` -- the masked-language objective of the
  original's CoTrain (``mlm``), :func:`draw_vtm_pairs` / :func:`vtm_loss` its video-text
  matching objective (``vtm``) and :func:`word_patch_alignment_loss` the optimal-transport term
  that its ``compute_vtm_wpa`` adds to matching (``vtm_wpa``): :func:`optimal_transport_distance`
  under the plan of :func:`ipot_transport_plan`.
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
    return token_cross_entropy(logits, labels)


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of per-token ``logits`` ``(B, L, V)`` over the labels ``(B, L)`` != -100."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100
    )


def clip_special_tokens_mask(text_ids: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """Padding, start-of-text (position 0) and end-of-text (the largest id of each row) positions.

    The original's masking code says these must never be masked, but its tokenizer's mask covers
    only the padding; here all three are excluded, so the text encoder keeps its pooled token.
    """
    special = padding_mask.clone().bool()
    rows = torch.arange(text_ids.shape[0], device=text_ids.device)
    special[:, 0] = True
    special[rows, text_ids.argmax(dim=-1)] = True
    return special


def mask_text_for_mlm(
    text_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    mlm_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels, masked_indices)`` of the CLIP-text MLM of the original's CoTrain (``mask_text_ids``).

    Every token outside ``special_tokens_mask`` is masked independently with ``mlm_prob``. There is
    no BERT 80/10/10 split: the text encoder replaces every masked token's embedding with its
    learned ``text_mask_embedding``. ``labels`` hold the token id at masked positions, -100 elsewhere.
    """
    probability = torch.full(text_ids.shape, mlm_prob, device=text_ids.device)
    probability.masked_fill_(special_tokens_mask.bool(), 0.0)
    masked = torch.bernoulli(probability, generator=generator).bool()
    labels = text_ids.long().masked_fill(~masked, -100)
    return labels, masked


def draw_vtm_pairs(
    idx: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(video_index, labels)`` of a video-text matching batch built from a batch of pairs.

    As the original's ``compute_vtm_wpa``: ``B // 2`` rows stay positive (label 1), the other rows,
    chosen at random, get a negative video (label 0) while keeping their text. The original reads
    a random dataset video for them (``false_video_0``), which can be the sample's own; here row
    ``i``'s negative is a random video of the batch whose sample id differs from ``idx[i]``, so
    every negative truly does not match. A row with no such video in the batch stays positive.
    """
    b = idx.shape[0]
    candidates = idx.view(-1, 1) != idx.view(1, -1)
    has_candidate = candidates.any(dim=1)
    # A uniformly random candidate per row: the arg-max of random scores over the candidates.
    scores = torch.rand(b, b, generator=generator, device=idx.device).masked_fill(~candidates, -1.0)
    partner = scores.argmax(dim=1)
    # Rows without a candidate sort last, so they become negatives only when nothing else can.
    priority = torch.rand(b, generator=generator, device=idx.device) - (~has_candidate).float()
    negatives = priority.argsort(descending=True)[: b - b // 2]
    negatives = negatives[has_candidate[negatives]]
    video_index = torch.arange(b, device=idx.device)
    video_index[negatives] = partner[negatives]
    labels = torch.ones(b, dtype=torch.long, device=idx.device)
    labels[negatives] = 0
    return video_index, labels


def vtm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Two-way cross-entropy of the matching head's ``logits`` ``(B, 2)``; label 1 = matching pair."""
    return F.cross_entropy(logits.float(), labels.long())


def cosine_cost(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Cosine distance ``1 - cos`` between every pair of rows: ``(B, M, D)``, ``(B, N, D)`` → ``(B, M, N)``."""
    return 1 - F.normalize(x, dim=-1, eps=eps) @ F.normalize(y, dim=-1, eps=eps).transpose(1, 2)


def _uniform_mass(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Mass ``1 / count`` on each valid position of a row, 0 elsewhere (a row with none gets none)."""
    valid = valid.to(dtype)
    return valid / valid.sum(dim=1, keepdim=True).clamp_min(1)


def _scale_to(mass: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """The factor that brings ``current`` marginals to ``mass``; 0 where the mass is 0 (padding)."""
    return mass / current.masked_fill(mass == 0, 1)


@torch.no_grad()
def ipot_transport_plan(
    cost: torch.Tensor,
    x_valid: torch.Tensor,
    y_valid: torch.Tensor,
    beta: float = 0.5,
    iterations: int = 50,
) -> torch.Tensor:
    """Transport plan ``(B, M, N)`` between uniform masses on the valid rows and columns of ``cost``.

    IPOT (Xie et al., 2019), as ViLT/UNITER and the original's ``compute_vtm_wpa`` run it: each
    proximal step multiplies the plan by ``exp(-cost / beta)`` and rescales it with one Sinkhorn
    pass; defaults are the original's ``beta=0.5``, 50 iterations. The rows (``x``) marginal is
    matched exactly after every step, the columns one at convergence. The plan carries no
    gradient (the original runs it under ``no_grad`` on the detached cost), so the distance
    ``<cost, plan>`` is differentiated through the cost only.
    """
    mu, nu = _uniform_mass(x_valid, cost.dtype), _uniform_mass(y_valid, cost.dtype)
    # Padded pairs start at 0 and, the steps being multiplicative, stay there.
    plan = (mu[:, :, None].gt(0) & nu[:, None, :].gt(0)).to(cost.dtype)
    kernel = torch.exp(-cost / beta)
    row_scale = mu
    for _ in range(iterations):
        proximal = kernel * plan
        col_scale = _scale_to(nu, (proximal * row_scale[:, :, None]).sum(dim=1))
        row_scale = _scale_to(mu, (proximal * col_scale[:, None, :]).sum(dim=2))
        plan = row_scale[:, :, None] * proximal * col_scale[:, None, :]
    return plan


def optimal_transport_distance(
    x: torch.Tensor, x_valid: torch.Tensor, y: torch.Tensor, y_valid: torch.Tensor
) -> torch.Tensor:
    """``<cost, plan>`` per batch row ``(B,)`` between the valid tokens of ``x`` ``(B, M, D)`` and
    ``y`` ``(B, N, D)``: cosine cost in float32 (the original turns autocast off here), IPOT plan
    at the original's settings, held constant."""
    cost = cosine_cost(x.float(), y.float())
    plan = ipot_transport_plan(cost.detach(), x_valid, y_valid)
    return (cost * plan).sum(dim=(1, 2))


def word_patch_alignment_loss(distance: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The original's word-patch alignment (``vtm_wpa``, unweighted) of a matching batch: each
    row's text-video transport distance (:func:`optimal_transport_distance`) is pulled down for
    matching rows (label 1) and pushed up for the others,
    ``(sum of positive distances - sum of negative distances) / B``."""
    sign = labels.to(distance.dtype) * 2 - 1
    return (sign * distance).mean()
