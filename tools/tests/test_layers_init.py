"""The shared ViT initialisation: truncated-normal linears, unit LayerNorms, depth-scaled outputs."""

from __future__ import annotations

import math

import torch
from torch import nn

from ivtools.layers import init_vit_weights, rescale_residual_branches


def test_init_vit_weights_linear_and_layernorm():
    torch.manual_seed(0)
    linear, norm = nn.Linear(256, 512), nn.LayerNorm(8)
    nn.init.constant_(norm.weight, 3.0)
    nn.init.constant_(norm.bias, 1.0)
    for module in (linear, norm):
        init_vit_weights(module)
    assert abs(linear.weight.std().item() - 0.02) < 0.002  # truncated at +-2 (100 std): ~N(0, 0.02)
    assert torch.equal(linear.bias, torch.zeros(512))
    assert torch.equal(norm.weight, torch.ones(8)) and torch.equal(norm.bias, torch.zeros(8))


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn, self.mlp = nn.Module(), nn.Module()
        self.attn.proj, self.mlp.fc2 = nn.Linear(2, 2), nn.Linear(2, 2)
        for layer in (self.attn.proj, self.mlp.fc2):
            nn.init.ones_(layer.weight)


def test_rescale_residual_branches_divides_by_sqrt_two_depth():
    blocks = [_Block() for _ in range(3)]
    rescale_residual_branches(blocks)
    for depth, block in enumerate(blocks, start=1):
        expected = torch.full((2, 2), 1 / math.sqrt(2 * depth))
        torch.testing.assert_close(block.attn.proj.weight.data, expected)
        torch.testing.assert_close(block.mlp.fc2.weight.data, expected)
