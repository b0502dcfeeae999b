"""InternVideo1 multi-modality model: cross-model attention, fusion at init, causality, training, and
the original CoTrain's masked-language (mlm) and video-text matching (vtm) objectives, the latter
with its word-patch alignment term (vtm_wpa)."""

import math

import pytest
import timm
import torch
import torch.nn.functional as F

from internvideo1.losses import clip_special_tokens_mask, draw_vtm_pairs, mask_text_for_mlm
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


PAD, SOT, EOT = (
    0,
    62,
    63,
)  # the tiny 64-token vocabulary: end-of-text is the largest id  # the tiny 64-token vocabulary: end-of-text is the largest id


def _captions(batch: int, generator: torch.Generator) -> torch.Tensor:
    """Rows ``SOT w1 .. wn EOT 0 ..`` of random lengths 1..10 in a 12-token context."""
    ids = torch.zeros(batch, 12, dtype=torch.long)
    for row in range(batch):
        n = int(torch.randint(1, 11, (1,), generator=generator))
        words = torch.randint(1, SOT, (n,), generator=generator)
        ids[row, : n + 2] = torch.cat([torch.tensor([SOT]), words, torch.tensor([EOT])])
    return ids


def test_special_tokens_mask_covers_sot_eot_and_padding():
    ids = _captions(6, torch.Generator().manual_seed(0))
    special = clip_special_tokens_mask(ids, ids == PAD)
    assert torch.equal(special, (ids == PAD) | (ids == SOT) | (ids == EOT))


def test_mlm_masking_rule_over_many_draws():
    generator = torch.Generator().manual_seed(0)
    ids = _captions(64, generator)
    special = clip_special_tokens_mask(ids, ids == PAD)
    draws = 300
    masked_count = torch.zeros_like(ids)
    for _ in range(draws):
        labels, masked = mask_text_for_mlm(ids, special, 0.15, generator)
        assert not masked[special].any()
        assert torch.equal(labels[masked], ids[masked]) and (labels[~masked] == -100).all()
        masked_count += masked
    # Rate over all maskable positions: 0.15 within 5 standard deviations of the binomial.
    trials = draws * int((~special).sum())
    rate = masked_count[~special].sum().item() / trials
    assert abs(rate - 0.15) < 5 * math.sqrt(0.15 * 0.85 / trials)
    # Independent per token: every maskable position is masked in some draws, never in all.
    per_position = masked_count[~special] / draws
    assert per_position.min() > 0 and per_position.max() < 0.4


def _batch(model, batch: int = 4, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, 3, 8, 32, 32, generator=generator)
    ids = _captions(batch, generator)
    with torch.no_grad():
        _, text_tokens = model.text_encoder.encode_text(ids, return_all_feats=True)
        _, visual = model.pooled_visual(video)
    return video, ids, text_tokens, visual


def test_mlm_loss_equals_hand_computation():
    model = tiny_model(loss_names={"contrastive": 0, "cap": 0, "mlm": 1}).eval()
    video, ids, _, visual = _batch(model)
    torch.manual_seed(3)
    with torch.no_grad():
        loss = model(video, ids, ids == PAD)["loss_mlm"]
        torch.manual_seed(3)  # forward draws the mask as its only random step: the same mask here
        logits, labels = model.mlm_logits(visual, ids, ids == PAD)
    masked = labels != -100
    assert masked.any()
    picked = logits[masked].log_softmax(-1).gather(1, labels[masked][:, None])
    torch.testing.assert_close(loss, -picked.mean())
    # The masked tokens reach the encoder as the mask embedding: logits differ from the unmasked text.
    with torch.no_grad():
        _, clean_tokens = model.text_encoder.encode_text(ids, return_all_feats=True)
        clean = model.mlm_score(model.caption_decoder.decode_text(visual, clean_tokens))
    first = masked.nonzero()[0]
    assert not torch.allclose(logits[first[0], first[1]], clean[first[0], first[1]])


def test_vtm_pairs_are_built_as_the_original():
    generator = torch.Generator().manual_seed(0)
    idx = torch.tensor([0, 0, 1, 1, 2, 3, 4, 5, 5])  # several captions of one video share its id
    for _ in range(200):
        video_index, labels = draw_vtm_pairs(idx, generator)
        negative = labels == 0
        assert negative.sum() == 9 - 9 // 2  # B // 2 positives, the rest negatives
        assert (idx[video_index[negative]] != idx[negative]).all()  # a negative never matches
        assert torch.equal(video_index[~negative], torch.arange(9)[~negative])
    # A batch that is one video with many captions has no negative to draw: every row stays positive.
    video_index, labels = draw_vtm_pairs(torch.zeros(4, dtype=torch.long), generator)
    assert labels.tolist() == [1, 1, 1, 1] and video_index.tolist() == [0, 1, 2, 3]


def test_vtm_negatives_are_drawn_at_random():
    generator = torch.Generator().manual_seed(1)
    idx = torch.arange(6)
    seen = set()
    for _ in range(300):
        video_index, labels = draw_vtm_pairs(idx, generator)
        seen |= {(row, int(video_index[row])) for row in (labels == 0).nonzero().flatten().tolist()}
    # Every row is a negative at some draw, paired with every other video.
    assert seen == {(i, j) for i in range(6) for j in range(6) if i != j}


def test_vtm_loss_equals_hand_computation_and_negatives_see_their_video():
    model = tiny_model(loss_names={"vtm": 1, "vtm_wpa": 0}).eval()
    video, ids, text_tokens, visual = _batch(model, batch=6, seed=2)
    idx = torch.arange(6)
    torch.manual_seed(5)
    with torch.no_grad():
        out = model(video, ids, ids == PAD, idx)
        torch.manual_seed(5)  # the pair draw is forward's only random step
        pairs = model.vtm_pairs(visual, text_tokens, idx)
        logits, labels, video_index = model.vtm_logits(pairs, ids), pairs.labels, pairs.video_index
    assert set(out) == {"loss", "loss_vtc", "loss_cap", "loss_vtm"}
    hand = -logits.log_softmax(-1)[torch.arange(6), labels].mean()
    torch.testing.assert_close(out["loss_vtm"], hand)
    torch.testing.assert_close(out["loss"], out["loss_vtc"] + out["loss_cap"] + out["loss_vtm"])
    assert (labels == 0).sum() == 3
    # Each row's logits are the head on the fused (video[video_index], caption) pair.
    with torch.no_grad():
        fused = model.encode_fused(video[video_index], ids)
        eot = fused[torch.arange(6), ids.argmax(-1)]
        torch.testing.assert_close(logits, model.vtm_score(model.pooler(eot)), rtol=1e-4, atol=1e-5)


def test_heads_use_the_original_names_and_only_exist_when_selected():
    default = tiny_model()
    assert not any(k.startswith(("mlm_score", "vtm_score", "pooler")) for k in default.state_dict())
    assert not hasattr(default.text_encoder, "text_mask_embedding")
    model = tiny_model(loss_names={"mlm": 1, "vtm": 0.5})
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    width, vocab = 32, 64
    expected = {
        "mlm_score.transform.dense.weight": (width, width),
        "mlm_score.transform.dense.bias": (width,),
        "mlm_score.transform.LayerNorm.weight": (width,),
        "mlm_score.transform.LayerNorm.bias": (width,),
        "mlm_score.decoder.weight": (vocab, width),
        "mlm_score.bias": (vocab,),
        "vtm_score.fc.weight": (2, width),
        "vtm_score.fc.bias": (2,),
        "pooler.dense.weight": (width, width),
        "pooler.dense.bias": (width,),
        "text_encoder.text_mask_embedding": (1, 1, width),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    # The original's init_weights: N(0, 0.02) linear weights, zero biases.
    assert abs(model.vtm_score.fc.weight.std().item() - 0.02) < 0.01 and not model.pooler.dense.bias.any()


def test_all_objectives_weighted_and_backward():
    model = tiny_model(
        loss_names={"contrastive": 2, "cap": 0.5, "mlm": 1, "vtm": 0.25, "vtm_wpa": 0.5}
    ).train()
    video, ids, _, _ = _batch(model, batch=4, seed=4)
    out = model(video, ids, ids == PAD)
    weighted = 2 * out["loss_vtc"] + 0.5 * out["loss_cap"] + out["loss_mlm"] + 0.25 * out["loss_vtm"]
    weighted = weighted + 0.5 * out["loss_vtm_wpa"]
    torch.testing.assert_close(out["loss"].detach(), weighted)
    # Untrained heads: about uniform over the 64-token vocabulary and the two matching classes.
    assert abs(out["loss_mlm"].item() - math.log(64)) < 1.0
    assert abs(out["loss_vtm"].item() - math.log(2)) < 0.3
    out["loss"].backward()
    for name in ("mlm_score.decoder.weight", "vtm_score.fc.weight", "pooler.dense.weight",
                 "text_encoder.text_mask_embedding", "caption_decoder.visual_queries"):  # fmt: skip
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_loss_names_are_checked():
    with pytest.raises(ValueError, match="unknown loss names"):
        tiny_model(loss_names={"itm": 1})
    with pytest.raises(ValueError, match="no objective"):
        tiny_model(loss_names={"contrastive": 0, "cap": 0})
    with pytest.raises(ValueError, match="needs a positive vtm weight"):
        tiny_model(loss_names={"vtm_wpa": 0.1})


def _reference_ipot_distance(cost: torch.Tensor, beta: float = 0.5, iterations: int = 50) -> torch.Tensor:
    """Textbook IPOT (Xie et al., 2019, one Sinkhorn pass per step) on one unpadded ``(M, N)`` cost,
    in the original's video-by-text orientation; written apart from ``internvideo1.losses``."""
    m, n = cost.shape
    kernel = torch.exp(-cost.t() / beta)  # (N, M)
    plan = torch.ones(n, m, dtype=cost.dtype)
    text_scale = torch.full((m,), 1.0 / m, dtype=cost.dtype)
    for _ in range(iterations):
        q = kernel * plan
        video_scale = 1.0 / (n * (q @ text_scale))
        text_scale = 1.0 / (m * (q.t() @ video_scale))
        plan = video_scale[:, None] * q * text_scale[None, :]
    return torch.trace(cost @ plan)


def test_vtm_with_wpa_equals_hand_computation():
    """loss = CE(vtm) + 0.1 * (sum of positive OT distances - sum of negative ones) / B, the OT
    distance taken between the words (no SOT / EOT / padding) and the paired video's visual tokens."""
    model = tiny_model(loss_names={"contrastive": 0, "cap": 0, "vtm": 1}).eval()
    assert model.loss_names["vtm_wpa"] == 0.1  # the original's weight is the default
    video, ids, _, _ = _batch(model, batch=6, seed=7)
    torch.manual_seed(11)
    with torch.no_grad():
        out = model(video, ids, ids == PAD)
        torch.manual_seed(11)
        video_index, labels = draw_vtm_pairs(torch.arange(6))
        fused = model.encode_fused(video[video_index], ids)
        visual_tokens = model.pooled_visual(video)[1][video_index]
    assert set(out) == {"loss", "loss_vtm", "loss_vtm_wpa"} and (labels == 0).sum() == 3
    ce = -model.vtm_score(model.pooler(fused[torch.arange(6), ids.argmax(-1)])).log_softmax(-1)
    ce = ce[torch.arange(6), labels].mean()
    distances = []
    for row in range(6):
        words = fused[row][(ids[row] != PAD) & (ids[row] != SOT) & (ids[row] != EOT)].double()
        patches = visual_tokens[row].double()
        cosine = (words / words.norm(dim=-1, keepdim=True)) @ (
            patches / patches.norm(dim=-1, keepdim=True)
        ).t()
        distances.append(_reference_ipot_distance(1 - cosine))
    distances = torch.stack(distances).float()
    wpa = (distances[labels == 1].sum() - distances[labels == 0].sum()) / 6
    assert distances.min() > 0
    torch.testing.assert_close(out["loss_vtm"], ce, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["loss_vtm_wpa"], wpa, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["loss"], ce + 0.1 * wpa, rtol=1e-4, atol=1e-5)


def test_wpa_ignores_special_and_padding_tokens_of_the_caption():
    model = tiny_model(loss_names={"vtm": 1}).eval()
    video, ids, text_tokens, visual = _batch(model, batch=4, seed=9)
    with torch.no_grad():
        pairs = model.vtm_pairs(visual, text_tokens, torch.arange(4), torch.Generator().manual_seed(0))
        loss = model.vtm_wpa_loss(pairs, visual, ids, ids == PAD)
        special = (ids == PAD) | (ids == SOT) | (ids == EOT)
        noise = torch.randn_like(pairs.fused)
        moved_special = pairs._replace(fused=torch.where(special[..., None], noise, pairs.fused))
        moved_word = pairs._replace(fused=torch.where(special[..., None], pairs.fused, noise))
        torch.testing.assert_close(model.vtm_wpa_loss(moved_special, visual, ids, ids == PAD), loss)
        assert not torch.allclose(model.vtm_wpa_loss(moved_word, visual, ids, ids == PAD), loss)


def test_wpa_weight_is_configurable_and_only_counts_with_vtm():
    video, ids, _, _ = _batch(tiny_model(), batch=4, seed=1)
    assert "loss_vtm_wpa" not in tiny_model()(video, ids, ids == PAD)  # vtm off: no alignment either
    assert "loss_vtm_wpa" not in tiny_model(loss_names={"vtm": 1, "vtm_wpa": 0})(video, ids, ids == PAD)
    model = tiny_model(loss_names={"contrastive": 0, "cap": 0, "vtm": 1, "vtm_wpa": 2.0}).train()
    out = model(video, ids, ids == PAD)
    torch.testing.assert_close(out["loss"].detach(), out["loss_vtm"] + 2.0 * out["loss_vtm_wpa"])
