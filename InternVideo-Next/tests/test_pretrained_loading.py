"""The SigLIP teacher and the ModernBERT decoder load from local folders in the released layout.

Tiny models of the released classes are saved the way the checkpoints ship -- a full ``SiglipModel``
(vision + text towers, sharded safetensors) like ``siglip2-giant-opt-patch16-256``, and a
``ModernBertForMaskedLM`` with ModernBERT-large's transformers-4.47 ``config.json`` -- then loaded
through the project's own builders and compared with the Hugging Face models' own computations.
"""

import argparse
import json
import re

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import (
    ModernBertConfig,
    ModernBertForMaskedLM,
    Siglip2Config,
    Siglip2Model,
    SiglipConfig,
    SiglipModel,
)

from internvideo_next.configs import add_pretrain_args
from internvideo_next.engine import run_stage1
from internvideo_next.models import build_semantic_decoder, build_siglip_teacher, run_semantic_decoder
from internvideo_next.models.teacher import IMAGENET_MEAN, IMAGENET_STD

TINY_TEXT_TOWER = {
    "hidden_size": 16,
    "intermediate_size": 16,
    "num_attention_heads": 2,
    "num_hidden_layers": 1,
    "vocab_size": 32,
    "max_position_embeddings": 8,
}
# ModernBERT-large's released config.json (written by transformers 4.47): rope thetas and the
# global/local layer pattern as separate keys, no ``layer_types`` / ``rope_parameters``.
MODERNBERT_RELEASED_CONFIG = {
    "architectures": ["ModernBertForMaskedLM"],
    "model_type": "modernbert",
    "global_attn_every_n_layers": 3,
    "global_rope_theta": 160000.0,
    "local_rope_theta": 10000.0,
    "norm_bias": False,
    "attention_bias": False,
    "mlp_bias": False,
    "hidden_activation": "gelu",
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "transformers_version": "4.47.0.dev0",
}
TINY_MODERNBERT = {
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 7,  # keeping 5 drops 2, as 28 -> 5 drops 23 for ModernBERT-large
    "num_attention_heads": 2,
    "vocab_size": 40,
    "local_attention": 8,  # window +-4: shorter than the test sequences
    "max_position_embeddings": 64,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "cls_token_id": 1,
    "sep_token_id": 2,
}


def save_released_siglip(folder, tiny) -> SiglipModel:
    """A full SigLIP model (``model_type: siglip``, as the fixed-resolution SigLIP2 releases), sharded."""
    torch.manual_seed(0)
    model = SiglipModel(SiglipConfig(vision_config=tiny["teacher"], text_config=TINY_TEXT_TOWER)).eval()
    model.save_pretrained(folder, max_shard_size="20KB")
    return model


def save_released_modernbert(folder, dtype=torch.float32) -> ModernBertForMaskedLM:
    """A ``ModernBertForMaskedLM`` folder whose config.json has the released (4.47) keys."""
    torch.manual_seed(0)
    config = ModernBertConfig(
        **TINY_MODERNBERT,
        layer_types=["full_attention" if i % 3 == 0 else "sliding_attention" for i in range(7)],
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 160000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
    )
    model = ModernBertForMaskedLM(config).eval()
    model.to(dtype).save_pretrained(folder)
    stored = {"torch_dtype": str(dtype).removeprefix("torch.")}
    (folder / "config.json").write_text(
        json.dumps({**MODERNBERT_RELEASED_CONFIG, **TINY_MODERNBERT, **stored})
    )
    return model


def siglip_pixels(video: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised ``(B, C, T, H, W)`` -> SigLIP's ``(x - 0.5) / 0.5`` frames ``(B*T, C, H, W)``."""
    b, c, t, h, w = video.shape
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    unit = video * std + mean
    return ((unit - 0.5) / 0.5).transpose(1, 2).reshape(b * t, c, h, w)


def probe_attention(head, hidden: torch.Tensor) -> torch.Tensor:
    """The pooling head's probe attention over the tokens, averaged over heads, from its raw weights."""
    heads, width = head.attention.num_heads, hidden.shape[-1]
    w_q, w_k, _ = head.attention.in_proj_weight.chunk(3)
    b_q, b_k, _ = head.attention.in_proj_bias.chunk(3)
    q = F.linear(head.probe, w_q, b_q).view(1, heads, 1, -1)
    k = F.linear(hidden, w_k, b_k).view(hidden.shape[0], -1, heads, width // heads).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) / (width // heads) ** 0.5
    return scores.softmax(-1).mean(1)[:, 0]


@pytest.mark.parametrize("frame_size", [16, 24], ids=["native_256px_grid", "interpolated_pos_embed"])
def test_teacher_from_released_siglip_folder_matches_hf_vision_tower(tmp_path, tiny, frame_size):
    folder = tmp_path / "siglip2-giant-opt-patch16-256"
    hf = save_released_siglip(folder, tiny).vision_model
    assert len(list(folder.glob("model-*.safetensors"))) > 1  # sharded, as the 1B release

    teacher = build_siglip_teacher(folder, return_layer=2, return_interval=1)
    assert teacher.return_layers == [2, 3]  # depth 4: the inputs of the last two layers
    torch.manual_seed(1)
    video = torch.randn(2, 3, 2, frame_size, frame_size)
    grid = frame_size // tiny["teacher"]["patch_size"]
    out = teacher(video, (grid, grid))

    pixels = siglip_pixels(video)
    with torch.no_grad():
        ref = hf(pixels, interpolate_pos_encoding=frame_size != 16, output_hidden_states=True)
    # hidden_states[i] enters layer i: the original collects a layer's input before running it
    want_middle = F.normalize(torch.stack([ref.hidden_states[2], ref.hidden_states[3]]), dim=-1)
    torch.testing.assert_close(out.middle, want_middle)
    torch.testing.assert_close(out.final, F.normalize(ref.pooler_output, dim=-1))
    with torch.no_grad():
        torch.testing.assert_close(out.attn, probe_attention(hf.head, ref.last_hidden_state))
    assert out.attn.shape == (4, grid * grid)


def test_teacher_folder_errors_name_the_path(tmp_path, tiny):
    missing = tmp_path / "no-such-siglip"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        build_siglip_teacher(missing)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(empty))} has no config.json"):
        build_siglip_teacher(empty)

    bert = tmp_path / "ModernBERT-large"
    save_released_modernbert(bert)
    with pytest.raises(ValueError, match=f"{re.escape(str(bert))} holds a 'modernbert' model"):
        build_siglip_teacher(bert)

    # NaFlex SigLIP2 (model_type siglip2): a linear patch embedding over variable grids
    naflex = tmp_path / "siglip2-naflex"
    vision = {k: v for k, v in tiny["teacher"].items() if k != "image_size"}
    Siglip2Model(Siglip2Config(vision_config=vision, text_config=TINY_TEXT_TOWER)).save_pretrained(naflex)
    with pytest.raises(ValueError, match=f"{re.escape(str(naflex))} holds a 'siglip2' model"):
        build_siglip_teacher(naflex)


def test_teacher_checkpoint_without_head_weights_is_refused(tmp_path, tiny):
    folder = tmp_path / "siglip-truncated"
    model = SiglipModel(SiglipConfig(vision_config=tiny["teacher"], text_config=TINY_TEXT_TOWER))
    model.config.save_pretrained(folder)
    state = {k: v for k, v in model.state_dict().items() if ".head." not in k}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(folder))}: \d+ SigLIP teacher weights .* stay random.*head"
    ):
        build_siglip_teacher(folder)


def layer_io(bert, embeds: torch.Tensor, first: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden states entering layer ``first`` and leaving the last layer of a full HF forward."""
    seen = {}

    def keep(name):
        def hook(_module, _args, output):
            seen[name] = output[0] if isinstance(output, tuple) else output

        return hook

    handles = [
        bert.layers[first - 1].register_forward_hook(keep("in")),
        bert.layers[-1].register_forward_hook(keep("out")),
    ]
    with torch.no_grad():
        bert(inputs_embeds=embeds)
    for handle in handles:
        handle.remove()
    return seen["in"], seen["out"]


def test_semantic_decoder_runs_the_last_five_released_layers_as_hf_does(tmp_path):
    folder = tmp_path / "ModernBERT-large"
    hf = save_released_modernbert(folder).model
    decoder = build_semantic_decoder(folder, keep_layers=5)

    # layers 2..6 of 7 keep their global/local pattern (every third global, counted over all 7)
    assert [layer.attention_type for layer in decoder.layers] == [
        "sliding_attention", "full_attention", "sliding_attention", "sliding_attention", "full_attention",
    ]  # fmt: skip
    for kept, original in zip(decoder.layers, hf.layers[2:], strict=True):
        assert torch.equal(kept.attn.Wqkv.weight, original.attn.Wqkv.weight)

    torch.manual_seed(2)
    embeds = torch.randn(2, 21, 32)  # longer than the +-4 sliding window
    entering, leaving = layer_io(hf, embeds, first=2)
    with torch.no_grad():
        torch.testing.assert_close(run_semantic_decoder(decoder, entering), leaving)


def test_bf16_modernbert_copy_loads_as_float32_weights(tmp_path):
    folder = tmp_path / "ModernBERT-large-bf16"
    saved = save_released_modernbert(folder, dtype=torch.bfloat16).model
    decoder = build_semantic_decoder(folder, keep_layers=5)
    assert {p.dtype for p in decoder.parameters()} == {torch.float32}
    assert torch.equal(decoder.layers[-1].mlp.Wo.weight, saved.layers[-1].mlp.Wo.weight.float())


def test_modernbert_folder_errors_name_the_path(tmp_path, tiny):
    missing = tmp_path / "no-such-bert"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        build_semantic_decoder(missing)

    siglip = tmp_path / "siglip"
    save_released_siglip(siglip, tiny)
    with pytest.raises(ValueError, match=f"{re.escape(str(siglip))} holds a 'siglip' model"):
        build_semantic_decoder(siglip)

    truncated = tmp_path / "ModernBERT-truncated"
    save_released_modernbert(truncated)
    state = ModernBertForMaskedLM.from_pretrained(truncated).state_dict()
    kept = {k: v for k, v in state.items() if not k.startswith("model.layers.6.") and k != "decoder.weight"}
    (truncated / "model.safetensors").unlink()
    save_file(kept, truncated / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(truncated))}: \d+ ModernBERT weights .*'layers\.6\."
    ):
        build_semantic_decoder(truncated)


def test_stage1_run_trains_from_the_local_folders(motion_dataset, tmp_path, tiny):
    """``--clip_teacher_path`` / ``--bert_path`` reach the loaders; unused ModernBERT weights keep their saved values."""
    teacher_dir, bert_dir = tmp_path / "siglip2", tmp_path / "ModernBERT-large"
    save_released_siglip(teacher_dir, tiny)
    bert = save_released_modernbert(bert_dir).model
    data = motion_dataset["train"]
    trunk = {k: v for k, v in tiny["trunk"].items() if k not in ("num_frames", "img_size")}
    argv = [
        "--data_path", str(data), "--prefix", str(data.parent), "--output_dir", str(tmp_path / "out"),
        "--num_frames", "4", "--input_size", "28", "--batch_size", "2", "--epochs", "1",
        "--max_updates_per_epoch", "1", "--num_workers", "0", "--warmup_epochs", "0", "--device", "cpu",
        "--model_kwargs", json.dumps(trunk), "--clip_teacher_path", str(teacher_dir), "--bert_path", str(bert_dir),
        "--clip_teacher_embed_dim", "24", "--clip_teacher_final_dim", "24", "--clip_return_layer", "2",
        "--diffloss_d", "2", "--diffloss_w", "32", "--mask_type", "attention",
    ]  # fmt: skip
    history = run_stage1(add_pretrain_args(argparse.ArgumentParser(), 1).parse_args(argv))
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))
    state = torch.load(tmp_path / "out" / "checkpoint-0.pth", map_location="cpu", weights_only=False)["model"]
    # the token embeddings never run (only the layers do), so they are exactly the folder's
    assert torch.equal(
        state["bert_decoder.embeddings.tok_embeddings.weight"], bert.embeddings.tok_embeddings.weight
    )
    assert (
        len([k for k in state if k.startswith("bert_decoder.layers.") and k.endswith("attn.Wqkv.weight")])
        == 5
    )
