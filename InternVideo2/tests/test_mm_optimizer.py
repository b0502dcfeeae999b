"""The multi-modality optimizer and schedule: the original's ``different_lr`` and LambdaLR cosine."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from internvideo2.mm.config import ConfigError
from internvideo2.mm.engine import build_lr_schedule, build_mm_optimizer


class TwoTowers(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision_encoder = nn.Linear(4, 4)
        self.text_encoder = nn.Linear(4, 4)
        self.temp = nn.Parameter(torch.tensor(0.07))
        self.frozen = nn.Linear(4, 4).requires_grad_(False)

    def no_weight_decay(self):
        return {"temp"}


def config(**different_lr):
    optimizer = {"opt": "adamw", "lr": 1e-4, "weight_decay": 0.05, "opt_betas": [0.9, 0.98]}
    if different_lr:
        optimizer["different_lr"] = different_lr
    return OmegaConf.create(
        {"optimizer": optimizer, "scheduler": {"epochs": 2, "warmup_epochs": 1, "min_lr_multi": 0.1}}
    )


def lr_and_decay(optimizer, model):
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {name_of[id(p)]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}


def test_different_lr_gives_matching_parameters_their_own_lr():
    model = TwoTowers()
    cfg = config(enable=True, module_names=["^text_"], lr=1e-3)
    got = lr_and_decay(build_mm_optimizer(cfg, model), model)
    assert got == {
        "vision_encoder.weight": (1e-4, 0.05),
        "vision_encoder.bias": (1e-4, 0.0),
        "text_encoder.weight": (1e-3, 0.05),
        "text_encoder.bias": (1e-3, 0.0),
        "temp": (1e-4, 0.0),
    }  # the frozen layer is not optimised


def test_disabled_different_lr_keeps_one_lr():
    model = TwoTowers()
    cfg = config(enable=False, module_names=["^text_"], lr=1e-3)
    assert {lr for lr, _ in lr_and_decay(build_mm_optimizer(cfg, model), model).values()} == {1e-4}


def test_patterns_that_match_nothing_are_a_config_error():
    with pytest.raises(ConfigError, match="match no trainable parameter"):
        build_mm_optimizer(config(enable=True, module_names=["audio_"], lr=1e-3), TwoTowers())


def test_schedule_is_the_originals_clamped_warmup_cosine_for_every_group():
    model = TwoTowers()
    cfg = config(enable=True, module_names=["^text_"], lr=1e-3)
    optimizer = build_mm_optimizer(cfg, model)
    schedule = build_lr_schedule(cfg, optimizer, per_epoch=5)  # 10 updates, 5 of warm-up, floor 0.1
    expected = {
        0: 0.1,  # max(0.1, 0 / 5)
        2: 0.4,
        5: 1.0,
        6: 0.5 * (1 + math.cos(math.pi * 1 / 5)),
        9: max(0.1, 0.5 * (1 + math.cos(math.pi * 4 / 5))),  # 0.095 -> clamped
        10: 0.1,
    }
    for step, factor in expected.items():
        schedule.step_update(step)
        lrs = sorted({g["lr"] for g in optimizer.param_groups})
        assert lrs == pytest.approx([1e-4 * factor, 1e-3 * factor], rel=1e-12)
