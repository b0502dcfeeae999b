"""Regional ``torch.compile``: compile each transformer block of a model in place.

Eager PyTorch runs the fp32 RMSNorm statistics, LayerScale and GELU of every block as separate
memory-bound kernels (two thirds of an InternVideo2-L forward on an H100); compiled, they fuse
into a few kernels and the matmuls and attention dominate. Compiling block by block reuses one
graph for every block, so it costs seconds rather than minutes, and the maths is unchanged.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


def compile_blocks(model: nn.Module, attribute: str = "blocks", **compile_kwargs) -> int:
    """``torch.compile`` every module in ``model.<attribute>`` in place; returns how many.

    Raises ``ValueError`` naming the attribute when the model has no such block list.
    """
    blocks = getattr(model, attribute, None)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)):
        raise ValueError(f"{type(model).__name__} has no block list '{attribute}' to compile")
    for block in blocks:
        block.compile(**compile_kwargs)
    return len(blocks)


def add_compile_argument(parser) -> None:
    """``--compile`` / ``--no-compile``; unset means on when training on a GPU (see :func:`maybe_compile`)."""
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile each transformer block (default: on for CUDA, off on the CPU)",
    )


def maybe_compile(model: nn.Module, args, device: torch.device) -> bool:
    """Compile ``model``'s blocks when ``--compile`` asks, or by default on CUDA; returns whether it did.

    By default a model without a ``blocks`` list is left as it is; an explicit ``--compile`` on
    such a model is an error.
    """
    requested = getattr(args, "compile", None)
    if requested is False or (requested is None and device.type != "cuda"):
        return False
    if requested is None and not isinstance(getattr(model, "blocks", None), (nn.ModuleList, nn.Sequential)):
        return False
    compile_blocks(model)
    return True
