"""Architecture of each InternVideo2 size (patch 14, 224 px) and the timm factory every variant uses."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from timm.models import register_model
from torch import nn

VARIANTS: dict[str, dict] = {
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6, "mlp_ratio": 4},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4},
    "large": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4},
    "1B": {"embed_dim": 1408, "depth": 40, "num_heads": 16, "mlp_ratio": 48 / 11},
    "6B": {"embed_dim": 3200, "depth": 48, "num_heads": 25, "mlp_ratio": 4},
}
for _cfg in VARIANTS.values():
    _cfg.update(img_size=224, patch_size=14, attn_pool_num_heads=16, clip_embed_dim=768)

# Arguments timm.create_model passes to every factory; they concern hub weights, which never download here.
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def build(cls: Callable[..., nn.Module], config: dict, kwargs: dict) -> nn.Module:
    """``cls(**config, **kwargs)``; ``device=`` (e.g. ``"meta"``) and ``dtype=`` build it there directly."""
    for key in _TIMM_ONLY:
        kwargs.pop(key, None)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    with torch.device(device or "cpu"):
        model = cls(**{**config, **kwargs})
    return model if dtype is None else model.to(dtype)


def register_variant(module: str, name: str, cls: Callable[..., nn.Module], config: dict) -> Callable:
    """Register ``name`` in timm's registry as a factory building ``cls`` with ``config`` + user kwargs."""

    def factory(pretrained: bool = False, **kwargs) -> nn.Module:
        if pretrained:
            raise ValueError(
                f"{name}: released weights are not downloaded; build the model, then "
                "internvideo2.models.load_checkpoint(model, path) (or timm.create_model(..., checkpoint_path=path))"
            )
        return build(cls, config, kwargs)

    factory.__name__ = factory.__qualname__ = name
    factory.__module__ = module
    factory.__doc__ = f"{cls.__name__} with {config}; keyword arguments override it."
    setattr(sys.modules[module], name, factory)
    return register_model(factory)
