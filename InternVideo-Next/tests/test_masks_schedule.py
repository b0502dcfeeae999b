"""Mask generators (exact counts, block geometry) and the multi-scale schedule (hand-computed)."""

import numpy as np
import torch

from internvideo_next.data.masks import BlockConfig, MultiBlockMask, attention_mask, token_mask
from internvideo_next.data.schedule import MultiScaleSchedule, Scale, resample_clip


def test_random_and_tube_counts():
    rng = np.random.default_rng(0)
    m = token_mask("random", (4, 7, 7), 0.75, 3, rng)
    assert m.shape == (3, 196) and m.dtype == torch.bool and m.sum(1).tolist() == [147] * 3
    assert not torch.equal(m[0], m[1])  # every sample draws its own mask
    t = token_mask("tube", (4, 7, 7), 0.9, 2, rng)
    assert t.sum(1).tolist() == [4 * 44] * 2  # int(0.9 * 49) = 44 per frame
    frames = t.reshape(2, 4, 49)
    assert torch.equal(frames, frames[:, :1].expand_as(frames))  # the same positions in every frame


def test_attention_mask_keeps_only_attended_patches():
    attn = torch.zeros(6, 10)
    attn[:, :3] = 1.0  # only three patches have any attention
    m = attention_mask(attn, 0.7, batch=2)  # keep 10 - int(7.0) = 3 per frame
    assert m.shape == (2, 30)
    frames = m.reshape(6, 10)
    assert (~frames).sum(1).tolist() == [3] * 6
    assert not frames[:, :3].any() and frames[:, 3:].all()


def test_single_block_hides_exactly_one_box():
    cfg = BlockConfig(
        num_blocks=1, spatial_scale=(0.25, 0.25), temporal_scale=(0.5, 0.5), aspect_ratio=(1.0, 1.0)
    )
    m = MultiBlockMask(cfg)((4, 8, 8), batch=1, generator=torch.Generator().manual_seed(3))
    hidden = m.reshape(4, 8, 8)
    # duration int(4 * 0.5) = 2, area int(64 * 0.25) = 16, square -> 4 x 4
    assert hidden.sum() == 2 * 4 * 4
    ts, hs, ws = hidden.nonzero(as_tuple=True)
    assert (ts.max() - ts.min() + 1, hs.max() - hs.min() + 1, ws.max() - ws.min() + 1) == (2, 4, 4)


def test_multi_block_context_is_truncated_in_token_order():
    cfg = BlockConfig(num_blocks=2, spatial_scale=(0.2, 0.2))
    m = MultiBlockMask(cfg, max_keep=50)((4, 8, 8), batch=3, generator=torch.Generator().manual_seed(1))
    assert (~m).sum(1).tolist() == [50, 50, 50]
    for row in m:
        kept = (~row).nonzero().squeeze(1)
        # the kept tokens are the first 50 context tokens: every token before the last kept one
        # is either kept or hidden by a block -- verified by re-drawing without the cap below
        assert kept.is_contiguous() and kept.tolist() == sorted(kept.tolist())
    uncapped = MultiBlockMask(cfg)((4, 8, 8), batch=3, generator=torch.Generator().manual_seed(1))
    for capped, full in zip(m, uncapped, strict=True):
        context = (~full).nonzero().squeeze(1)
        keep = min(int((~uncapped).sum(1).min()), 50)
        assert torch.equal((~capped).nonzero().squeeze(1), context[:keep])


def test_schedule_candidates_hand_computed():
    s = MultiScaleSchedule(
        f1=4,
        f2=8,
        fs=2,
        r1=168,
        r2=224,
        rs=28,
        base_tokens=1024,
        min_tokens=1000,
        max_tokens=1600,
        batch_size=8,
    )
    # tokens per frame: 168 -> 144, 196 -> 196, 224 -> 256
    # f=4: 576, 784, 1024 ; f=6: 864, 1176, 1536 ; f=8: 1152, 1568, 2048
    want = [(4, 224, 1024, 8), (6, 196, 1176, 6), (6, 224, 1536, 5), (8, 168, 1152, 7), (8, 196, 1568, 5)]
    assert [(c.frames, c.resolution, c.tokens, c.batch_size) for c in s.candidates()] == want


def test_schedule_never_exceeds_token_budget_and_is_deterministic():
    s = MultiScaleSchedule(batch_size=16)
    budget = s.batch_size * s.base_tokens
    for step in range(200):
        scale = s.at(step)
        assert s.min_tokens <= scale.tokens <= s.max_tokens
        assert scale.batch_size * scale.tokens <= budget
        assert scale == s.at(step)
    assert len({s.at(i) for i in range(200)}) > 1


def test_resample_clip_picks_uniform_frames_and_resizes():
    video = torch.arange(8, dtype=torch.float32).view(1, 1, 8, 1, 1).expand(3, 3, 8, 28, 28)
    out = resample_clip(video, Scale(frames=4, resolution=14, tokens=4, batch_size=2))
    assert out.shape == (2, 3, 4, 14, 14)
    # linspace(0, 7, 4) = 0, 2.33, 4.67, 7 -> rounded 0, 2, 5, 7
    assert out[0, 0, :, 0, 0].tolist() == [0.0, 2.0, 5.0, 7.0]
