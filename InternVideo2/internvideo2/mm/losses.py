"""Stage-2 video-text losses: contrastive (VTC), matching with hard negatives (VTM), masked LM (MLM).

Conventions follow the original's ``models/criterions.py``: similarities are cosine over L2-
normalised projections divided by the temperature; samples sharing an ``idx`` (the same video,
or the same caption source) are all positives, with the target spread evenly over them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ivtools.distributed import all_gather_with_grad


def similarity(vision: torch.Tensor, text: torch.Tensor, temp: torch.Tensor | float = 1.0, agg: str = "mean"):
    """``(sim_v2t, sim_t2v)`` between ``(B, C)`` or ``(B, K, C)`` vision and ``(B', C)`` text.

    With several vision vectors per video (``(B, K, C)``, e.g. per-frame features), the ``K``
    similarities are aggregated by ``agg`` (``mean`` or ``max``).
    """
    vision, text = F.normalize(vision, dim=-1), F.normalize(text, dim=-1)
    if vision.dim() == 3:
        sims = torch.einsum("vkc,tc->vkt", vision, text) / temp
        sim_v2t = sims.mean(1) if agg == "mean" else sims.amax(1)
    elif vision.dim() == 2:
        sim_v2t = vision @ text.T / temp
    else:
        raise ValueError(f"vision features must be (B, C) or (B, K, C), got {tuple(vision.shape)}")
    return sim_v2t, sim_v2t.T


def positive_mask(idx: torch.Tensor | None, size: int, device=None) -> torch.Tensor:
    """``(B, B)`` float mask of pairs that belong together (diagonal when ``idx`` is None)."""
    if idx is None:
        return torch.eye(size, device=device)
    idx = idx.view(-1, 1)
    return (idx == idx.T).float()


def vtc_loss(
    vision_proj: torch.Tensor,
    text_proj: torch.Tensor,
    idx: torch.Tensor | None,
    temp: torch.Tensor | float,
    gather: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE over the (all-gathered) batch with soft targets over same-``idx`` pairs."""
    if gather:
        vision_proj, text_proj = all_gather_with_grad(vision_proj), all_gather_with_grad(text_proj)
        if idx is not None:
            idx = all_gather_with_grad(idx)
    sim_v2t, sim_t2v = similarity(vision_proj, text_proj, temp)
    with torch.no_grad():
        targets = positive_mask(idx, sim_v2t.shape[0], sim_v2t.device)
        targets = targets / targets.sum(1, keepdim=True)
    loss_v2t = -(F.log_softmax(sim_v2t, dim=1) * targets).sum(1).mean()
    loss_t2v = -(F.log_softmax(sim_t2v, dim=1) * targets).sum(1).mean()
    return (loss_v2t + loss_t2v) / 2


def sample_negatives(
    sim_v2t: torch.Tensor,
    idx: torch.Tensor | None,
    hard: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One negative video per text and one negative text per video.

    ``hard``: drawn with probability softmax(similarity) over non-positives (the original's hard
    negative mining); otherwise uniformly over non-positives. Returns ``(video_neg, text_neg)``
    index vectors: ``video_neg[t]`` pairs with text ``t``, ``text_neg[v]`` with video ``v``.
    """
    size = sim_v2t.shape[0]
    positives = positive_mask(idx, size, sim_v2t.device).bool()
    if positives.all(1).any():
        raise ValueError("VTM needs a negative for every sample: some row of the batch has only positives")
    with torch.no_grad():
        if hard:
            weights_v2t = F.softmax(sim_v2t.float(), dim=1).masked_fill(positives, 0)
            weights_t2v = F.softmax(sim_v2t.T.float(), dim=1).masked_fill(positives, 0)
            # Rows whose softmax underflowed to zero outside the positives fall back to uniform.
            for w in (weights_v2t, weights_t2v):
                empty = w.sum(1) <= 0
                w[empty] = (~positives[empty]).float()
        else:
            weights_v2t = weights_t2v = (~positives).float()
        video_neg = torch.multinomial(weights_t2v, 1, generator=generator).squeeze(1)
        text_neg = torch.multinomial(weights_v2t, 1, generator=generator).squeeze(1)
    return video_neg, text_neg


def vtm_loss(
    fusion_encoder: nn.Module,
    itm_head: nn.Module,
    vision_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_mask: torch.Tensor,
    sim_v2t: torch.Tensor,
    idx: torch.Tensor | None,
    hard_negatives: bool = True,
) -> torch.Tensor:
    """Binary matching loss on B positive pairs, B (negative video, text) and B (video, negative text)."""
    video_neg, text_neg = sample_negatives(sim_v2t.detach(), idx, hard_negatives)
    vision_all = torch.cat([vision_embeds, vision_embeds[video_neg], vision_embeds])
    text_all = torch.cat([text_embeds, text_embeds, text_embeds[text_neg]])
    mask_all = torch.cat([text_mask, text_mask, text_mask[text_neg]])
    fused = fusion_encoder(
        encoder_embeds=text_all, attention_mask=mask_all, encoder_hidden_states=vision_all, mode="fusion"
    ).last_hidden_state[:, 0]
    logits = itm_head(fused)
    batch = vision_embeds.shape[0]
    labels = torch.zeros(3 * batch, dtype=torch.long, device=logits.device)
    labels[:batch] = 1
    return F.cross_entropy(logits.float(), labels)


def mask_tokens(
    input_ids: torch.Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_ids: list[int],
    prob: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking as the original: pick tokens with ``prob`` (never special ones); of those 80 %
    become ``[MASK]``, half of the rest a random token, the others stay. Returns ``(ids, labels)``
    with label -100 on unpicked tokens.
    """
    ids, labels = input_ids.clone(), input_ids.clone()

    def draw(p: float) -> torch.Tensor:
        return torch.rand(ids.shape, generator=generator, device=ids.device) < p

    picked = draw(prob)
    for special in special_ids:
        picked &= ids != special
    labels[~picked] = -100
    to_mask = draw(0.8) & picked
    ids[to_mask] = mask_token_id
    to_random = draw(0.5) & picked & ~to_mask
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, device=ids.device)
    ids[to_random] = random_ids[to_random]
    return ids, labels
