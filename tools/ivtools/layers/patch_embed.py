"""Tubelet embedding: a Conv3d whose kernel equals its stride, computed as one matrix multiply."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def tubelet_embed(video: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """``conv(video)`` laid out ``(B, T', H', W', D)``, for a kernel = stride Conv3d.

    The tubelets do not overlap, so the convolution is a GEMM over the unfolded tubelets with the
    kernel flattened in its own ``(C, t, h, w)`` order: the same sums, but cuDNN runs the bf16
    Conv3d with a slow generic kernel (2.5 % of an InternVideo2-L forward on an H100). Like the
    convolution, trailing frames or pixels that do not fill a tubelet are dropped.
    """
    kt, kh, kw = conv.kernel_size
    if (
        conv.stride != conv.kernel_size
        or conv.padding != (0, 0, 0)
        or conv.dilation != (1, 1, 1)
        or conv.groups != 1
    ):
        raise ValueError(f"tubelet_embed needs kernel = stride, no padding, dilation or groups; got {conv}")
    b, c, t, h, w = video.shape
    nt, nh, nw = t // kt, h // kh, w // kw
    video = video[:, :, : nt * kt, : nh * kh, : nw * kw]
    patches = video.reshape(b, c, nt, kt, nh, kh, nw, kw).permute(0, 2, 4, 6, 1, 3, 5, 7)
    return F.linear(patches.reshape(b, nt, nh, nw, -1), conv.weight.flatten(1), conv.bias)
