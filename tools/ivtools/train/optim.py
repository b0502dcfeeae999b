"""Optimizers and per-iteration schedules, on timm's factories.

The original recipes (VideoMAE lineage) scale the learning rates by the global batch over 256,
decay them per layer (``--layer_decay``), warm up linearly then follow a cosine per iteration,
and optionally move the weight decay along a cosine from ``--weight_decay`` to
``--weight_decay_end``. timm's ``create_optimizer_v2`` builds the parameter groups (layer-wise
``lr_scale`` from the model's ``group_matcher``, no decay for 1-D parameters, biases and the
model's ``no_weight_decay()`` names); timm's ``CosineLRScheduler`` applies ``lr_scale``.
"""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler


def scale_lr(lr: float, global_batch: int, base_batch: int = 256) -> float:
    """The linear scaling rule the original scripts use: ``lr * global_batch / base_batch``."""
    return lr * global_batch / base_batch


def build_optimizer(
    model: torch.nn.Module | list[dict],
    opt: str = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    layer_decay: float | None = None,
    eps: float | None = 1e-8,
    betas: tuple[float, float] | None = None,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """timm optimizer with layer-wise lr decay when ``layer_decay`` is set (and not 1).

    ``model`` may also be a list of parameter groups, used as they are.
    """
    kwargs = {}
    if eps is not None:
        kwargs["eps"] = eps
    if betas is not None:
        kwargs["betas"] = tuple(betas)
    if opt.lower() in ("adamw", "adam") and torch.cuda.is_available():
        kwargs["fused"] = True
    decay = layer_decay if layer_decay is not None and layer_decay < 1.0 else None
    return create_optimizer_v2(
        model, opt=opt, lr=lr, weight_decay=weight_decay, momentum=momentum, layer_decay=decay, **kwargs
    )


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr: float = 1e-6,
    warmup_lr: float = 1e-6,
) -> CosineLRScheduler:
    """Linear warm-up to the optimizer's lr over ``warmup_steps``, then cosine to ``min_lr``.

    Stepped per optimizer update with ``scheduler.step_update(num_updates)``; reaches ``min_lr``
    exactly at ``total_steps`` like the original's ``cosine_scheduler``.
    """
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    return CosineLRScheduler(
        optimizer,
        t_initial=max(total_steps - warmup_steps, 1),
        lr_min=min_lr,
        warmup_t=warmup_steps,
        warmup_lr_init=warmup_lr,
        warmup_prefix=True,
        t_in_epochs=False,
    )


class WarmupCosineMultiplier:
    """The original multi-modality schedule (a ``LambdaLR``), stepped per update.

    Every group's lr is its own base lr times ``max(min_lr_multi, step / warmup_steps)`` during
    warm-up, then ``max(min_lr_multi, (1 + cos(pi * progress)) / 2)``. Unlike
    :func:`build_lr_scheduler` (timm's cosine maps onto ``[min_lr, lr]`` and warms up from an
    absolute lr) the floor is a clamp and each group keeps its ratio to the others, so groups
    with their own lr (``optimizer.different_lr``) follow the schedule proportionally.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int = 0,
        min_lr_multi: float = 0.0,
    ):
        self.optimizer, self.total, self.warmup, self.floor = (
            optimizer,
            total_steps,
            warmup_steps,
            min_lr_multi,
        )
        self.base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self.step_update(0)

    def multiplier(self, step: int) -> float:
        if step < self.warmup:
            return max(self.floor, step / max(1, self.warmup))
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return max(self.floor, 0.5 * (1.0 + math.cos(math.pi * progress)))

    def step_update(self, step: int) -> None:
        factor = self.multiplier(step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs = list(state["base_lrs"])


class WeightDecaySchedule:
    """Cosine weight decay from ``start`` to ``end`` over ``total_steps`` (groups with decay > 0)."""

    def __init__(self, optimizer: torch.optim.Optimizer, start: float, end: float, total_steps: int):
        self.optimizer, self.start, self.end, self.total = optimizer, start, end, max(total_steps, 1)

    def value(self, step: int) -> float:
        t = min(step, self.total) / self.total
        return self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * t))

    def step_update(self, step: int) -> None:
        value = self.value(step)
        for group in self.optimizer.param_groups:
            if group["weight_decay"] > 0:
                group["weight_decay"] = value


def layer_lr_scales(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> dict[str, float]:
    """``{parameter name: lr_scale}`` of a built optimizer, for checking layer decay."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {name_of[id(p)]: g.get("lr_scale", 1.0) for g in optimizer.param_groups for p in g["params"]}
