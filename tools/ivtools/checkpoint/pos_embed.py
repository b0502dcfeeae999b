"""Resize ViT-style position-embedding tables to a new frame count or image size."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Grid = tuple[int, ...]


def _check_grid(grid: Grid, name: str) -> tuple[int, int, int]:
    grid = tuple(int(g) for g in grid)
    if len(grid) not in (2, 3) or any(g <= 0 for g in grid):
        raise ValueError(f"{name} must be (T, H, W) or (H, W) with positive sizes, got {grid}")
    return grid if len(grid) == 3 else (1, *grid)


def interpolate_pos_embed(
    pos_embed: torch.Tensor,
    num_extra_tokens: int,
    old_grid: Grid,
    new_grid: Grid,
) -> torch.Tensor:
    """Resample a ``[1, extra + T*H*W, D]`` table laid out time-major (``t, h, w``).

    The first ``num_extra_tokens`` rows (class tokens) are kept; time is resampled linearly and
    then space bicubically, both with ``align_corners=False``, which is how the original
    fine-tuning code adapts an 8-frame 224-px table to other frame counts and resolutions.
    Grids may also be 2D ``(H, W)`` for image tables. Half-precision tables are resampled in
    float32 and cast back; equal grids return ``pos_embed`` itself.
    """
    old_t, old_h, old_w = _check_grid(old_grid, "old_grid")
    new_t, new_h, new_w = _check_grid(new_grid, "new_grid")
    if len(old_grid) != len(new_grid):
        raise ValueError(f"old_grid {tuple(old_grid)} and new_grid {tuple(new_grid)} differ in rank")
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must be [1, tokens, dim], got {list(pos_embed.shape)}")
    expected = num_extra_tokens + math.prod((old_t, old_h, old_w))
    if pos_embed.shape[1] != expected:
        raise ValueError(
            f"pos_embed has {pos_embed.shape[1]} tokens but {num_extra_tokens} extra + grid {tuple(old_grid)} "
            f"needs {expected}"
        )
    if (old_t, old_h, old_w) == (new_t, new_h, new_w):
        return pos_embed
    dim = pos_embed.shape[2]
    extra = pos_embed[:, :num_extra_tokens]
    work_dtype = torch.promote_types(pos_embed.dtype, torch.float32)  # half types lack CPU bicubic
    grid = pos_embed[0, num_extra_tokens:].to(work_dtype).reshape(old_t, old_h, old_w, dim)
    if new_t != old_t:
        # (T, H, W, D) -> (H*W, D, T): one 1-D signal per position and channel.
        series = grid.permute(1, 2, 3, 0).reshape(old_h * old_w, dim, old_t)
        series = F.interpolate(series, size=new_t, mode="linear", align_corners=False)
        grid = series.reshape(old_h, old_w, dim, new_t).permute(3, 0, 1, 2)
    if (new_h, new_w) != (old_h, old_w):
        images = grid.permute(0, 3, 1, 2)  # (T, D, H, W)
        images = F.interpolate(images, size=(new_h, new_w), mode="bicubic", align_corners=False)
        grid = images.permute(0, 2, 3, 1)
    tokens = grid.reshape(1, new_t * new_h * new_w, dim).to(pos_embed.dtype)
    return torch.cat([extra, tokens], dim=1)
