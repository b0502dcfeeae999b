"""Token masks for pretraining. Every mask is a ``(B, T*H*W)`` bool tensor, True = hidden from the
student, tokens ordered ``(t, h, w)``; every sample of a batch hides the same number of tokens.

* :func:`token_mask` -- the shared ``random`` (``int(ratio * N)`` tokens anywhere) and ``tube``
  (``int(ratio * H*W)`` spatial positions, the same in every frame) masks of ``ivtools.data.masking``;
* :func:`attention_mask` -- per frame, the visible ``N - int(N * ratio)`` patches drawn without
  replacement with probability proportional to the teacher's attention (stage 1's ``attention``);
* :class:`MultiBlockMask` -- V-JEPA multi-block masks (stage 2): the union of ``num_blocks``
  spatio-temporal blocks is hidden; the context is what remains, truncated to the smallest context
  in the batch and to ``max_keep`` tokens, keeping the earliest tokens in ``(t, h, w)`` order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ivtools.data.masking import build_mask_generator, check_mask_ratio

Grid = tuple[int, int, int]


def token_mask(
    kind: str, grid: Grid, ratio: float, batch: int, rng: np.random.Generator | None = None
) -> torch.Tensor:
    """``batch`` independent ``tube`` / ``random`` masks of :mod:`ivtools.data.masking`, ``(B, T*H*W)``."""
    generator = build_mask_generator(kind, grid, ratio)
    return torch.from_numpy(np.stack([generator(rng) for _ in range(batch)]))


def attention_mask(
    attn: torch.Tensor, ratio: float, batch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``attn`` ``(B*T, N)`` non-negative per-frame weights -> mask ``(B, T*N)``."""
    check_mask_ratio(ratio)
    frames, n = attn.shape
    visible = n - int(n * ratio)
    keep = torch.multinomial(attn.float().cpu(), visible, replacement=False, generator=generator)
    mask = torch.ones(frames, n, dtype=torch.bool)
    mask.scatter_(1, keep, False)
    return mask.reshape(batch, -1).to(attn.device)


@dataclass(frozen=True)
class BlockConfig:
    num_blocks: int
    spatial_scale: tuple[float, float]
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)


# The two stage-2 views of the original (``get_jepa_mask_collator``): many small blocks, few large ones.
STAGE2_VIEWS = (BlockConfig(8, (0.15, 0.15)), BlockConfig(2, (0.7, 0.7)))


def _uniform(low_high: tuple[float, float], generator: torch.Generator) -> float:
    low, high = low_high
    return low + torch.rand(1, generator=generator).item() * (high - low)


def block_size(cfg: BlockConfig, grid: Grid, generator: torch.Generator) -> Grid:
    """``(t, h, w)`` of one block: duration and area fractions and aspect ratio drawn uniformly."""
    duration, height, width = grid
    t = max(1, int(duration * _uniform(cfg.temporal_scale, generator)))
    area = int(height * width * _uniform(cfg.spatial_scale, generator))
    aspect = _uniform(cfg.aspect_ratio, generator)
    # At least one token per side: on grids far smaller than the original's 16x16 a block could
    # otherwise round to nothing and leave no position to predict.
    h = min(max(int(round(math.sqrt(area * aspect))), 1), height)
    w = min(max(int(round(math.sqrt(area / aspect))), 1), width)
    return t, h, w


class MultiBlockMask:
    """V-JEPA multi-block masks; block *sizes* are shared by a batch, positions drawn per sample."""

    def __init__(self, cfg: BlockConfig, max_keep: int | None = None):
        self.cfg, self.max_keep = cfg, max_keep

    def __call__(self, grid: Grid, batch: int, generator: torch.Generator) -> torch.Tensor:
        duration, height, width = grid
        t, h, w = block_size(self.cfg, grid, generator)
        contexts = []
        for _ in range(batch):
            while True:
                hidden = torch.zeros(grid, dtype=torch.bool)
                for _ in range(self.cfg.num_blocks):
                    top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                    left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                    start = int(torch.randint(0, duration - t + 1, (1,), generator=generator))
                    hidden[start : start + t, top : top + h, left : left + w] = True
                context = (~hidden).flatten().nonzero().squeeze(1)
                if len(context):  # an all-hidden clip has no context: draw again
                    contexts.append(context)
                    break
        keep = min(len(c) for c in contexts)
        if self.max_keep is not None:
            keep = min(keep, self.max_keep)
        mask = torch.ones(batch, math.prod(grid), dtype=torch.bool)
        for b, context in enumerate(contexts):
            mask[b, context[:keep]] = False
        return mask


def stage2_max_keep(num_frames: int) -> int:
    """The original's context cap: 400 tokens per 8 frames."""
    return int(400 * num_frames / 8)
