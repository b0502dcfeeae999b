"""Fixtures specific to InternVideo1's tests."""

import pytest
import torch
import torch.nn.functional as F


def _clip_blocks_reference(x, blocks, causal=False):
    """CLIP residual blocks computed sequence-first with torch's own MHA function (an independent
    reference for the batch-first SDPA blocks of ``internvideo1.models.clip_blocks``)."""
    x = x.transpose(0, 1)
    length = x.shape[0]
    mask = torch.full((length, length), float("-inf")).triu(1) if causal else None
    for blk in blocks:
        h = F.layer_norm(x, (x.shape[-1],), blk.ln_1.weight, blk.ln_1.bias)
        a, _ = F.multi_head_attention_forward(
            h, h, h, x.shape[-1], blk.attn.num_heads, blk.attn.in_proj_weight, blk.attn.in_proj_bias,
            None, None, False, 0.0, blk.attn.out_proj.weight, blk.attn.out_proj.bias,
            training=False, need_weights=False, attn_mask=mask,
        )  # fmt: skip
        x = x + a
        h = F.layer_norm(x, (x.shape[-1],), blk.ln_2.weight, blk.ln_2.bias)
        h = blk.mlp.c_fc(h)
        x = x + blk.mlp.c_proj(h * torch.sigmoid(1.702 * h))
    return x.transpose(0, 1)


@pytest.fixture
def clip_blocks_reference():
    return _clip_blocks_reference


@pytest.fixture
def make_bpe(tmp_path):
    """``make_bpe(words)`` writes a CLIP merges file whose merges spell ``words`` whole."""

    def _make(words, name: str = "bpe_simple_vocab_16e6.txt.gz"):
        import gzip

        lines = ["#version: 0.2"]
        for word in words:
            pieces = [*word[:-1], word[-1] + "</w>"]
            while len(pieces) > 1:
                lines.append(f"{pieces[0]} {pieces[1]}")
                pieces = [pieces[0] + pieces[1], *pieces[2:]]
        path = tmp_path / name
        with gzip.open(path, "wt") as f:
            f.write("\n".join(dict.fromkeys(lines)) + "\n")
        return path

    return _make


@pytest.fixture
def tiny_internvideo_mm(monkeypatch):
    """Shrinks ``internvideo_mm_b16`` to a model that trains in a fraction of a second."""
    import internvideo1.models.multimodal as mm

    tiny = dict(
        mm._CONFIGS["b16"],
        vision={"patch_size": 16, "width": 32, "layers": 1, "heads": 2},
        mae={"patch_size": 16, "embed_dim": 24, "depth": 1, "num_heads": 2},
        text={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        embed_dim=16,
        fusion_heads=2,
        num_visual_queries=4,
        decoder_layers=1,
        all_gather=False,
    )
    monkeypatch.setitem(mm._CONFIGS, "b16", tiny)
