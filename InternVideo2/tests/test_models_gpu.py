"""On a GPU: bf16 and compiled execution compute the same function as the fp32 eager reference."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import internvideo2  # noqa: F401 - registers the models
from ivtools.train import compile_blocks

pytestmark = pytest.mark.gpu

TINY = {"embed_dim": 192, "depth": 4, "num_heads": 3, "img_size": 56, "num_frames": 4, "num_classes": 10}


def _model(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("internvideo2_small_patch14_224", **TINY, **kw).cuda()


def _video(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 3, 4, 56, 56, generator=torch.Generator().manual_seed(1)).cuda()


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("fused", [False, True])
def test_bf16_autocast_forward_matches_fp32(fused):
    flags = {"use_flash_attn": fused, "use_fused_rmsnorm": fused, "use_fused_mlp": fused}
    model = _model(**flags).eval()
    video = _video()
    with torch.no_grad():
        reference = model.forward_features(video)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model.forward_features(video)
    assert _relative_error(half, reference) < 2e-2  # bf16 has 8 mantissa bits


def test_compiled_blocks_compute_the_eager_function():
    model = _model().eval()
    video = _video()
    with torch.no_grad():
        reference = model(video)
        compile_blocks(model)
        compiled = model(video)
    torch.testing.assert_close(compiled, reference, rtol=1e-4, atol=1e-4)


def test_bf16_training_step_agrees_with_fp32_step():
    video, target = _video(), torch.arange(4).cuda()
    grads = []
    for autocast in (False, True):
        model = _model().train()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(video).float(), target)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert _relative_error(grads[1], grads[0]) < 5e-2
