"""InternVideo1 multi-modality model: cross-model attention, fusion at init, causality, training."""

import math

import timm
import torch
import torch.nn.functional as F

from internvideo1.models.multimodal import CrossModelAttentionBlock, InternVideoMultiModal

TINY = {
    "vision": {
        "input_resolution": 32,
        "patch_size": 16,
        "width": 32,
        "layers": 1,
        "heads": 2,
        "num_frames": 4,
    },
    "mae": {"img_size": 32, "patch_size": 16, "embed_dim": 24, "depth": 1, "num_heads": 2, "all_frames": 8},
    "text": {"context_length": 12, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    "embed_dim": 16,
    "fusion_heads": 2,
    "decoder_layers": 1,
    "num_visual_queries": 4,
    "all_gather": False,
}


def tiny_model(**overrides) -> InternVideoMultiModal:
    return timm.create_model("internvideo_mm_b16", **{**TINY, **overrides})


def _text():
    ids = torch.zeros(2, 12, dtype=torch.long)
    ids[0, :5] = torch.tensor([62, 5, 9, 11, 63])  # SOT ... EOT (the largest id)
    ids[1, :7] = torch.tensor([62, 7, 3, 4, 8, 10, 63])
    return ids, ids == 0


def _reference_cross_block(blk, x, ctx):
    """The gated block computed with explicit einsum attention (independent of SDPA / ivtools)."""
    c = blk.context_proj(F.layer_norm(ctx, ctx.shape[-1:], blk.norm_context.weight, blk.norm_context.bias))
    q_in = F.layer_norm(x, x.shape[-1:], blk.norm_q.weight, blk.norm_q.bias)
    a = blk.attn
    heads = a.num_heads
    q = (q_in @ a.q.weight.t() + a.q_bias).unflatten(-1, (heads, -1))
    k = (c @ a.k.weight.t() + a.k_bias).unflatten(-1, (heads, -1))
    v = (c @ a.v.weight.t() + a.v_bias).unflatten(-1, (heads, -1))
    w = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    out = torch.einsum("bhqk,bkhd->bqhd", w.softmax(-1), v).flatten(2)
    x = x + torch.tanh(blk.attn_gate) * a.proj(out)
    h = F.layer_norm(x, x.shape[-1:], blk.norm_mlp.weight, blk.norm_mlp.bias)
    return x + torch.tanh(blk.mlp_gate) * blk.mlp.fc2(F.gelu(blk.mlp.fc1(h)))


def test_cross_model_attention_matches_reference():
    blk = CrossModelAttentionBlock(32, 24, num_heads=4)
    with torch.no_grad():
        blk.attn_gate.fill_(0.7)
        blk.mlp_gate.fill_(-0.3)
        for name in ("q_bias", "k_bias", "v_bias"):
            getattr(blk.attn, name).normal_()
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 24)
    torch.testing.assert_close(blk(x, ctx), _reference_cross_block(blk, x, ctx), rtol=1e-4, atol=1e-5)


def test_zero_gates_leave_the_clip_encoder_unchanged():
    model = tiny_model().eval()
    video = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        clip_tokens = model.clip_video(video[:, :, ::2])  # 8-frame clip, 4-frame CLIP tower
        expected = F.layer_norm(
            clip_tokens[:, 0], (32,), model.visual_ln_post.weight, model.visual_ln_post.bias
        )
        torch.testing.assert_close(model.encode_video(video), expected @ model.visual_proj)
        # Opening the gates lets the MAE stream change the video embedding.
        for blk in model.fusion.clip_from_mae:
            blk.attn_gate.fill_(1.0)
        assert not torch.allclose(model.encode_video(video), expected @ model.visual_proj)


def test_forward_backward_and_frozen_mae():
    model = tiny_model().train()
    ids, pad = _text()
    out = model(torch.randn(2, 3, 8, 32, 32), ids, pad)
    assert set(out) == {"loss", "loss_vtc", "loss_cap"} and torch.isfinite(out["loss"])
    # An untrained decoder predicts about uniformly over the 64-token vocabulary.
    assert abs(out["loss_cap"].item() - math.log(64)) < 1.0
    out["loss"].backward()
    assert all(p.grad is None for p in model.mae_video.parameters())
    assert model.mae_video.training is False
    for name in (
        "fusion.clip_from_mae.0.attn_gate",
        "caption_decoder.predictor.4.weight",
        "visual_proj",
        "logit_scale",
    ):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_caption_decoder_is_causal():
    model = tiny_model().eval()
    video = torch.randn(1, 3, 8, 32, 32)
    ids = _text()[0][:1]
    changed = ids.clone()
    changed[0, 3] = 20
    with torch.no_grad():
        a, b = model.encode_fused(video, ids), model.encode_fused(video, changed)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_released_size_configs():
    # Built on the meta device: the full-size configs' shapes without allocating them.
    with torch.device("meta"):
        model = timm.create_model("internvideo_mm_b16")
    assert model.clip_video.width == 768 and model.mae_video.embed_dim == 768
    assert tuple(model.visual_proj.shape) == (768, 512)
    assert model.text_encoder.token_embedding.weight.shape == (49408, 512)
    assert model.caption_decoder.predictor[-1].out_features == 49408
