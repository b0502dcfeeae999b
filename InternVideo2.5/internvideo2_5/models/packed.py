"""Forward and loss of packed sequences (several samples per row), in plain PyTorch.

Every token must get exactly the attention it would get unpacked: it attends causally to the
earlier tokens of its own sample only, and its rotary position counts from 0 at its sample's
start. The attention mask is built from per-token sample ids as a 4-D ``(batch, 1, L, L)`` mask,
which transformers' ``create_causal_mask`` passes to the attention functions unchanged: boolean
(``True`` = attend) for SDPA, additive (0 / most negative float) for eager attention, which adds it
to the scores. Padding tokens form one more "sample" that attends to itself, so that no query row
is fully masked (SDPA would return NaN there, and NaN times a zero attention weight is still NaN).

The vision side needs no mask: tiles are encoded independently and HiCo merges groups of
``local_num_frames`` tiles, which never straddle two samples (each sample's tile count is a
multiple of it).

Loss reductions follow InternVL's ``len2weight`` and the packed branch of its model forward: each
supervised token of a sample with ``n`` supervised tokens has weight 1 (``token``), ``1/n``
(``sample``) or ``1/sqrt(n)`` (``square``), and the loss is the weighted sum of token
cross-entropies divided by the sum of weights over the micro-batch. So ``token`` is the mean over
all supervised tokens, ``sample`` the mean of per-sample means, and ``square`` the mean of
per-sample means weighted by ``sqrt(n)``.

The sum of weights is this rank's by default. With InternVL's ``--loss_reduction_all_gather`` it
is the mean over the data-parallel ranks of their sums (``all_reduce`` with ``AVG`` there; a sum
divided by the world size here, which gloo also supports). Since DDP and DeepSpeed average the
gradients over ranks, the update is then that of the weighted sum over the global micro-batch
divided by its global weight sum, so a rank holding fewer supervised tokens no longer counts as
much as one holding many.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from internvideo2_5.constants import IGNORE_INDEX
from ivtools.distributed import all_reduce_mean

LOSS_REDUCTIONS = ("token", "sample", "square")
MASK_KINDS = {"sdpa": "bool", "eager": "additive"}


def block_causal_mask(sample_ids: torch.Tensor) -> torch.Tensor:
    """``(B, 1, L, L)`` booleans: query i may see key j iff both belong to one sample and j <= i."""
    length = sample_ids.shape[1]
    same_sample = sample_ids[:, :, None] == sample_ids[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=sample_ids.device).tril()
    return (same_sample & causal).unsqueeze(1)


def attention_mask_for(model: nn.Module, allowed: torch.Tensor) -> torch.Tensor:
    """``allowed`` in the form the LLM's attention implementation expects for a ready 4-D mask
    (``model``: the chat model itself, not a DDP / DeepSpeed wrapper)."""
    implementation = model.config.text_config._attn_implementation
    kind = MASK_KINDS.get(implementation)
    if kind is None:
        raise ValueError(
            f"packed training builds its own 4-D attention mask, which needs the LLM's attention to "
            f"be one of {sorted(MASK_KINDS)}; it is {implementation!r}"
        )
    if kind == "bool":
        return allowed
    # float32 keeps the large negative finite; eager attention adds it to scores of any precision
    blocked = torch.finfo(torch.float32).min
    return torch.zeros(allowed.shape, device=allowed.device).masked_fill(~allowed, blocked)


def packed_logits(
    model: nn.Module,
    input_ids: torch.Tensor,
    pixel_values: torch.Tensor,
    mask: torch.Tensor,
    position_ids: torch.Tensor,
) -> torch.Tensor:
    """Next-token logits ``(B, L, V)`` of packed rows under ``mask`` (:func:`attention_mask_for`)."""
    output = model(
        input_ids=input_ids,
        pixel_values=pixel_values,
        attention_mask=mask,
        position_ids=position_ids,
        use_cache=False,
    )
    return output.logits


def sample_loss_weights(
    labels: torch.Tensor, sample_ids: torch.Tensor, reduction: str = "token"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(targets, weights)`` of the ``L - 1`` next-token predictions of each row.

    A prediction counts only when its target is supervised and lies in the same sample as the
    token that predicts it (never across a sample boundary). Sample ids must be unique in the batch.
    """
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}, got {reduction!r}")
    targets = labels[:, 1:]
    owner = sample_ids[:, 1:]
    supervised = (targets != IGNORE_INDEX) & (owner == sample_ids[:, :-1])
    counts = torch.bincount(owner[supervised], minlength=int(sample_ids.max()) + 1)
    per_token_count = counts[owner.clamp_min(0)].double()
    if reduction == "token":
        weights = torch.ones_like(per_token_count)
    elif reduction == "sample":
        weights = 1.0 / per_token_count.clamp_min(1)
    else:
        weights = per_token_count.clamp_min(1).rsqrt()
    return targets, weights * supervised


def packed_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    sample_ids: torch.Tensor,
    reduction: str = "token",
    loss_reduction_all_gather: bool = False,
) -> torch.Tensor:
    """InternVL's weighted LM loss of a packed batch (see the module docstring).

    ``loss_reduction_all_gather`` divides by the ranks' mean weight sum; it is then a collective
    that every rank must reach at every micro-step.
    """
    targets, weights = sample_loss_weights(labels, sample_ids, reduction)
    predictions = logits[:, :-1]
    # at least float32 for the softmax; float64 stays float64 (the equivalence tests use it)
    predictions = predictions.to(torch.promote_types(predictions.dtype, torch.float32))
    token_losses = F.cross_entropy(
        predictions.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
    )
    weights = weights.to(token_losses.dtype)
    return (token_losses * weights).sum() / _weight_total(weights.sum(), loss_reduction_all_gather)


def _weight_total(total: torch.Tensor, across_ranks: bool) -> torch.Tensor:
    if across_ranks:
        total = all_reduce_mean(total)
    # no supervised token (here, or on any rank): every weighted sum is 0, so is the loss, not 0/0
    return torch.where(total > 0, total, torch.ones_like(total))
