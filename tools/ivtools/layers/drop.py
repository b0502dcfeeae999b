"""Stochastic depth whose rate is a tensor, so blocks with different rates share one compiled graph."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """timm's ``DropPath`` (per-sample keep mask scaled by ``1 / keep_prob``) for compiled blocks.

    timm keeps the rate as a Python float, which ``torch.compile`` specialises on: every block of
    a linearly rising drop-path schedule then compiles its own graph (24 compilations for L14,
    40 for 1B). Here the keep probability is a non-persistent fp32 buffer -- a graph input --
    kept in fp32 whatever dtype the model is cast to, so the rate is exactly the float asked for.
    """

    def __init__(self, drop_prob: float):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob
        self.register_buffer("keep_prob", torch.tensor(1.0 - drop_prob), persistent=False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.keep_prob = torch.tensor(1.0 - self.drop_prob, device=self.keep_prob.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # the float rate is not read here: reading it would specialise the graph
            return x
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        keep = torch.rand(shape, device=x.device) < self.keep_prob
        return x * (keep.to(x.dtype) / self.keep_prob)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"
