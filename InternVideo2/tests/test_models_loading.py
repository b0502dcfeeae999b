"""Loading checkpoints written in the released formats and layouts, with resizing and clear errors."""

import pytest
import timm
import torch

import internvideo2  # noqa: F401
from internvideo2.models import (
    CheckpointMismatchError,
    InternVideo2Stage2Vision,
    InternVideo2Teacher,
    PretrainInternVideo2,
    load_checkpoint,
    to_encoder_state_dict,
)
from ivtools.checkpoint import LoadReport as SharedLoadReport
from ivtools.checkpoint import get_conversion, interpolate_pos_embed, save_state_dict_file

TINY = {
    "img_size": 28,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "mlp_ratio": 2.0,
    "attn_pool_num_heads": 2,
    "clip_embed_dim": 16,
    "num_frames": 4,
}
OFF = {"use_flash_attn": False, "use_fused_rmsnorm": False, "use_fused_mlp": False}


def classifier(**kwargs):
    return timm.create_model(
        "internvideo2_small_patch14_224", **{"num_classes": 5, **TINY, **OFF, **kwargs}
    ).eval()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"model": sd},
        lambda sd: {"module": sd, "epoch": 3},
        lambda sd: {"module": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["bare", "model", "deepspeed", "module-prefix"],
)
def test_released_wrappings_load_and_give_the_same_outputs(tmp_path, wrap):
    source, target = classifier(), classifier()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(source.state_dict()), path)
    report = load_checkpoint(target, path)
    assert report.reinitialised == [] and report.dropped == []
    x = torch.randn(1, 3, 4, 28, 28)
    assert torch.equal(target(x), source(x))


def test_timm_checkpoint_path_route(tmp_path):
    source = classifier()
    path = tmp_path / "ckpt.pth"
    torch.save({"model": source.state_dict()}, path)
    target = timm.create_model(
        "internvideo2_small_patch14_224", checkpoint_path=str(path), num_classes=5, **TINY, **OFF
    )
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_pretrain_checkpoint_into_classifier_drops_alignment_and_keeps_head(tmp_path):
    pretrain = PretrainInternVideo2(**TINY, **OFF, clip_teacher_embed_dim=8, mae_teacher_embed_dim=8)
    path = tmp_path / "pt.safetensors"
    save_state_dict_file(pretrain.state_dict(), path)
    model = classifier()
    head_before = model.head.weight.clone()
    report = load_checkpoint(model, path)
    assert {
        "clip_pos_embed",
        "mae_pos_embed",
        "clip_decoder.0.head.weight",
        "final_clip_decoder.norm.bias",
    } <= set(report.dropped)
    assert set(report.reinitialised) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    assert torch.equal(model.head.weight, head_before)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, pretrain.blocks[1].mlp.fc2.weight)


def test_stage2_checkpoint_vision_encoder_into_teacher():
    # The multi-modality model saves the vision encoder under "vision_encoder." at 4 frames.
    stage2 = InternVideo2Stage2Vision(**TINY, **OFF, sep_image_video_pos_embed=True)
    full = {f"vision_encoder.{k}": v for k, v in stage2.state_dict().items()}
    full["text_encoder.embeddings.weight"] = torch.zeros(3, 3)
    full["temp"] = torch.tensor(0.07)
    teacher = InternVideo2Teacher(**{**TINY, "num_frames": 8}, **OFF)
    report = load_checkpoint(teacher, full)
    assert "pos_embed" in report.resized and "temp" in report.dropped and "img_pos_embed" in report.dropped
    expected = interpolate_pos_embed(stage2.pos_embed.detach(), 1, (4, 2, 2), (8, 2, 2))
    torch.testing.assert_close(teacher.pos_embed.detach(), expected)
    assert torch.equal(teacher.clip_projector.cross_attn.q.weight, stage2.clip_projector.cross_attn.q.weight)


def test_equal_sizes_keep_the_function_and_other_sizes_resample():
    source = classifier()
    x = torch.randn(1, 3, 4, 28, 28)
    same = classifier()
    same.load_state_dict(source.state_dict())  # nothing to resample: identical outputs
    assert torch.equal(same(x), source(x))

    longer = classifier(num_frames=8)  # 4 -> 8 frames through plain load_state_dict (pre-hook)
    longer.load_state_dict(source.state_dict())
    expected = interpolate_pos_embed(source.pos_embed.detach(), 1, (4, 2, 2), (8, 2, 2))
    torch.testing.assert_close(longer.pos_embed.detach(), expected)
    assert longer(torch.randn(1, 3, 8, 28, 28)).shape == (1, 5)

    larger = classifier(img_size=42)  # 28 -> 42 px: 2 x 2 -> 3 x 3 patches
    report = load_checkpoint(larger, source.state_dict())
    assert report.resized == ["pos_embed"]
    expected = interpolate_pos_embed(source.pos_embed.detach(), 1, (4, 2, 2), (4, 3, 3))
    torch.testing.assert_close(larger.pos_embed.detach(), expected)
    assert larger(torch.randn(1, 3, 4, 42, 42)).shape == (1, 5)


def test_ambiguous_grid_needs_orig_t_size():
    source = classifier(num_frames=2)  # 2 frames x 2 x 2
    target = classifier(num_frames=4, img_size=56)  # 4 x 4 x 4: 8 rows fit neither as-is
    with pytest.raises(ValueError, match="cannot tell"):
        load_checkpoint(target, source.state_dict())
    load_checkpoint(target, source.state_dict(), orig_t_size=2)
    expected = interpolate_pos_embed(source.pos_embed.detach(), 1, (2, 2, 2), (4, 4, 4))
    torch.testing.assert_close(target.pos_embed.detach(), expected)


def test_other_class_count_reinitialises_the_head():
    source = classifier(num_classes=7)
    target = classifier()
    report = load_checkpoint(target, source.state_dict())
    assert report.dropped == ["head.weight", "head.bias"]
    assert report.reinitialised == ["head.weight", "head.bias"]
    assert torch.equal(target.fc_norm.weight, source.fc_norm.weight)


def test_report_extends_the_shared_report():
    # ivtools' LoadReport fields carry the same facts: the head of 7 classes had the wrong shape.
    deeper = classifier(num_classes=7, depth=3)
    report = load_checkpoint(classifier(), deeper.state_dict(), strict=False)
    assert isinstance(report, SharedLoadReport)
    width = TINY["clip_embed_dim"]  # the head classifies the attention-pooled embedding
    assert report.mismatched == [f"head.weight: (7, {width}) -> (5, {width})", "head.bias: (7,) -> (5,)"]
    assert report.missing == [] and report.unexpected[0] == "blocks.2.norm1.weight"
    assert "shape mismatch (kept at init): 2" in report.summary("x.pth")


def test_wrong_size_names_the_first_mismatches():
    wider = classifier(embed_dim=48, num_heads=2)
    with pytest.raises(CheckpointMismatchError, match=r"cls_token: \(1, 1, 48\) vs \(1, 1, 32\)"):
        load_checkpoint(classifier(), wider.state_dict())
    deeper = classifier(depth=3)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected \(\d+\): blocks\.2\."):
        load_checkpoint(classifier(), deeper.state_dict())
    report = load_checkpoint(classifier(), deeper.state_dict(), strict=False)
    assert "blocks.2.norm1.weight" in report.dropped


def test_wrong_modality_is_rejected():
    text_only = {"text_encoder.layer.0.weight": torch.zeros(2), "temp": torch.tensor(1.0)}
    with pytest.raises(CheckpointMismatchError, match="missing"):
        load_checkpoint(classifier(), text_only)


def test_2d_patch_kernel_is_inflated_at_the_centre():
    source = classifier()
    sd = source.state_dict()
    sd["patch_embed.proj.weight"] = sd["patch_embed.proj.weight"][:, :, 0]
    target = classifier(tubelet_size=2)
    load_checkpoint(target, sd)
    kernel = target.patch_embed.proj.weight
    assert torch.equal(kernel[:, :, 1], source.patch_embed.proj.weight[:, :, 0])
    assert kernel[:, :, 0].abs().max() == 0


def test_encoder_conversion_is_registered():
    stage2 = InternVideo2Stage2Vision(**TINY, **OFF)
    full = {f"module.vision_encoder.{k}": v for k, v in stage2.state_dict().items()}
    converted = get_conversion("internvideo2_to_encoder")(full)
    assert converted == to_encoder_state_dict(full)
    assert "pos_embed" in converted and "clip_pos_embed" not in converted
    assert not any(k.startswith(("clip_decoder", "final_clip_decoder", "vision_encoder")) for k in converted)
