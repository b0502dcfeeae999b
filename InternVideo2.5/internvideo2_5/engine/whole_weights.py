"""Whole weights of a trained model, also when DeepSpeed ZeRO-3 has partitioned its parameters.

Under ZeRO-3 every rank holds only a slice of each large parameter (``param.data`` is empty, the
slice lives in ``param.ds_tensor``), so ``model.state_dict()`` and peft's ``get_delta_weight``
would read empty tensors. Gathering a parameter is a collective: every rank must gather the same
parameters in the same order. The functions here therefore run on every rank, gather one
parameter (or one LoRA layer) at a time, so that no rank ever holds the whole model on its
device, and keep CPU copies on rank 0 only. Without ZeRO-3 the gathers do nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import nn

from ivtools.distributed import is_main_process


def is_partitioned(param: torch.Tensor) -> bool:
    """True for a parameter that DeepSpeed ZeRO-3 manages (it gives them a ``ds_id``)."""
    return hasattr(param, "ds_id")


def gathered(params: Iterable[torch.Tensor]) -> contextlib.AbstractContextManager:
    """Context in which the ZeRO-3 parameters among ``params`` are whole on every rank (read only).

    A no-op (and no ``deepspeed`` import) when none is partitioned: native and ZeRO-1/2 runs.
    """
    params = list(params)
    if not any(is_partitioned(p) for p in params):
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params)


def parameter_count(params: Iterable[torch.Tensor]) -> int:
    """Elements of ``params`` counted whole (a ZeRO-3 parameter's own ``numel()`` is 0)."""
    return sum(getattr(p, "ds_numel", p.numel()) for p in params)


def whole_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with whole tensors, copied to the CPU, on rank 0 ({} on other ranks).

    Collective under ZeRO-3: every rank must call it.
    """
    state = {}
    # keep_vars: the parameters themselves, whose partitions can be gathered
    for key, tensor in model.state_dict(keep_vars=True).items():
        with gathered([tensor]):
            if is_main_process():
                state[key] = tensor.detach().to("cpu", copy=True)
    return state


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict in plain transformers keys, LoRA adapters merged into their weights.

    On rank 0 ({} on other ranks); collective under ZeRO-3: every rank must call it.
    """
    from peft.tuners.lora import LoraLayer

    state = {
        name.replace(".base_layer.", "."): tensor
        for name, tensor in whole_state_dict(model).items()
        if ".lora_" not in name
    }
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        key = f"{name}.weight"
        with gathered(module.parameters()):  # base weight and adapters together: the delta reads both
            if is_main_process():
                state[key] = state[key] + lora_delta(module).to("cpu", state[key].dtype)
    return state


def lora_delta(module: nn.Module) -> torch.Tensor:
    """What merging a peft LoRA layer's active adapters adds to its base weight."""
    return sum(module.get_delta_weight(adapter).detach() for adapter in module.active_adapters)
