"""forward_flops against a hand count for a tiny configuration and against torch's FLOP counter."""

import timm
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import internvideo2  # noqa: F401
from internvideo2.models import DistillInternVideo2, forward_flops

OFF = {"use_flash_attn": False, "use_fused_rmsnorm": False, "use_fused_mlp": False}


def tiny(**kwargs):
    cfg = {"img_size": 28, "num_frames": 2, "embed_dim": 16, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0}
    cfg.update(attn_pool_num_heads=2, clip_embed_dim=4, num_classes=3)
    return timm.create_model("internvideo2_small_patch14_224", **cfg, **OFF, **kwargs)


def test_tiny_config_by_hand():
    # 2 frames x 2 x 2 patches = 8 patches, 9 tokens, width 16, MLP 32, pool to 4, 3 classes.
    patch = 2 * 8 * 16 * (3 * 14 * 14)
    qkv, proj, mlp = 9 * 16 * 48, 9 * 16 * 16, 2 * 9 * 16 * 32
    scores_and_mix = 2 * 9 * 9 * 16
    per_block = 2 * (qkv + proj + mlp + scores_and_mix)
    pool = 2 * (16 * 16 + 2 * 9 * 16 * 16 + 2 * 9 * 16 + 16 * 4)
    head = 2 * 4 * 3
    assert forward_flops(tiny()) == patch + 2 * per_block + pool + head
    assert forward_flops(tiny(), batch_size=3) == 3 * (patch + 2 * per_block + pool + head)


def test_agrees_with_torch_flop_counter():
    model = tiny().eval()
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):  # the math path shows its matmuls to the counter
        model(torch.randn(2, 3, 2, 28, 28))
    measured = counter.get_total_flops()
    assert abs(forward_flops(model, batch_size=2) - measured) / measured < 1e-3


def test_masked_student_counts_visible_tokens_and_decoders():
    model = DistillInternVideo2(
        img_size=28,
        num_frames=4,
        embed_dim=16,
        depth=1,
        num_heads=2,
        mlp_ratio=2.0,
        attn_pool_num_heads=2,
        clip_embed_dim=4,
        clip_teacher_embed_dim=6,
        clip_teacher_final_dim=5,
        **OFF,
    ).eval()
    mask = torch.ones(1, 17, dtype=torch.bool)
    mask[:, :9] = False  # class token + 8 of 16 patches
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):  # the math path shows its matmuls to the counter
        model(torch.randn(1, 3, 4, 28, 28), mask)
    measured = counter.get_total_flops()
    assert abs(forward_flops(model, keep_ratio=0.5) - measured) / measured < 1e-3
