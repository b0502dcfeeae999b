"""InternVideo2_CLIP's LLaMA text tower from the released key layouts.

The state dicts here are written from the original's naming rules, not from this package's models:

* InternVL-C's ``internvl_c_13b_224px.pth`` (the original's ``text_ckpt_path``): clip_benchmark's
  ``InternVL_C`` holds a plain ``LlamaForCausalLM(config).model`` as ``transformer`` and a
  ``text_projection`` (width, 768), next to InternViT-6B (``patch_embed``, ``blocks``,
  ``clip_projector``, ...) and ``logit_scale``; saved with transformers 4.28, whose LLaMA layers
  keep a persistent ``self_attn.rotary_emb.inv_freq`` buffer.
* A whole InternVideo2_CLIP checkpoint (``{"model": state_dict}``) of the original's ``LLaMA`` class:
  ``get_peft_model`` (r 16, alpha 32, peft's LLaMA targets ``q_proj``/``v_proj``) then
  ``text_encoder.transformer = model.base_model.model.model``; with peft >= 0.7 an adapted layer is
  ``base_layer.weight`` + ``lora_A.default.weight`` + ``lora_B.default.weight``.

The forward is checked against an independent transformers ``LlamaModel`` holding the same weights
(LoRA merged into the base weight), so a tensor landing in the wrong parameter fails.
"""

import pytest
import torch
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaModel

from internvideo2.mm.build import load_checkpoint, load_pretrained_parts
from internvideo2.models import CheckpointMismatchError
from internvideo2.models.internvideo2_clip import (
    InternVideo2_CLIP,
    InternVideo2CLIPVision,
    LlamaTextEncoder,
    load_internvl_text_weights,
)

CFG = LlamaConfig(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
    vocab_size=100,
)  # fmt: skip
EMBED = 16
LORA_RANK, LORA_SCALE = 16, 32 / 16
ROPE_BASE = 10000.0  # LLaMA's default; chinese_alpaca_lora_7b's config.json sets no other
IDS = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [3, 4, 5, 6]])


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape) * 0.2


def rope_buffer(base: float = ROPE_BASE) -> torch.Tensor:
    head = CFG.hidden_size // CFG.num_attention_heads
    return 1.0 / base ** (torch.arange(0, head, 2).float() / head)


def llama_layer(prefix: str, lora: bool) -> dict[str, torch.Tensor]:
    """One LLaMA decoder layer as transformers 4.28 (+ peft >= 0.7 when ``lora``) names it."""
    h, f = CFG.hidden_size, CFG.intermediate_size
    out = {
        f"{prefix}input_layernorm.weight": 1 + _randn(h),
        f"{prefix}post_attention_layernorm.weight": 1 + _randn(h),
        f"{prefix}mlp.gate_proj.weight": _randn(f, h),
        f"{prefix}mlp.up_proj.weight": _randn(f, h),
        f"{prefix}mlp.down_proj.weight": _randn(h, f),
        f"{prefix}self_attn.k_proj.weight": _randn(h, h),
        f"{prefix}self_attn.o_proj.weight": _randn(h, h),
        f"{prefix}self_attn.rotary_emb.inv_freq": rope_buffer(),
    }
    for name in ("q_proj", "v_proj"):
        proj = f"{prefix}self_attn.{name}."
        if lora:
            out[proj + "base_layer.weight"] = _randn(h, h)
            out[proj + "lora_A.default.weight"] = _randn(LORA_RANK, h)
            out[proj + "lora_B.default.weight"] = _randn(h, LORA_RANK)
        else:
            out[proj + "weight"] = _randn(h, h)
    return out


def released_text_tower(prefix: str, lora: bool) -> dict[str, torch.Tensor]:
    out = {
        f"{prefix}transformer.embed_tokens.weight": _randn(CFG.vocab_size, CFG.hidden_size),
        f"{prefix}transformer.norm.weight": 1 + _randn(CFG.hidden_size),
        f"{prefix}text_projection": _randn(CFG.hidden_size, EMBED),
    }
    for i in range(CFG.num_hidden_layers):
        out.update(llama_layer(f"{prefix}transformer.layers.{i}.", lora))
    return out


def internvl_c_file() -> dict[str, torch.Tensor]:
    """The text side of InternVL-C's file plus some of its InternViT-6B keys and ``logit_scale``."""
    vision = {"patch_embed.proj.weight": _randn(8, 3, 2, 2), "blocks.0.attn.qkv.weight": _randn(24, 8)}
    return {**released_text_tower("", lora=False), **vision, "logit_scale": torch.tensor(2.66)}


def reference_text_features(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """Independent path: a plain ``LlamaModel`` with LoRA merged (W + scale B A), last real token."""
    text = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    plain = {}
    for key, value in text.items():
        if ".lora_" in key or key.endswith("inv_freq") or not key.startswith("transformer."):
            continue
        if key.endswith("base_layer.weight"):
            proj = key.removesuffix("base_layer.weight")
            delta = text[proj + "lora_B.default.weight"] @ text[proj + "lora_A.default.weight"]
            key, value = proj + "weight", value + LORA_SCALE * delta
        plain[key.removeprefix("transformer.")] = value
    ref = LlamaModel(CFG).eval()
    ref.load_state_dict(plain, strict=True)
    with torch.no_grad():
        hidden = ref(input_ids=IDS, attention_mask=(IDS > 0).long()).last_hidden_state
    last = hidden[torch.arange(len(IDS)), (IDS > 0).sum(1) - 1]
    return last @ text["text_projection"]


def tiny_clip() -> InternVideo2_CLIP:
    vision = InternVideo2CLIPVision(
        img_size=28, num_frames=2, depth=1, embed_dim=32, num_heads=2, attn_pool_num_heads=2,
        clip_embed_dim=EMBED, use_flash_attn=False, use_fused_rmsnorm=False, use_fused_mlp=False,
    )  # fmt: skip
    return InternVideo2_CLIP(vision, LlamaTextEncoder(CFG, clip_embed_dim=EMBED)).eval()


def test_internvl_c_text_weights_load_into_the_text_tower():
    torch.manual_seed(0)
    released = internvl_c_file()
    enc = LlamaTextEncoder(CFG, clip_embed_dim=EMBED).eval()
    kept = load_internvl_text_weights(enc, {"module": released})
    # InternVL-C has no LoRA: the 2 adapters x 2 matrices x 2 layers keep B = 0 (no effect).
    assert len(kept) == 8 and all(".lora_" in k for k in kept)
    with torch.no_grad():
        torch.testing.assert_close(enc(IDS), reference_text_features(released, ""), atol=1e-5, rtol=1e-5)


def test_text_ckpt_path_starts_the_clip_text_tower(tmp_path):
    torch.manual_seed(0)
    released = internvl_c_file()
    torch.save(released, tmp_path / "internvl_c.pth")
    model = tiny_clip()
    load_pretrained_parts(
        model, OmegaConf.create({"model": {"text_ckpt_path": str(tmp_path / "internvl_c.pth")}})
    )
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode_text(IDS), reference_text_features(released, ""), atol=1e-5, rtol=1e-5
        )


def test_internvl_c_text_weights_name_a_wrong_key():
    torch.manual_seed(0)
    released = internvl_c_file()
    released["transformer.layers.1.mlp.gate.weight"] = released.pop(
        "transformer.layers.1.mlp.gate_proj.weight"
    )
    with pytest.raises(CheckpointMismatchError) as err:
        load_internvl_text_weights(LlamaTextEncoder(CFG, clip_embed_dim=EMBED), released)
    assert "missing (1): transformer.layers.1.mlp.gate_proj.weight" in str(err.value)
    assert "unexpected (1): transformer.layers.1.mlp.gate.weight" in str(err.value)


def test_internvl_c_text_weights_reject_another_rope_base():
    torch.manual_seed(0)
    released = internvl_c_file()
    released["transformer.layers.0.self_attn.rotary_emb.inv_freq"] = rope_buffer(500000.0)
    with pytest.raises(
        CheckpointMismatchError, match=r"layers\.0\.self_attn\.rotary_emb\.inv_freq.*rope_theta"
    ):
        load_internvl_text_weights(LlamaTextEncoder(CFG, clip_embed_dim=EMBED), released)


def whole_clip_checkpoint(model: InternVideo2_CLIP) -> dict[str, torch.Tensor]:
    # The vision side's released layout is checked elsewhere (test_clip_vision_encoders_match_released_keys).
    vision = {k: v for k, v in model.state_dict().items() if k.startswith("vision_encoder.")}
    return {**vision, **released_text_tower("text_encoder.", lora=True), "temp": torch.tensor(0.01)}


def test_whole_clip_checkpoint_with_peft_lora_loads_strictly(tmp_path):
    torch.manual_seed(0)
    model = tiny_clip()
    released = whole_clip_checkpoint(model)
    torch.save({"model": released}, tmp_path / "clip.pth")
    assert load_checkpoint(model, tmp_path / "clip.pth", strict=True) == ([], [])
    expected = reference_text_features(released, "text_encoder.")
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(IDS), expected, atol=1e-5, rtol=1e-5)


def test_whole_clip_checkpoint_names_a_misplaced_lora_key(tmp_path):
    torch.manual_seed(0)
    model = tiny_clip()
    released = whole_clip_checkpoint(model)
    key = "text_encoder.transformer.layers.0.self_attn.v_proj.lora_A.default.weight"
    released[key.replace("v_proj", "k_proj")] = released.pop(key)
    torch.save({"model": released}, tmp_path / "clip.pth")
    with pytest.raises(CheckpointMismatchError) as err:
        load_checkpoint(model, tmp_path / "clip.pth", strict=True)
    assert f"missing (1): {key}" in str(err.value)
    assert "unexpected (1): " + key.replace("v_proj", "k_proj") in str(err.value)
