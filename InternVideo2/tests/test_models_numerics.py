"""The classifier's outputs against an independent, explicit re-statement of the original's maths.

The reference below is written from the original's documented semantics (RMSNorm over the full
width for q/k, explicit softmax attention, LayerScale, textbook pre-norm residual, tanh or exact
GELU, mean-query attention pooling, fc_norm, head), in float64, with no code from the package.
"""

import math

import pytest
import timm
import torch

import internvideo2  # noqa: F401  (registers the models)
from ivtools.layers import Block, merge_residual

TINY = {
    "img_size": 28,
    "num_frames": 4,
    "embed_dim": 64,
    "depth": 2,
    "num_heads": 4,
    "attn_pool_num_heads": 4,
    "clip_embed_dim": 32,
    "num_classes": 5,
}


def flags(fused: bool) -> dict:
    return {"use_flash_attn": fused, "use_fused_rmsnorm": fused, "use_fused_mlp": fused}


def randomise(model: torch.nn.Module) -> None:
    """Weights far from their initial values, so that every term matters."""
    gen = torch.Generator().manual_seed(1)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=gen, dtype=param.dtype)
        if (
            name.endswith(("norm1.weight", "norm2.weight", "q_norm.weight", "k_norm.weight"))
            or "norm" in name
        ):
            param.data = 1 + 0.2 * noise
        elif name.endswith("gamma"):
            param.data = 0.5 + 0.2 * noise
        else:
            param.data = noise / math.sqrt(param.shape[-1] if param.dim() > 1 else 4)


def rms(x, w, eps=1e-6):
    return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def softmax_attention(q, k, v, heads):
    """q (B, Nq, C), k/v (B, Nk, C) -> (B, Nq, C), explicit softmax(q k^T / sqrt(d)) v per head."""
    b, nq, c = q.shape
    d = c // heads
    q = q.reshape(b, nq, heads, d)
    k = k.reshape(b, -1, heads, d)
    v = v.reshape(b, -1, heads, d)
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
    weights = torch.exp(logits - logits.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, nq, c)


def gelu(x, tanh):
    if tanh:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def reference_forward(sd, video, cfg, tanh_gelu):
    sd = {k: v.double() for k, v in sd.items()}
    video = video.double()
    b, c, t, h, w = video.shape
    p = 14
    patches = video.reshape(b, c, t, h // p, p, w // p, p)
    kernel = sd["patch_embed.proj.weight"][:, :, 0]
    x = torch.einsum("bcthpwq,dcpq->bthwd", patches, kernel) + sd["patch_embed.proj.bias"]
    x = x.reshape(b, -1, x.shape[-1])
    x = torch.cat([sd["cls_token"].expand(b, -1, -1), x], dim=1) + sd["pos_embed"]
    width = x.shape[-1]
    for i in range(cfg["depth"]):
        pre = f"blocks.{i}."
        y = rms(x, sd[pre + "norm1.weight"])
        q, k, v = (y @ sd[pre + "attn.qkv.weight"].T).split(width, dim=-1)
        q, k = rms(q, sd[pre + "attn.q_norm.weight"]), rms(k, sd[pre + "attn.k_norm.weight"])
        a = (
            softmax_attention(q, k, v, cfg["num_heads"]) @ sd[pre + "attn.proj.weight"].T
            + sd[pre + "attn.proj.bias"]
        )
        x = x + sd[pre + "ls1.gamma"] * a
        y = rms(x, sd[pre + "norm2.weight"])
        y = gelu(y @ sd[pre + "mlp.fc1.weight"].T + sd[pre + "mlp.fc1.bias"], tanh_gelu)
        x = x + sd[pre + "ls2.gamma"] * (y @ sd[pre + "mlp.fc2.weight"].T + sd[pre + "mlp.fc2.bias"])
    pre = "clip_projector."

    def proj(z, name):
        return z @ sd[f"{pre}cross_attn.{name}.weight"].T + sd[f"{pre}cross_attn.{name}_bias"]

    query = layer_norm(x.mean(1, keepdim=True), sd[pre + "norm1_q.weight"], sd[pre + "norm1_q.bias"])
    keys = layer_norm(x, sd[pre + "norm1_k.weight"], sd[pre + "norm1_k.bias"])
    values = layer_norm(x, sd[pre + "norm1_v.weight"], sd[pre + "norm1_v.bias"])
    pooled = softmax_attention(
        proj(query, "q"), proj(keys, "k"), proj(values, "v"), cfg["attn_pool_num_heads"]
    )
    pooled = pooled[:, 0] @ sd[pre + "cross_attn.proj.weight"].T + sd[pre + "cross_attn.proj.bias"]
    pooled = layer_norm(pooled, sd["fc_norm.weight"], sd["fc_norm.bias"])
    return pooled @ sd["head.weight"].T + sd["head.bias"]


def build(fused: bool, **extra):
    model = timm.create_model("internvideo2_small_patch14_224", **TINY, **flags(fused), **extra)
    randomise(model)
    return model.eval()


@pytest.fixture
def video():
    return torch.randn(2, 3, TINY["num_frames"], 28, 28)


@pytest.mark.parametrize("fused", [False, True])
def test_fp64_equals_reference(fused, video):
    model = build(fused).double()
    expected = reference_forward(model.state_dict(), video, TINY, tanh_gelu=fused)
    torch.testing.assert_close(model(video.double()), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fused", [False, True])
def test_fp32_relative_error_below_1e5(fused, video):
    model = build(fused)
    expected = reference_forward(model.state_dict(), video, TINY, tanh_gelu=fused)
    got = model(video).double()
    assert ((got - expected).norm() / expected.norm()).item() < 1e-5


def test_fused_and_unfused_differ_only_by_the_gelu(video):
    fused, unfused = build(True), build(False)
    unfused.load_state_dict(fused.state_dict())
    difference = (fused(video) - unfused(video)).abs().max().item()
    assert difference > 1e-6  # tanh vs erf GELU is visible ...
    for block in unfused.blocks:
        block.mlp.act = torch.nn.GELU(approximate="tanh")
    # ... and is the only difference (residual handling agrees in fp32)
    torch.testing.assert_close(fused(video), unfused(video), rtol=1e-6, atol=1e-6)


def test_fused_block_carries_the_residual_separately():
    torch.manual_seed(0)
    fused = Block(16, 2, qk_normalization=True, init_values=0.3, **flags(True)).double()
    unfused = Block(16, 2, qk_normalization=True, init_values=0.3, **flags(False)).double()
    unfused.load_state_dict(fused.state_dict())
    unfused.mlp.act = torch.nn.GELU(approximate="tanh")
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    branch, residual = fused(x)
    # flash-attn prenorm semantics: the block returns the MLP branch and the stream before it.
    y = x + fused.ls1(fused.attn(fused.norm1(x)))
    torch.testing.assert_close(residual, y)
    torch.testing.assert_close(branch, fused.ls2(fused.mlp(fused.norm2(y))))
    torch.testing.assert_close(merge_residual(branch, residual), unfused(x)[0])
    # a second fused block adds the incoming branch before normalising
    branch2, residual2 = fused(branch, residual)
    torch.testing.assert_close(merge_residual(branch2, residual2), unfused(unfused(x)[0])[0])
    with pytest.raises(ValueError, match="residual"):
        unfused(x, residual)


def test_flags_must_agree():
    with pytest.raises(ValueError, match="must agree"):
        timm.create_model(
            "internvideo2_small_patch14_224", use_flash_attn=True, use_fused_rmsnorm=False, use_fused_mlp=True
        )


def test_half_precision_norm_statistics_are_fp32():
    from ivtools.layers import RMSNorm

    x = (torch.randn(3, 64) * 300).bfloat16()
    exact = x.float() / x.float().pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()  # fp32 statistics
    fused, unfused = RMSNorm(64, fused=True), RMSNorm(64, fused=False)
    # flash-attn flavour: output in the input dtype
    assert fused(x).dtype == torch.bfloat16
    torch.testing.assert_close(fused(x), exact.bfloat16(), rtol=0, atol=0)
    # the original plain RMSNorm: rounded to bf16, then multiplied by the fp32 weight (promotes)
    assert unfused(x).dtype == torch.float32
    torch.testing.assert_close(unfused(x), exact.bfloat16().float(), rtol=0, atol=0)


def test_bf16_autocast_matches_fp32_roughly(video):
    model = build(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(video)
    high = model(video)
    assert low.dtype == torch.bfloat16
    assert ((low.float() - high).norm() / high.norm()).item() < 0.05


def test_layer_scale_product_in_fp32_under_autocast():
    from ivtools.layers import LayerScale

    scale = LayerScale(8, init_values=1e-5, force_fp32=True)
    x = torch.full((2, 8), 3.0, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = scale(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), torch.full((2, 8), 3e-5).bfloat16().float())


@pytest.mark.parametrize("tubelet", [1, 2])
def test_patch_embed_matmul_equals_the_strided_convolution(tubelet):
    from internvideo2.models import PatchEmbed3D

    torch.manual_seed(0)
    embed = PatchEmbed3D(
        img_size=28, patch_size=14, embed_dim=16, num_frames=4, tubelet_size=tubelet
    ).double()
    x = torch.randn(2, 3, 4, 28, 28, dtype=torch.float64)
    conv = torch.nn.functional.conv3d(x, embed.proj.weight, embed.proj.bias, stride=embed.proj.stride)
    expected = conv.flatten(3).permute(0, 2, 3, 1)  # (B, T', H'W', D)
    torch.testing.assert_close(embed(x), expected, rtol=1e-12, atol=1e-12)
