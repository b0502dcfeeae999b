"""State-dict keys and shapes of the released checkpoints (full-size models built on the meta device)."""

import json
from pathlib import Path

import pytest
import timm
import torch

import internvideo_next.models  # noqa: F401
from internvideo_next.engine.classification import load_pretrained
from internvideo_next.models import InternVideoNextClassifier, build_semantic_decoder
from ivtools.checkpoint import save_state_dict_file

SPEC = json.loads((Path(__file__).parent / "data" / "internvideo_next_keys.json").read_text())["models"]

CASES = {
    "inference_base_f16": ("internvideo_next_base_patch14_224", {}),
    "inference_large_f16": ("internvideo_next_large_patch14_224", {}),
    "stage1_base": ("internvideo_next_stage1_base", {"clip_return_layer": 6}),
    "stage1_large": ("internvideo_next_stage1_large", {"clip_return_layer": 6}),
    "stage2_base": ("internvideo_next_stage2_base", {}),
    "stage2_large": ("internvideo_next_stage2_large", {}),
}


@pytest.mark.parametrize("spec_name", sorted(CASES))
def test_full_size_keys_and_shapes_match_release(spec_name):
    name, kwargs = CASES[spec_name]
    with torch.device("meta"):
        if "stage" in name:
            kwargs = {**kwargs, "bert_decoder": build_semantic_decoder()}
        model = timm.create_model(name, num_frames=16, **kwargs)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    want = SPEC[spec_name]["keys"]
    assert sorted(set(got) ^ set(want)) == []
    assert {k: v for k, v in got.items() if want[k] != v} == {}


def test_released_layout_loads_strictly_into_tiny_encoder(tmp_path, tiny):
    """Random tensors under the released key names (first 3 blocks) load strictly and land in place."""
    depth = tiny["trunk"]["depth"]
    released = [
        k
        for k in SPEC["inference_base_f16"]["keys"]
        if not k.startswith("blocks.") or int(k.split(".")[1]) < depth
    ]
    reference = timm.create_model("internvideo_next_base_patch14_224", **tiny["trunk"]).state_dict()
    assert sorted(reference) == sorted(released)
    state = {k: torch.randn_like(reference[k]) for k in released}
    path = save_state_dict_file({"module": state}, tmp_path / "released.pth")
    encoder = timm.create_model("internvideo_next_base_patch14_224", **tiny["trunk"])
    model = InternVideoNextClassifier(encoder, num_classes=3)

    class Args:
        model_key = "model|module"

    load_pretrained(model, str(path), Args)
    for key, value in state.items():
        assert torch.equal(model.encoder.state_dict()[key], value), key


def test_pos_embed_is_resampled_when_grid_differs(tmp_path, tiny):
    src = timm.create_model("internvideo_next_base_patch14_224", **{**tiny["trunk"], "num_frames": 8})
    path = save_state_dict_file({"model": src.state_dict()}, tmp_path / "f8.pth")
    model = InternVideoNextClassifier(
        timm.create_model("internvideo_next_base_patch14_224", **tiny["trunk"]), 3
    )

    class Args:
        model_key = "model"

    load_pretrained(model, str(path), Args)
    table = model.encoder.pos_embed
    assert table.shape == (1, 4 + 4 * 2 * 2, 32)
    # class-token rows are copied unchanged
    assert torch.equal(table[0, :4], src.pos_embed[0, :4])
