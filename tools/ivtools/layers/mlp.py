"""The transformer MLP with the GELU flavour the InternVideo flags select."""

from __future__ import annotations

from functools import partial

from timm.layers import Mlp
from torch import nn


def gelu_layer(fused: bool) -> type[nn.Module] | partial:
    """``nn.GELU`` with tanh approximation when ``fused`` (flash-attn's ``FusedMLP``), exact otherwise."""
    return partial(nn.GELU, approximate="tanh") if fused else nn.GELU


def make_mlp(dim: int, hidden_dim: int, fused: bool, drop: float = 0.0) -> Mlp:
    """``fc1 -> GELU -> fc2`` (timm's ``Mlp``; keys ``fc1.*``/``fc2.*`` as in the released weights).

    ``fused=True`` reproduces flash-attn's ``FusedMLP`` (GELU with the tanh approximation, no dropout);
    ``fused=False`` the original's unfused ``Mlp`` (exact GELU).
    """
    if fused and drop:
        raise ValueError(f"the fused MLP has no dropout, got drop={drop}")
    return Mlp(dim, hidden_features=hidden_dim, act_layer=gelu_layer(fused), drop=drop)
