"""HiCo clip-level compression: token merging across neighbouring frames, as the released model does it.

The released chat model (``modeling_internvl_chat_hico2``) takes the pixel-shuffled tokens of
every ``local_num_frames`` (4) consecutive frames as one sequence (4 x 256 tokens for 448 px
input) and merges it down to ``num_tome_tokens`` (64) with ToMe-style bipartite soft matching,
before the MLP projector. Each frame then owns 64 / 4 = 16 slots of the prompt.

One merging round splits the sequence into alternate tokens: set A (even positions) and set B
(odd positions). Every A token finds its most cosine-similar B token; the ``r`` A tokens with
the highest similarity are folded into their B partner (a size-weighted average, sizes counting
how many original tokens each merged token stands for). The output is the unmerged A tokens,
ordered by decreasing similarity, followed by all B tokens in their original order. Rounds
repeat (each removing at most half the tokens) until the target count is reached.

The similarity uses the token features averaged over ``num_heads`` equal slices of the channel
axis, ``num_heads`` being the LLM's attention-head count, as in the original.
"""

from __future__ import annotations

import torch


def merge_schedule(num_tokens: int, target: int) -> list[int]:
    """How many tokens each round removes to go from ``num_tokens`` to ``target``.

    A round removes half the tokens (rounded down) while more than half must go, then the rest:
    1024 -> 64 is ``[512, 256, 128, 64]``. ``target == num_tokens`` needs no round.
    """
    if not 0 < target <= num_tokens:
        raise ValueError(f"cannot merge {num_tokens} tokens down to {target}")
    schedule = []
    remaining = num_tokens
    while remaining != target:
        step = remaining - target if remaining - target <= remaining // 2 else remaining // 2
        schedule.append(step)
        remaining -= step
    return schedule


def bipartite_merge(
    x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One merging round: remove ``r`` tokens from ``x`` ``(B, T, C)``.

    ``size`` ``(B, T, 1)`` counts the original tokens behind each token; ``metric`` ``(B, T, D)``
    is what similarity is measured on. Returns the merged tokens (size-weighted means) and sizes.
    """
    num_a = (x.shape[1] + 1) // 2
    if not 0 < r <= x.shape[1] // 2:
        raise ValueError(f"a round can remove 1..{x.shape[1] // 2} of {x.shape[1]} tokens, not {r}")
    with torch.no_grad():  # the matching is a discrete choice; gradients flow through the merge only
        unit = metric / metric.norm(dim=-1, keepdim=True)
        scores = unit[:, ::2] @ unit[:, 1::2].transpose(-1, -2)
        best, partner = scores.max(dim=-1)
        order = best.argsort(dim=-1, descending=True, stable=True).unsqueeze(-1)
        kept, moved = order[:, r:], order[:, :r]
        destination = partner.unsqueeze(-1).gather(1, moved)

    def merge(t: torch.Tensor) -> torch.Tensor:
        a, b = t[:, ::2], t[:, 1::2]
        width = t.shape[-1]
        unmerged = a.gather(1, kept.expand(-1, num_a - r, width))
        sources = a.gather(1, moved.expand(-1, r, width))
        b = b.scatter_add(1, destination.expand(-1, r, width), sources)
        return torch.cat([unmerged, b], dim=1)

    weighted = merge(x * size)
    new_size = merge(size)
    return weighted / new_size, new_size


def merge_tokens(x: torch.Tensor, target: int, num_heads: int) -> torch.Tensor:
    """Merge each row of ``x`` ``(B, T, C)`` down to ``target`` tokens (all rows independently)."""
    batch, tokens, width = x.shape
    if width % num_heads:
        raise ValueError(f"token width {width} is not divisible by num_heads={num_heads}")
    size = torch.ones_like(x[..., :1])
    for r in merge_schedule(tokens, target):
        metric = x.reshape(batch, x.shape[1], num_heads, width // num_heads).mean(dim=2)
        x, size = bipartite_merge(x, size, metric, r)
    return x


def compress_frames(
    tokens: torch.Tensor, local_num_frames: int, tokens_per_frame: int, num_heads: int
) -> torch.Tensor:
    """HiCo over consecutive groups of ``local_num_frames`` frames.

    ``tokens`` is ``(F, P, C)``: ``P`` pixel-shuffled tokens for each of ``F`` frames (tiles) in
    temporal order. Returns ``(F, tokens_per_frame, C)``: group ``g``'s merged tokens fill the
    slots of frames ``g * local_num_frames ... (g + 1) * local_num_frames - 1``, so groups keep
    their temporal order, and no token mixes frames of different groups.
    """
    frames, per_frame, width = tokens.shape
    if frames % local_num_frames:
        raise ValueError(
            f"HiCo merges groups of {local_num_frames} frames; got {frames} frames "
            f"(use a frame count that is a multiple of {local_num_frames})"
        )
    groups = tokens.reshape(frames // local_num_frames, local_num_frames * per_frame, width)
    merged = merge_tokens(groups, tokens_per_frame * local_num_frames, num_heads)
    return merged.reshape(frames, tokens_per_frame, width)
