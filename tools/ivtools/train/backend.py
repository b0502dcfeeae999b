"""Training backends: plain PyTorch (DDP when distributed) or DeepSpeed, behind one interface.

Both run a step as ``with backend.autocast(): loss = ...; backend.backward_step(loss, update)``
and save/restore their optimizer state through ``state_dict()``/``load_state_dict()`` (native)
or DeepSpeed's own checkpoint folders (see :mod:`ivtools.train.resume`).

* :class:`NativeBackend` -- fp32, bf16 autocast, or fp16 autocast with a gradient scaler;
  gradient accumulation; gradient clipping; ``DistributedDataParallel`` across ranks.
* :class:`DeepSpeedBackend` -- ``deepspeed.initialize`` with ZeRO stage 0-3, bf16/fp16, the
  optimizer built by :mod:`ivtools.train.optim` (DeepSpeed steps it; the lr scheduler stays ours).
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.parallel import DistributedDataParallel

from ivtools.distributed import DistInfo

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


class NativeBackend:
    kind = "native"

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        dist: DistInfo,
        precision: str = "fp32",
        clip_grad: float | None = None,
        accumulation: int = 1,
        find_unused_parameters: bool = False,
    ):
        _check_precision(precision)
        self.accumulation = accumulation
        self.module = model.to(dist.device)
        self.optimizer, self.dist, self.precision, self.clip_grad = optimizer, dist, precision, clip_grad
        self.model = (
            DistributedDataParallel(
                self.module,
                device_ids=[dist.device] if dist.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )
            if dist.distributed
            else self.module
        )
        self.scaler = torch.amp.GradScaler(dist.device.type, enabled=precision == "fp16")
        self.optimizer.zero_grad(set_to_none=True)

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.dist.device.type, dtype=_DTYPE[self.precision])

    def prepare(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.dist.device, non_blocking=True)

    def backward_step(self, loss: torch.Tensor, update: bool) -> torch.Tensor | None:
        """Backpropagate one micro-batch's ``loss``; on ``update`` clip, step and zero.

        The loss is divided by the accumulation count so that accumulated gradients average the
        micro-batches. Gradients are synchronised across ranks only on update steps (DDP's
        ``no_sync``). Returns the gradient norm on update steps.
        """
        sync = contextlib.nullcontext() if update or not self.dist.distributed else self.model.no_sync()
        with sync:
            self.scaler.scale(loss / self.accumulation).backward()
        if not update:
            return None
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        max_norm = self.clip_grad if self.clip_grad else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])


def _ensure_process_group(dist: DistInfo) -> None:
    """DeepSpeed needs a process group even for one process: make a one-rank one if absent."""
    import torch.distributed as tdist

    if tdist.is_initialized():
        return
    if dist.distributed:
        raise RuntimeError("distributed run without a process group: call init_distributed() first")
    import os
    import socket

    # DeepSpeed reads the launcher's variables even for one process.
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tdist.init_process_group(
        "nccl" if dist.device.type == "cuda" else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=0,
        world_size=1,
    )


@contextlib.contextmanager
def _scalar_parameters_broadcast_here(model: torch.nn.Module):
    """DeepSpeed (0.19) broadcasts parameters as ``uint8`` views, which fails for 0-dim ones (a
    learnable temperature); broadcast those here and have DeepSpeed skip them meanwhile (it skips
    parameters marked ``ds_optim_param``)."""
    import torch.distributed as tdist

    scalars = [p for p in model.parameters() if p.dim() == 0]
    for p in scalars:
        if tdist.is_initialized() and tdist.get_world_size() > 1:
            tdist.broadcast(p.data, src=0)
        p.ds_optim_param = True
    try:
        yield
    finally:
        for p in scalars:
            del p.ds_optim_param


class DeepSpeedBackend:
    kind = "deepspeed"

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        dist: DistInfo,
        precision: str = "bf16",
        clip_grad: float | None = None,
        zero_stage: int = 1,
        micro_batch_size: int = 1,
        accumulation: int = 1,
        zero_options: dict | None = None,
    ):
        import deepspeed

        _check_precision(precision)
        _ensure_process_group(dist)
        self.dist, self.precision = dist, precision
        config = {
            "train_micro_batch_size_per_gpu": micro_batch_size,
            "gradient_accumulation_steps": accumulation,
            "zero_optimization": {"stage": zero_stage, **(zero_options or {})},
            "bf16": {"enabled": precision == "bf16"},
            "fp16": {"enabled": precision == "fp16", "initial_scale_power": 16, "loss_scale_window": 1000},
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if clip_grad:
            config["gradient_clipping"] = clip_grad
        model = model.to(dist.device)  # before the broadcast: NCCL broadcasts device tensors only
        with _scalar_parameters_broadcast_here(model):
            self.model, self.optimizer, _, _ = deepspeed.initialize(
                model=model, optimizer=optimizer, config=config, dist_init_required=False
            )
        self.module = self.model.module

    def autocast(self):
        # DeepSpeed holds the module in bf16/fp16 itself; inputs are cast in prepare().
        return contextlib.nullcontext()

    def prepare(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(self.dist.device, non_blocking=True)
        return tensor.to(_DTYPE[self.precision]) if tensor.is_floating_point() else tensor

    def backward_step(self, loss: torch.Tensor, update: bool) -> torch.Tensor | None:
        # DeepSpeed divides by its accumulation count, counts micro-steps and steps on the
        # accumulation boundary itself.
        self.model.backward(loss)
        self.model.step()
        if not update:
            return None
        norm = self.model.get_global_grad_norm()  # a device tensor or a float, depending on the stage
        return None if norm is None else torch.as_tensor(norm, dtype=torch.float32, device=self.dist.device)
