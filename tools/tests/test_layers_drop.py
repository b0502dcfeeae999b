"""DropPath with a tensor rate: timm's semantics, fp32 rate under casts, one compiled graph."""

import pytest
import torch

from ivtools.layers import DropPath


def test_keeps_whole_samples_scaled_by_the_keep_probability():
    torch.manual_seed(0)
    drop = DropPath(0.25).train()
    x = torch.ones(4000, 3, 5)
    out = drop(x)
    per_sample = out.flatten(1)
    # every sample is either dropped whole or kept whole and scaled by 1 / 0.75
    scale = torch.tensor(1 / 0.75, dtype=torch.float32).item()
    assert set(per_sample.unique().tolist()) <= {0.0, scale}
    assert torch.all(per_sample.amin(1) == per_sample.amax(1))
    kept = (per_sample[:, 0] > 0).float().mean().item()
    assert abs(kept - 0.75) < 0.03  # binomial sd ~0.007
    assert torch.equal(drop.eval()(x), x)


def test_rate_stays_fp32_and_exact_when_the_model_is_cast():
    drop = DropPath(0.1 / 3).to(torch.bfloat16)
    assert drop.keep_prob.dtype == torch.float32
    assert drop.keep_prob.item() == pytest.approx(1 - 0.1 / 3, abs=1e-7)
    assert "keep_prob" not in drop.state_dict()


def test_blocks_with_different_rates_share_one_compiled_graph():
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    drops = [DropPath(p).train() for p in (0.1, 0.2, 0.3, 0.4)]
    x = torch.randn(8, 4)
    for d in drops:
        torch.compile(d, backend=counter)(x)
    assert counter.frame_count == 1
