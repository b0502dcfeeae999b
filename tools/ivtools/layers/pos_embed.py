"""Fixed sine-cosine position embeddings (1D, 2D, joint 3D), as the InternVideo models initialise them.

Conventions follow the original (MAE / MVD style), so that freshly initialised tables equal the
released ones:

* 1D: the first half of the channels holds ``sin(pos * omega)``, the second half ``cos``, with
  ``omega_i = 10000 ** (-i / (D / 2))``;
* 2D: the first half of the channels encodes the *column* (w) index, the second half the row (h);
* 3D: the first quarter of the channels encodes time, the remaining three quarters the 2D grid;
  tokens are ordered ``(t, h, w)``.

Values are computed in float32, like the original's NumPy code.
"""

from __future__ import annotations

import torch


def sincos_pos_embed_1d(embed_dim: int, positions: torch.Tensor) -> torch.Tensor:
    """``(M, embed_dim)`` table for the (float) positions ``(M,)``."""
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even for a sin-cos embedding, got {embed_dim}")
    omega = torch.arange(embed_dim // 2, dtype=torch.float32) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.reshape(-1, 1).float() * omega.reshape(1, -1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_pos_embed_2d(embed_dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """``(grid_h * grid_w, embed_dim)`` table, row-major over ``(h, w)``."""
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even for a 2D sin-cos embedding, got {embed_dim}")
    rows, cols = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float32), torch.arange(grid_w, dtype=torch.float32), indexing="ij"
    )
    return torch.cat(
        [sincos_pos_embed_1d(embed_dim // 2, cols), sincos_pos_embed_1d(embed_dim // 2, rows)], dim=1
    )


def sincos_pos_embed_3d(
    embed_dim: int, grid_t: int, grid_h: int, grid_w: int, cls_token: bool = False
) -> torch.Tensor:
    """``([1 +] grid_t * grid_h * grid_w, embed_dim)`` table; a leading zero row when ``cls_token``."""
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4 for a 3D sin-cos embedding, got {embed_dim}")
    temporal_dim = embed_dim // 4
    spatial = sincos_pos_embed_2d(embed_dim - temporal_dim, grid_h, grid_w)
    temporal = sincos_pos_embed_1d(temporal_dim, torch.arange(grid_t, dtype=torch.float32))
    table = torch.cat(
        [
            temporal[:, None, :].expand(grid_t, grid_h * grid_w, temporal_dim),
            spatial[None, :, :].expand(grid_t, grid_h * grid_w, spatial.shape[1]),
        ],
        dim=-1,
    ).reshape(-1, embed_dim)
    if cls_token:
        table = torch.cat([torch.zeros(1, embed_dim), table], dim=0)
    return table
