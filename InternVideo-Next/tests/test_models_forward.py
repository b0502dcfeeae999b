"""Forward/backward of every variant at reduced size, each mask type; patch embedding vs Conv3d."""

import pytest
import timm
import torch
import torch.nn.functional as F

from internvideo_next.data.masks import STAGE2_VIEWS, MultiBlockMask, attention_mask, token_mask
from internvideo_next.models import InternVideoNextClassifier, build_siglip_teacher, video_patches
from internvideo_next.models.common import PatchEmbed


def test_patch_embed_equals_norm_then_conv3d():
    pe = PatchEmbed(patch_size=4, in_chans=3, embed_dim=8, tubelet_size=2)
    torch.nn.init.normal_(pe.norm_before.weight)
    video = torch.randn(2, 3, 4, 8, 12)
    # reference: RMSNorm each (t, ph, pw, c) patch vector, rebuild the video, then the Conv3d
    p = video.reshape(2, 3, 2, 2, 2, 4, 3, 4).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(2, 12, 96)
    p = p * torch.rsqrt(p.pow(2).mean(-1, keepdim=True) + 1e-6) * pe.norm_before.weight
    rebuilt = p.reshape(2, 2, 2, 3, 2, 4, 4, 3).permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(2, 3, 4, 8, 12)
    ref = F.conv3d(rebuilt, pe.proj.weight, pe.proj.bias, stride=(2, 4, 4)).flatten(3).permute(0, 2, 3, 1)
    ref = ref * torch.rsqrt(ref.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(pe(video), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["internvideo_next_base_patch14_224", "internvideo_next_large_patch14_224"])
def test_encoder_forward_backward(name, tiny):
    model = timm.create_model(name, **{**tiny["trunk"], "depth": 2})
    video = torch.randn(2, 3, 4, 28, 28, requires_grad=True)
    tokens = model(video)
    assert tokens.shape == (2, 4 * 2 * 2, 32)
    pooled = model(video, projected=True)
    assert pooled.shape == (2, 16)
    (tokens.sum() + pooled.sum()).backward()
    assert video.grad.abs().sum() > 0
    # other frame counts / sizes resample the position table
    assert model(torch.randn(1, 3, 2, 42, 42)).shape == (1, 2 * 3 * 3, 32)


def test_masked_tokens_do_not_influence_visible_outputs(tiny):
    """Dropping masked tokens is exact: changing hidden pixels leaves the stage-2 prediction unchanged."""
    model = timm.create_model(
        "internvideo_next_stage2_base", **tiny["trunk"], bert_decoder=_bert(tiny)
    ).eval()
    video = torch.randn(1, 3, 4, 28, 28)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, :4] = True  # the whole first frame hidden
    changed = video.clone()
    changed[:, :, 0] = torch.randn(3, 28, 28)
    torch.testing.assert_close(model(video, mask), model(changed, mask))


def _bert(tiny):
    from internvideo_next.models import build_semantic_decoder

    return build_semantic_decoder(keep_layers=5, **tiny["bert"])


@pytest.mark.parametrize(("size", "mask_kind"), [("base", "attention"), ("large", "tube"), ("1b", "random")])
def test_stage1_forward_backward(size, mask_kind, tiny):
    trunk = {**tiny["trunk"], "depth": 2}
    model = timm.create_model(
        f"internvideo_next_stage1_{size}", **trunk, **tiny["stage1"], bert_decoder=_bert(tiny)
    )
    for p in model.diffloss.parameters():  # the DiT zero init would block gradients to the condition
        torch.nn.init.normal_(p, std=0.05)
    video = torch.randn(2, 3, 4, 28, 28)
    grid = (4, 2, 2)
    if mask_kind == "attention":
        teacher = build_siglip_teacher(None, return_layer=2, **tiny["teacher"])
        mask = attention_mask(teacher(video, grid[1:]).attn, 0.5, 2)
    else:
        mask = token_mask(mask_kind, grid, 0.5, 2)
    out = model(video, mask)
    assert out.clip_middle.shape == (2, 2, 8, 24)
    torch.testing.assert_close(out.clip_middle.norm(dim=-1), torch.ones(2, 2, 8))
    assert out.clip_final.shape == (2, 24) and out.diffusion_loss.ndim == 0
    (out.clip_middle.sum() + out.clip_final.sum() + out.diffusion_loss).backward()
    assert model.bert_mask_token.grad.abs().sum() > 0  # the mask token reaches the diffusion loss
    assert model.patch_embed.proj.weight.grad.abs().sum() > 0


def test_stage1_pixel_targets_are_pixel_unshuffle_patches():
    video = torch.arange(2 * 3 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 3, 1, 4, 4)
    patches = video_patches(video, 2)
    assert patches.shape == (2, 4, 12)
    # patch (row 0, col 1): channel-major then (ph, pw)
    want = torch.stack([video[0, c, 0, i, 2 + j] for c in range(3) for i in range(2) for j in range(2)])
    assert torch.equal(patches[0, 1], want)


@pytest.mark.parametrize("size", ["base", "large", "1b"])
def test_stage2_forward_backward_with_jepa_masks(size, tiny):
    model = timm.create_model(
        f"internvideo_next_stage2_{size}", **{**tiny["trunk"], "depth": 2}, bert_decoder=_bert(tiny)
    )
    video = torch.randn(2, 3, 4, 28, 28)
    for cfg in STAGE2_VIEWS:
        mask = MultiBlockMask(cfg, max_keep=12)((4, 2, 2), 2, torch.Generator().manual_seed(0))
        pred = model(video, mask)
        assert pred.shape == (2, int(mask[0].sum()), 32)
        pred.sum().backward()
    assert model.selfdist_decoder.head[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["finetune", "probe"])
def test_classifier_modes(mode, tiny):
    encoder = timm.create_model("internvideo_next_base_patch14_224", **tiny["trunk"])
    model = InternVideoNextClassifier(encoder, num_classes=5, mode=mode)
    logits = model(torch.randn(2, 3, 4, 28, 28))
    assert logits.shape == (2, 5)
    logits.sum().backward()
    trained_encoder = any(p.grad is not None for p in model.encoder.blocks.parameters())
    assert trained_encoder == (mode == "finetune")
