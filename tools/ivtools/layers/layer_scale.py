"""Per-channel residual-branch scaling (CaiT LayerScale) with the original's fp32 option."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """``x * gamma``; with ``force_fp32`` the product is taken in fp32 and cast back.

    The original defaults to ``force_fp32=True`` (``layerscale_no_force_fp32=False``) so that small
    ``gamma`` values (1e-5) are not flushed by half-precision rounding before the multiply. The
    original also turns autocast off around the product; a multiply is on none of autocast's cast
    lists, so explicit casts give the same result, and they keep the block one compiled graph
    (asking whether autocast is available breaks a ``torch.compile`` graph).
    """

    def __init__(self, dim: int, init_values: float = 1e-5, force_fp32: bool = False):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))
        self.force_fp32 = force_fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.force_fp32:
            return x * self.gamma
        work = torch.promote_types(x.dtype, torch.float32)  # fp64 stays fp64
        return (x.to(work) * self.gamma.to(work)).to(x.dtype)
