"""RMSNorm with fp32 statistics, in the two flavours the InternVideo flags select."""

from __future__ import annotations

import torch
from torch import nn

from .flags import flash_dropout_add_rms_norm, on_cuda


def _stat_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for half inputs (as the original and flash-attn compute), the input's own otherwise."""
    return torch.promote_types(x.dtype, torch.float32)


def _normalize_fp32(x: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.to(_stat_dtype(x))
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension, statistics always in fp32.

    ``fused=False`` is the original's plain ``RMSNorm``: the normalised fp32 value is cast back to
    the input dtype *before* the weight multiplies it (so an fp32 weight promotes the output).
    ``fused=True`` follows flash-attn's ``DropoutAddRMSNorm``: the weight multiplies in fp32 and
    the result is cast to the input dtype once. In fp32 both give identical values.

    :meth:`forward_add` is the fused block norm (``prenorm=True``): it adds the residual stream,
    normalises the sum, and returns ``(normed, new_residual)``.
    """

    def __init__(self, dim: int, eps: float = 1e-6, fused: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return self.weight * _normalize_fp32(x, self.eps).to(x.dtype)
        return self.forward_add(x, None)[0]

    def forward_add(
        self, x: torch.Tensor, residual: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``s = x + residual`` (in fp32); return ``(rmsnorm(s) in x.dtype, s in residual's dtype)``.

        The sum is normalised before it is rounded to the residual dtype, and with no residual the
        new residual is ``x`` itself -- exactly what flash-attn's kernel does.
        """
        kernel = flash_dropout_add_rms_norm()
        if kernel is not None and on_cuda(x, self.weight):
            return kernel(x, residual, self.weight, None, 0.0, self.eps, prenorm=True)
        work = _stat_dtype(x)
        total = x.to(work) if residual is None else x.to(work) + residual.to(work)
        new_residual = total.to(x.dtype if residual is None else residual.dtype)
        normed = (_normalize_fp32(total, self.eps) * self.weight.to(work)).to(x.dtype)
        return normed, new_residual

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, fused={self.fused}"
