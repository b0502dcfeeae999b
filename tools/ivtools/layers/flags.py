"""The InternVideo "fused" flags and the optional flash-attn kernels behind them.

The original code has three switches, ``use_flash_attn``, ``use_fused_rmsnorm`` and
``use_fused_mlp``, that must agree. They change the maths, not only the kernels:

* on: the MLP uses tanh-approximated GELU (flash-attn's ``FusedMLP``), and the block norms are
  flash-attn's ``DropoutAddRMSNorm(prenorm=True)``, which add the residual and normalise in one
  step and carry the residual stream separately from the branch output;
* off: the MLP uses exact (erf) GELU and the blocks use the textbook pre-norm residual.

Both settings run everywhere in pure PyTorch. flash-attn's kernels are used only when the package
imports and the tensors are on CUDA; they compute the same function.
"""

from __future__ import annotations

import importlib

import torch


def check_fused_flags(use_flash_attn: bool, use_fused_rmsnorm: bool, use_fused_mlp: bool) -> bool:
    """Return the common value of the three flags; raise if they disagree (as the original does)."""
    if not use_flash_attn == use_fused_rmsnorm == use_fused_mlp:
        raise ValueError(
            "use_flash_attn, use_fused_rmsnorm and use_fused_mlp must agree, got "
            f"use_flash_attn={use_flash_attn}, use_fused_rmsnorm={use_fused_rmsnorm}, use_fused_mlp={use_fused_mlp}"
        )
    return bool(use_flash_attn)


def _import_or_none(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:  # absent, or present but built for another CUDA/torch: fall back to PyTorch
        return None


# Looked up once, at import: a lookup inside a compiled forward would make Dynamo trace it.
_FLASH_ATTN_FUNC = _import_or_none("flash_attn", "flash_attn_func")
_DROPOUT_ADD_RMS_NORM = _import_or_none("flash_attn.ops.rms_norm", "dropout_add_rms_norm")


def flash_attn_func():
    """flash-attn's ``flash_attn_func`` (inputs ``(B, N, H, D)``), or ``None`` when not installed."""
    return _FLASH_ATTN_FUNC


def flash_dropout_add_rms_norm():
    """flash-attn's ``dropout_add_rms_norm`` kernel, or ``None`` when not installed/built."""
    return _DROPOUT_ADD_RMS_NORM


def on_cuda(*tensors: torch.Tensor) -> bool:
    return all(t.is_cuda for t in tensors)
