"""What every registered factory does with the arguments timm's ``create_model`` adds."""

from __future__ import annotations

from collections.abc import Callable

from timm.models import register_model
from torch import nn

# timm passes these to every entry point; the models here have no hub weights to configure.
_TIMM_ARGUMENTS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "drop_block_rate")


def model_kwargs(name: str, pretrained: bool, kwargs: dict) -> dict:
    """``kwargs`` without timm's generic arguments; ``pretrained=True`` is refused (no downloads)."""
    if pretrained:
        raise ValueError(
            f"{name}: nothing is downloaded; build the model and load a local checkpoint with "
            "internvideo1.checkpoints (see the README)"
        )
    return {k: v for k, v in kwargs.items() if k not in _TIMM_ARGUMENTS}


def register_factory(
    name: str, module: str, build: Callable[..., nn.Module], doc: str = ""
) -> Callable[..., nn.Module]:
    """Register ``build(**kwargs)`` in timm as the entry point ``name`` of ``module``.

    Model families with many sizes keep one table of sizes and register each name from it, rather
    than one near-identical function per size.
    """

    def factory(pretrained: bool = False, **kwargs) -> nn.Module:
        return build(**model_kwargs(name, pretrained, kwargs))

    factory.__name__ = factory.__qualname__ = name
    factory.__module__ = module
    factory.__doc__ = doc or f"{name} (keyword arguments override the model's defaults)."
    return register_model(factory)
