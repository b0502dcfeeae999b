"""Masked-distillation losses and targets against hand-computed values and a naive reference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from internvideo2.engine.pretrain import (
    MaskedDistillationConfig,
    alignment_loss,
    masked_distillation_loss,
    teacher_targets,
    visible_tokens,
)


def test_alignment_loss_hand_values():
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # cos = 1, 0, 1/sqrt(2)
    expected = (0.0 + 2.0 + (2 - math.sqrt(2))) / 3
    assert alignment_loss(s, t).item() == pytest.approx(expected, abs=1e-6)
    assert alignment_loss(3 * s, t).item() == pytest.approx(expected, abs=1e-6)  # scale-free under l2
    # Without normalisation the raw dot products 2, 0, 2 enter: (-2 + 2 - 2) / 3.
    assert alignment_loss(s, 2 * t, norm_type="none").item() == pytest.approx(-2 / 3, abs=1e-6)


def naive_weighted_loss(outputs, teacher_middle, teacher_final, teacher_mae, mask, ratios, mae_ratio):
    """Loop-by-loop reference: keep visible tokens, cosine per token, average, weight."""

    def cos_term(a, b):
        a, b = a / a.norm(), b / b.norm()
        return 2 - 2 * float((a * b).sum())

    k, b, _, _ = teacher_middle.shape
    middle, count = 0.0, 0
    for layer in range(k):
        for i in range(b):
            vis = [j for j in range(mask.shape[1]) if not mask[i, j]]
            for n, j in enumerate(vis):
                middle += cos_term(outputs[0][layer, i, n], teacher_middle[layer, i, j])
                count += 1
    middle /= count
    final = sum(cos_term(outputs[1][i], teacher_final[i]) for i in range(b)) / b
    mae, count = 0.0, 0
    for layer in range(teacher_mae.shape[0]):
        for i in range(b):
            vis = [j for j in range(mask.shape[1] - 1) if not mask[i, j + 1]]
            for n, j in enumerate(vis):
                mae += cos_term(outputs[2][layer, i, n], teacher_mae[layer, i, j])
                count += 1
    mae /= count
    return ratios[0] * middle + ratios[1] * final + mae_ratio * mae


def test_weighted_loss_matches_naive_reference():
    b, n, k = 2, 6, 3
    mask = torch.tensor(
        [[False, True, False, False, True, True, False], [False, False, True, True, False, False, True]]
    )
    teacher_middle, teacher_final, teacher_mae = (
        torch.randn(k, b, 1 + n, 5),
        torch.randn(b, 4),
        torch.randn(2, b, n, 7),
    )
    targets = {
        "clip_middle": visible_tokens(teacher_middle, mask),
        "clip_final": teacher_final,
        "mae": visible_tokens(teacher_mae, mask[:, 1:]),
    }
    outputs = (torch.randn(k, b, 4, 5), torch.randn(b, 4), torch.randn(2, b, 3, 7))
    cfg = MaskedDistillationConfig(mask_type="tube", clip_loss_ratio=(1.0, 0.5), mae_loss_ratio=2.0)
    loss, terms = masked_distillation_loss(outputs, targets, cfg)
    ref = naive_weighted_loss(outputs, teacher_middle, teacher_final, teacher_mae, mask, (1.0, 0.5), 2.0)
    assert loss.item() == pytest.approx(ref, rel=1e-5)
    assert set(terms) == {"loss_clip_middle", "loss_clip_final", "loss_mae"}
    # clip_teacher_final_dim 0 (no final alignment) drops the term.
    no_final = MaskedDistillationConfig(mask_type="tube", distill_final_features=False, mae_loss_ratio=2.0)
    loss2, terms2 = masked_distillation_loss(outputs, targets, no_final)
    assert "loss_clip_final" not in terms2
    assert loss2.item() == pytest.approx(
        terms["loss_clip_middle"].item() + 2 * terms["loss_mae"].item(), rel=1e-5
    )


class RecordingTeacher(nn.Module):
    """Returns features that encode the frames it saw, and records its input."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.seen = kind, None
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, video):
        self.seen = video
        b, _, t, h, w = video.shape
        patches = t * (h // 14) * (w // 14)
        if self.kind == "mae":
            return torch.randn(1, b, patches // 8, 3)  # tubelet 2 at twice the student's resolution
        attn = torch.rand(b * t, (h // 14) * (w // 14))
        return torch.randn(2, b, 1 + patches, 3), torch.randn(b, 3), attn


def test_teacher_targets_frame_rates_resolution_and_visible_counts():
    video = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(2, 3, 8, 28, 28).contiguous()
    clip, mae = RecordingTeacher("clip"), RecordingTeacher("mae")
    cfg = MaskedDistillationConfig(
        mask_type="attention", mask_ratio=0.5, td_ratio=2, clip_input_resolution=28, mae_input_resolution=56
    )
    targets = teacher_targets(video, clip, mae, cfg, mask=None)
    assert clip.seen.shape == (2, 3, 4, 28, 28)  # every second frame for the CLIP teacher
    assert mae.seen.shape == (2, 3, 8, 56, 56)  # all frames, resized, for the MAE teacher
    assert targets["student_video"][0, 0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 6.0]
    mask = targets["mask"]
    assert mask.shape == (2, 1 + 4 * 4) and not mask[:, 0].any()
    assert ((~mask[:, 1:]).view(2, 4, 4).sum(-1) == 2).all()  # half of each frame visible
    assert targets["clip_middle"].shape == (2, 2, 1 + 8, 3)
    assert targets["mae"].shape == (1, 2, 8, 3)
    with pytest.raises(ValueError, match="masks from the dataset"):
        teacher_targets(video, clip, mae, MaskedDistillationConfig(mask_type="tube", td_ratio=2), mask=None)
