"""InternVideo2 CLIP models: released key layouts, text towers vs naive references, stage-1 run."""

import json
import math
import string
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaModel

from internvideo2.mm.build import build_model, build_tokenizer, load_checkpoint
from internvideo2.mm.config import load_config
from internvideo2.mm.engine import run_pretrain, run_retrieval
from internvideo2.models.internvideo2_clip import (
    InternVideo2_CLIP_small,
    LlamaTextEncoder,
    mobileclip_text,
)
from internvideo2.models.mobileclip import MobileCLIPTextConfig, MobileCLIPTextTransformer
from ivtools.train.setup import seed_everything
from ivtools.video.synthetic import motion_clip, write_video

DATA = Path(__file__).parent / "data"
MM_ROOT = Path(__file__).resolve().parents[1] / "multi_modality"
NO_FUSED = {"use_flash_attn": False, "use_fused_rmsnorm": False, "use_fused_mlp": False}


@pytest.mark.parametrize("size", ["S14", "B14", "L14"])
def test_clip_vision_encoders_match_released_keys(size):
    spec = json.loads((DATA / "internvideo2_multi_modality_vision_keys.json").read_text())
    expected = {k: tuple(v) for k, v in spec["models"][f"clip_vision_encoder_{size}"]["keys"].items()}
    model = timm.create_model(f"internvideo2_clip_vision_{size}", device="meta", **NO_FUSED)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


def test_clip_small_text_side_matches_mobileclip_b_layout():
    with torch.device("meta"):
        model = InternVideo2_CLIP_small(
            timm.create_model("internvideo2_clip_vision_B14", **NO_FUSED), mobileclip_text("mobileclip_b")
        )
    got = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("vision_encoder.")}
    expected = {
        "temp": (),
        "vision_align.0.weight": (768,),
        "vision_align.0.bias": (768,),
        "vision_align.1.weight": (512, 768),
        "vision_align.1.bias": (512,),
        "text_encoder.embedding_layer.weight": (49408, 512),
        "text_encoder.positional_embedding.pos_embed.pos_embed": (1, 1, 77, 512),
        "text_encoder.final_layer_norm.weight": (512,),
        "text_encoder.final_layer_norm.bias": (512,),
        "text_encoder.projection_layer": (512, 512),
    }
    for i in range(12):
        p = f"text_encoder.transformer.{i}"
        expected.update(
            {
                f"{p}.pre_norm_mha.0.weight": (512,),
                f"{p}.pre_norm_mha.0.bias": (512,),
                f"{p}.pre_norm_mha.1.qkv_proj.weight": (1536, 512),
                f"{p}.pre_norm_mha.1.qkv_proj.bias": (1536,),
                f"{p}.pre_norm_mha.1.out_proj.weight": (512, 512),
                f"{p}.pre_norm_mha.1.out_proj.bias": (512,),
                f"{p}.pre_norm_ffn.0.weight": (512,),
                f"{p}.pre_norm_ffn.0.bias": (512,),
                f"{p}.pre_norm_ffn.1.weight": (2048, 512),
                f"{p}.pre_norm_ffn.1.bias": (2048,),
                f"{p}.pre_norm_ffn.4.weight": (512, 2048),
                f"{p}.pre_norm_ffn.4.bias": (512,),
            }
        )
    assert got == expected


def naive_mobileclip(model: MobileCLIPTextTransformer, ids):
    """Pre-norm causal transformer written out: per-head softmax attention with an explicit mask."""
    heads = model.cfg.n_heads_per_layer
    x = model.embedding_layer(ids) + model.positional_embedding.pos_embed.pos_embed[0, 0, : ids.shape[1]]
    n = ids.shape[1]
    causal = torch.full((n, n), float("-inf")).triu(1)
    for layer in model.transformer:
        ln, attn = layer.pre_norm_mha[0], layer.pre_norm_mha[1]
        h = F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps)
        qkv = h @ attn.qkv_proj.weight.T + attn.qkv_proj.bias
        q, k, v = qkv.chunk(3, dim=-1)
        split = lambda t: t.view(t.shape[0], n, heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        w = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + causal).softmax(-1)
        out = (w @ v).transpose(1, 2).reshape(x.shape)
        x = x + out @ attn.out_proj.weight.T + attn.out_proj.bias
        ffn = layer.pre_norm_ffn
        h = F.layer_norm(x, (x.shape[-1],), ffn[0].weight, ffn[0].bias, ffn[0].eps)
        x = x + ffn[4](F.gelu(ffn[1](h)))
    fl = model.final_layer_norm
    x = F.layer_norm(x, (x.shape[-1],), fl.weight, fl.bias, fl.eps)
    eot = ids.argmax(-1)
    return torch.stack([x[b, eot[b]] for b in range(ids.shape[0])]) @ model.projection_layer


def test_mobileclip_text_matches_naive_reference():
    cfg = MobileCLIPTextConfig(
        context_length=9,
        vocab_size=40,
        dim=32,
        n_heads_per_layer=4,
        n_transformer_layers=2,
        projection_dim=16,
    )
    model = MobileCLIPTextTransformer(cfg).eval()
    ids = torch.tensor([[38, 5, 6, 39, 0, 0, 0, 0, 0], [38, 7, 8, 9, 10, 11, 39, 0, 0]])
    torch.testing.assert_close(model(ids), naive_mobileclip(model, ids), atol=1e-5, rtol=1e-5)
    with pytest.raises(NotImplementedError, match="mct"):
        MobileCLIPTextTransformer(MobileCLIPTextConfig(model_name="mct"))


def test_llama_text_encoder_pools_last_token_and_applies_lora():
    cfg = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=100,
    )
    enc = LlamaTextEncoder(cfg, clip_embed_dim=8).eval()
    ref = LlamaModel(cfg).eval()
    own = enc.transformer.state_dict()
    ref.load_state_dict({k: own[k] for k in ref.state_dict()}, strict=True)
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    hidden = ref(input_ids=ids, attention_mask=(ids > 0).long()).last_hidden_state
    expected = torch.stack([hidden[0, 2], hidden[1, 1]]) @ enc.text_projection
    torch.testing.assert_close(enc(ids), expected, atol=1e-5, rtol=1e-5)  # LoRA B starts at zero
    q = enc.transformer.layers[0].self_attn.q_proj
    torch.nn.init.normal_(q.lora_B["default"].weight)
    x = torch.randn(3, 32)
    lora = x @ q.lora_A["default"].weight.T @ q.lora_B["default"].weight.T
    torch.testing.assert_close(q(x), x @ q.weight.T + 2.0 * lora)
    assert "layers.0.self_attn.q_proj.lora_A.default.weight" in {
        k.removeprefix("transformer.") for k in enc.state_dict()
    }


def test_clip_vtc_loss_and_freezing():
    vision = timm.create_model(
        "internvideo2_clip_vision_S14",
        img_size=28,
        num_frames=2,
        depth=1,
        embed_dim=32,
        num_heads=2,
        attn_pool_num_heads=2,
        clip_embed_dim=16,
        **NO_FUSED,
    )
    text = mobileclip_text(
        context_length=8, vocab_size=30, dim=16, n_heads_per_layer=2, n_transformer_layers=1, projection_dim=8
    )
    model = InternVideo2_CLIP_small(vision, text, align_dim=8, temp=0.05, temp_min=0.05)
    trainable = {
        n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("vision_encoder") else "")
        for n, p in model.named_parameters()
        if p.requires_grad
    }
    assert trainable == {"temp", "vision_align", "vision_encoder.clip_projector"}
    video, ids = torch.randn(3, 2, 3, 28, 28), torch.tensor([[28, 3, 29, 0], [28, 4, 5, 29], [28, 29, 0, 0]])
    loss = model(video, ids, (ids > 0).long(), torch.arange(3))["loss_vtc"]
    v = F.normalize(model.encode_vision(video), dim=-1)
    t = F.normalize(model.encode_text(ids, (ids > 0).long()), dim=-1)
    logits = v @ t.T / 0.05
    expected = (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.T, torch.arange(3))) / 2
    torch.testing.assert_close(loss, expected)


CLIP_CONFIG = """
num_frames = 2
train_file = dict(anno_path="{root}/train.json", data_root="{root}", media_type="video")
test_file = dict(tiny=dict(anno_path="{root}/train.json", data_root="{root}", media_type="video"))
inputs = dict(
    image_res=28,
    video_input=dict(num_frames="${{num_frames}}", num_frames_test="${{num_frames}}"),
    max_txt_l=dict(video=16),
    batch_size=dict(video=2),
    batch_size_test=dict(video=2),
)
model = dict(
    model_cls="InternVideo2_CLIP_small",
    vision_encoder=dict(name="custom", align_dim=8,
                        arch=dict(img_size=28, num_frames="${{num_frames}}", depth=1, embed_dim=32, num_heads=2,
                                  attn_pool_num_heads=2, clip_embed_dim=16, use_flash_attn=False,
                                  use_fused_rmsnorm=False, use_fused_mlp=False)),
    text_encoder=dict(name="mobileclip_b", tokenizer_path="{root}/clip_tok",
                      arch=dict(context_length=16, vocab_size=74, dim=16, n_heads_per_layer=2,
                                n_transformer_layers=1, projection_dim=8)),
    temp=0.01,
    temp_min=0.01,
)
optimizer = dict(opt="adamw", lr=1e-2, weight_decay=0.0, max_grad_norm=-1)
scheduler = dict(epochs=1)
output_dir = "{root}/out"
pretrained_path = ""
num_workers = 0
max_iters_per_epoch = 2
device = "cpu"
seed = 0
"""


@pytest.fixture(scope="module")
def clip_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip_corpus")
    rng = np.random.default_rng(1)
    entries = []
    for direction in ("left", "right", "up", "down"):
        write_video(root / f"{direction}.mp4", motion_clip(direction, num_frames=8, size=64, rng=rng))
        entries.append({"video": f"{direction}.mp4", "caption": f"a square moving {direction}"})
    (root / "train.json").write_text(json.dumps(entries))
    tok = root / "clip_tok"
    tok.mkdir()
    chars = list(string.ascii_lowercase + string.digits)
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": 72, "<|endoftext|>": 73})  # end-of-text = the largest id
    (tok / "vocab.json").write_text(json.dumps(vocab))
    (tok / "merges.txt").write_text("#version: 0.2\n")
    (tok / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "CLIPTokenizer", "pad_token": "<|endoftext|>"})
    )
    (root / "config.py").write_text(CLIP_CONFIG.format(root=root))
    return root


def test_stage1_clip_two_iterations_then_zero_shot(clip_corpus):
    root = clip_corpus
    cfg = load_config(root / "config.py", root=MM_ROOT)
    history = run_pretrain(cfg)
    assert np.isfinite(history[0]["train_loss"])
    ckpt = root / "out" / "checkpoint-0.pth"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    seed_everything(0)  # as run_pretrain did before building: the same initial weights
    fresh = build_model(cfg, build_tokenizer(cfg))
    # Only the open parts trained: the frozen towers are byte-identical to their initial copies.
    trained = [k for k in saved if not torch.equal(saved[k], fresh.state_dict()[k])]
    assert (
        "vision_align.1.weight" in trained and "vision_encoder.clip_projector.cross_attn.q.weight" in trained
    )
    assert all(k.startswith(("temp", "vision_align", "vision_encoder.clip_projector")) for k in trained)
    assert load_checkpoint(fresh, ckpt) == ([], [])
    results = run_retrieval(load_config(root / "config.py", [f"pretrained_path={ckpt}"], root=MM_ROOT))
    assert results["tiny_itc/v2t_r5"] == 100.0 and "tiny_itm/v2t_r1" not in results
