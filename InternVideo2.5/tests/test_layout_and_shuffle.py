"""Released key layout (tiny and 8B shapes), strict loading, fused-weight splits, pixel shuffle."""

import json
from pathlib import Path

import einops
import pytest
import torch

from internvideo2_5.configs.released import parse_config
from internvideo2_5.models.convert import hf_to_released, released_to_hf
from internvideo2_5.models.internvideo2_5 import pixel_shuffle
from internvideo2_5.models.loading import build_model, load_pretrained
from internvideo2_5.tiny import TINY_RELEASED_CONFIG
from ivtools.checkpoint import load_state_dict_file, save_state_dict_file

DATA = Path(__file__).parent / "data"


def expected_released_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """The remote-code InternVLChatModel's keys for an InternViT (layer_norm, qkv bias) + InternLM2 config."""
    v, l = cfg["vision_config"], cfg["llm_config"]
    c, side = v["hidden_size"], cfg["force_image_size"] // v["patch_size"]
    shapes = {
        "vision_model.embeddings.class_embedding": (1, 1, c),
        "vision_model.embeddings.position_embedding": (1, side * side + 1, c),
        "vision_model.embeddings.patch_embedding.weight": (c, 3, v["patch_size"], v["patch_size"]),
        "vision_model.embeddings.patch_embedding.bias": (c,),
    }
    for i in range(v["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        shapes.update(
            {
                p + "attn.qkv.weight": (3 * c, c),
                p + "attn.qkv.bias": (3 * c,),
                p + "attn.proj.weight": (c, c),
                p + "attn.proj.bias": (c,),
                p + "mlp.fc1.weight": (v["intermediate_size"], c),
                p + "mlp.fc1.bias": (v["intermediate_size"],),
                p + "mlp.fc2.weight": (c, v["intermediate_size"]),
                p + "mlp.fc2.bias": (c,),
                p + "norm1.weight": (c,),
                p + "norm1.bias": (c,),
                p + "norm2.weight": (c,),
                p + "norm2.bias": (c,),
                p + "ls1": (c,),
                p + "ls2": (c,),
            }
        )
    h, vocab = l["hidden_size"], l["vocab_size"]
    head_dim = h // l["num_attention_heads"]
    qkv_rows = (l["num_attention_heads"] + 2 * l["num_key_value_heads"]) * head_dim
    shapes.update(
        {
            "mlp1.0.weight": (4 * c,),
            "mlp1.0.bias": (4 * c,),
            "mlp1.1.weight": (h, 4 * c),
            "mlp1.1.bias": (h,),
            "mlp1.3.weight": (h, h),
            "mlp1.3.bias": (h,),
            "language_model.model.tok_embeddings.weight": (vocab, h),
            "language_model.model.norm.weight": (h,),
            "language_model.output.weight": (vocab, h),
        }
    )
    for i in range(l["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        shapes.update(
            {
                p + "attention.wqkv.weight": (qkv_rows, h),
                p + "attention.wo.weight": (h, h),
                p + "feed_forward.w1.weight": (l["intermediate_size"], h),
                p + "feed_forward.w3.weight": (l["intermediate_size"], h),
                p + "feed_forward.w2.weight": (h, l["intermediate_size"]),
                p + "attention_norm.weight": (h,),
                p + "ffn_norm.weight": (h,),
            }
        )
    return shapes


def test_8b_config_builds_the_released_layout_on_meta():
    released = json.loads((DATA / "internvideo2_5_chat_8b_config.json").read_text())
    config = parse_config(released)
    assert config.tokens_per_frame == 16 and config.tokens_before_merge == 256
    with torch.device("meta"):
        model = build_model(config, image_token_id=92546)
    shapes = {k: tuple(t.shape) for k, t in hf_to_released(model.state_dict(), config).items()}
    expected = expected_released_shapes(released)
    assert shapes == expected
    assert len(expected) == 573
    assert shapes["language_model.model.layers.0.attention.wqkv.weight"] == (6144, 4096)


def test_tiny_checkpoint_has_the_released_keys_and_loads_strictly(tiny_checkpoint):
    index = json.loads((tiny_checkpoint / "model.safetensors.index.json").read_text())
    released = json.loads((tiny_checkpoint / "config.json").read_text())
    stored = load_state_dict_file(tiny_checkpoint)
    assert {k: tuple(t.shape) for k, t in stored.items()} == expected_released_shapes(released)
    assert len(set(index["weight_map"].values())) > 1  # really sharded
    model, _, _ = load_pretrained(tiny_checkpoint)
    # Every released tensor arrives in the model (the conversion is a bijection, no key dropped).
    back = hf_to_released(model.state_dict(), parse_config(released))
    assert all(torch.equal(back[k], stored[k]) for k in stored)


def test_missing_or_extra_key_is_a_clear_error(tiny_checkpoint, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    (broken / "model.safetensors.index.json").unlink()
    for shard in broken.glob("model-*.safetensors"):
        shard.unlink()
    state = load_state_dict_file(tiny_checkpoint)
    state.pop("mlp1.3.bias")
    save_state_dict_file(state, broken / "model.safetensors")
    with pytest.raises(KeyError, match="missing"):
        load_pretrained(broken)
    state["mlp1.3.bias"] = torch.zeros(64)
    state["vision_model.encoder.layers.9.attn.qkv.weight"] = torch.zeros(96, 32)
    save_state_dict_file(state, broken / "model.safetensors")
    with pytest.raises(KeyError, match="unexpected"):
        load_pretrained(broken)


def test_internlm2_wqkv_split_matches_its_grouped_attention_layout():
    config = parse_config(TINY_RELEASED_CONFIG)  # 4 query heads, 2 kv heads, head_dim 16
    wqkv = torch.randn(128, 64)
    x = torch.randn(2, 5, 64)
    # InternLM2's forward: rearrange the fused projection per kv group: queries, key, value.
    fused = einops.rearrange(x @ wqkv.T, "b q (h gs d) -> b q h gs d", gs=4, d=16)
    q_ref = einops.rearrange(fused[..., :2, :], "b q h gs d -> b q (h gs d)")
    k_ref, v_ref = fused[..., -2, :].flatten(2), fused[..., -1, :].flatten(2)
    hf = released_to_hf({"language_model.model.layers.0.attention.wqkv.weight": wqkv}, config)
    prefix = "model.language_model.layers.0.self_attn."
    torch.testing.assert_close(x @ hf[prefix + "q_proj.weight"].T, q_ref)
    torch.testing.assert_close(x @ hf[prefix + "k_proj.weight"].T, k_ref)
    torch.testing.assert_close(x @ hf[prefix + "v_proj.weight"].T, v_ref)
    assert torch.equal(
        hf_to_released(hf, config)["language_model.model.layers.0.attention.wqkv.weight"], wqkv
    )


def test_vision_qkv_split_is_q_k_v_rows():
    config = parse_config(TINY_RELEASED_CONFIG)
    qkv = torch.arange(96 * 32, dtype=torch.float32).reshape(96, 32)
    hf = released_to_hf({"vision_model.encoder.layers.1.attn.qkv.weight": qkv}, config)
    prefix = "model.vision_tower.encoder.layer.1.attention."
    assert torch.equal(hf[prefix + "k_proj.weight"], qkv[32:64])
    assert torch.equal(hf[prefix + "v_proj.weight"], qkv[64:])


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pixel_shuffle_groups_2x2_neighbours(version):
    x = torch.randn(2, 4, 4, 3)
    out = pixel_shuffle(x, 0.5, version)
    assert out.shape == (2, 2, 2, 12)
    for a in range(2):
        for b in range(2):
            block = torch.cat(
                [
                    x[:, 2 * a, 2 * b],
                    x[:, 2 * a, 2 * b + 1],
                    x[:, 2 * a + 1, 2 * b],
                    x[:, 2 * a + 1, 2 * b + 1],
                ],
                -1,
            )
            got = out[:, a, b] if version == "v2" else out[:, b, a]  # v1 leaves the grid transposed
            torch.testing.assert_close(got, block)


def test_config_errors_name_the_key():
    bad = json.loads(json.dumps(TINY_RELEASED_CONFIG))
    bad["llm_config"]["architectures"] = ["GPT2LMHeadModel"]
    with pytest.raises(ValueError, match="architectures"):
        parse_config(bad)
    del bad["vision_config"]
    with pytest.raises(KeyError, match="vision_config"):
        parse_config(bad)
