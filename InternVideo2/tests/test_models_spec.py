"""Every released model class builds exactly the released state-dict keys and shapes (on ``meta``)."""

import json
from pathlib import Path

import pytest
import timm
import torch

import internvideo2  # noqa: F401
from internvideo2.models import (
    VARIANTS,
    InternVideo2Encoder,
    internvl_clip_6b,
    stage2_vision_encoder,
    teacher_internvideo2_1B,
    videomae_g14,
)

DATA = Path(__file__).parent / "data"


def spec(file: str) -> dict:
    return json.loads((DATA / file).read_text())["models"]


SINGLE = spec("internvideo2_single_modality_keys.json")
TEACHERS = spec("internvideo2_teachers_keys.json")
MULTI = spec("internvideo2_multi_modality_vision_keys.json")


def assert_layout(model: torch.nn.Module, expected: dict) -> None:
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(expected) - set(got)) == [], "missing keys"
    assert sorted(set(got) - set(expected)) == [], "extra keys"
    wrong = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert wrong == {}


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_single_modality_layout(name):
    kwargs = {"num_classes": 400} if name.startswith("internvideo2_") else {}
    assert_layout(timm.create_model(name, device="meta", **kwargs), SINGLE[name])


@pytest.mark.parametrize(
    ("name", "factory"),
    [
        ("internvideo2_1B", teacher_internvideo2_1B),
        ("internvl_clip_6b", internvl_clip_6b),
        ("videomae_g14", videomae_g14),
    ],
)
def test_teacher_layout_and_size(name, factory):
    model = factory(device="meta")
    assert_layout(model, TEACHERS[name]["keys"])
    total = int(TEACHERS[name]["built_as"].split("total elements: ")[1].split()[0])
    assert sum(t.numel() for t in model.state_dict().values()) == total


@pytest.mark.parametrize("size", ["1B", "6B"])
def test_stage2_vision_layout(size):
    entry = MULTI[f"stage2_vision_encoder_{size}"]
    model = stage2_vision_encoder(size, device="meta")
    assert_layout(model, entry["keys"])
    total = int(entry["built_as"].split("total elements: ")[1].split()[0])
    assert sum(t.numel() for t in model.state_dict().values()) == total


@pytest.mark.parametrize(
    ("size", "spec_name"), [("small", "S14"), ("base", "B14"), ("large", "L14"), ("1B", "1B"), ("6B", "6B")]
)
def test_clip_vision_encoder_layout(size, spec_name):
    with torch.device("meta"):
        model = InternVideo2Encoder(**VARIANTS[size])
    assert_layout(model, MULTI[f"clip_vision_encoder_{spec_name}"]["keys"])


def test_every_original_name_is_registered():
    names = set(timm.list_models("*internvideo2*"))
    for size in VARIANTS:
        for prefix in ("internvideo2", "internvideo2_ap", "internvideo2_cat"):
            assert f"{prefix}_{size}_patch14_224" in names
    assert {f"pretrain_internvideo2_{s}_patch14_224" for s in ("1B", "6B")} <= names
    assert {f"distill_internvideo2_{s}_patch14_224" for s in ("small", "base", "large")} <= names


def test_attentive_probe_and_concat_heads_on_meta():
    ap = timm.create_model("internvideo2_ap_1B_patch14_224", num_classes=400, device="meta")
    assert ap.state_dict()["extra_mlp.1.fc1.weight"].shape == (3072, 768)
    cat = timm.create_model(
        "internvideo2_cat_base_patch14_224", num_classes=400, merge_method="cls_avgN_proj", device="meta"
    )
    # (T' + 1) summaries of 768 plus the pooled 768: (8 + 1 + 1) * 768
    assert cat.head.weight.shape == (400, 10 * 768)
