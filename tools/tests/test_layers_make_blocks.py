"""make_blocks: the backbones' block stack (drop-path ramp, checkpointed prefix, flag passing)."""

import pytest
import torch

from ivtools.layers import DropPath, make_blocks


def test_drop_path_ramp_checkpoint_prefix_and_block_kwargs():
    blocks = make_blocks(
        5, 16, 2, 2.0, drop_path_rate=0.2, use_checkpoint=True, checkpoint_num=2,
        layerscale_no_force_fp32=True, init_values=1e-5, qk_normalization=True,
    )  # fmt: skip
    assert len(blocks) == 5
    assert isinstance(blocks[0].drop_path1, torch.nn.Identity)  # rate 0 for the first block
    rates = [b.drop_path1.drop_prob for b in blocks[1:]]
    assert rates == pytest.approx([0.05, 0.1, 0.15, 0.2])
    assert all(isinstance(b.drop_path2, DropPath) for b in blocks[1:])
    assert [b.with_cp for b in blocks] == [True, True, False, False, False]
    assert blocks[0].mlp.fc1.out_features == 32
    assert not blocks[0].ls1.force_fp32 and torch.allclose(blocks[0].ls1.gamma, torch.full((16,), 1e-5))
    assert blocks[0].attn.qk_normalization


def test_one_block_gets_rate_zero():
    (block,) = make_blocks(1, 8, 2, drop_path_rate=0.3)
    assert isinstance(block.drop_path1, torch.nn.Identity) and not block.with_cp
