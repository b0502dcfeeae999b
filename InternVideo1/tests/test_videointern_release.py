"""The released InternVideo-MM layout (``clip.*`` with a ``vit_only_global`` vision tower): a state
dict written out by hand from the original classes loads strictly, every tensor in its place."""

import pytest
import timm
import torch

from internvideo1.downstream.encoders import build_video_text_encoder
from internvideo1.models import videointern as vi

# A tiny configuration: vision width 32 (2 blocks, the decoder after block 1), patch 16 on 32 px,
# 4 frames; text width 16 (1 block), context 6, vocab 50; embedding 8.
W, P, GRID, TW, CTX, VOCAB, EMBED = 32, 16, 2, 16, 6, 50, 8
TINY = {
    "vision": {
        "input_resolution": 32,
        "patch_size": P,
        "width": W,
        "layers": 2,
        "heads": 4,
        "t_size": 4,
        "return_list": [1],
        "n_layers": 1,
        "n_dim": W,
        "n_head": 4,
        "mlp_dropout": [0.5],
    },
    "text": {"context_length": CTX, "vocab_size": VOCAB, "width": TW, "heads": 2, "layers": 1},
    "embed_dim": EMBED,
}


def _block(prefix: str, width: int, hidden: int) -> dict:
    """Keys of CLIP's ResidualAttentionBlock / UniFormerV2's Extractor (nn.MultiheadAttention + MLP)."""
    return {
        f"{prefix}attn.in_proj_weight": (3 * width, width),
        f"{prefix}attn.in_proj_bias": (3 * width,),
        f"{prefix}attn.out_proj.weight": (width, width),
        f"{prefix}attn.out_proj.bias": (width,),
        f"{prefix}ln_1.weight": (width,),
        f"{prefix}ln_1.bias": (width,),
        f"{prefix}mlp.c_fc.weight": (hidden, width),
        f"{prefix}mlp.c_fc.bias": (hidden,),
        f"{prefix}mlp.c_proj.weight": (width, hidden),
        f"{prefix}mlp.c_proj.bias": (width,),
        f"{prefix}ln_2.weight": (width,),
        f"{prefix}ln_2.bias": (width,),
    }


def released_layout() -> dict[str, tuple[int, ...]]:
    """The original's ``VideoIntern`` keys (``clip_utils/model.py`` + ``clip_vit_only_global.py``)."""
    keys = {
        "clip.visual.class_embedding": (W,),
        "clip.visual.positional_embedding": (GRID * GRID + 1, W),
        "clip.visual.conv1.weight": (W, 3, 1, P, P),
        "clip.visual.ln_pre.weight": (W,),
        "clip.visual.ln_pre.bias": (W,),
        "clip.visual.transformer.temporal_cls_token": (1, 1, W),
        "clip.visual.transformer.dpe.0.weight": (W, 1, 3, 3, 3),
        "clip.visual.transformer.dpe.0.bias": (W,),
        "clip.visual.transformer.dec.0.ln_3.weight": (W,),
        "clip.visual.transformer.dec.0.ln_3.bias": (W,),
        "clip.visual.transformer.balance": (W,),
        "clip.visual_ln_post.weight": (W,),
        "clip.visual_ln_post.bias": (W,),
        "clip.visual_proj": (W, EMBED),
        "clip.token_embedding.weight": (VOCAB, TW),
        "clip.positional_embedding": (CTX, TW),
        "clip.ln_final.weight": (TW,),
        "clip.ln_final.bias": (TW,),
        "clip.text_projection": (TW, EMBED),
        "clip.logit_scale": (),
        "clip.text_mask_embedding": (1, 1, TW),
    }
    for i in range(2):
        keys.update(_block(f"clip.visual.transformer.resblocks.{i}.", W, 4 * W))
    keys.update(_block("clip.visual.transformer.dec.0.", W, 4 * W))
    keys.update(_block("clip.transformer.resblocks.0.", TW, 4 * TW))
    return keys


def test_released_layout_loads_strictly(tmp_path):
    layout = released_layout()
    released = {k: torch.randn(shape) for k, shape in layout.items()}
    path = tmp_path / "InternVideo-MM-B-16.ckpt"
    # A Lightning checkpoint: the weights under "state_dict", next to other entries.
    torch.save({"state_dict": released, "epoch": 3}, path)
    model = timm.create_model("videointern_b16", **TINY)
    result = vi.load_videointern_checkpoint(model, path)
    assert not result.missing_keys and not result.unexpected_keys
    state = model.state_dict()
    assert len(state) == len(layout)
    torch.testing.assert_close(model.visual.conv1.weight, released["clip.visual.conv1.weight"])
    torch.testing.assert_close(
        model.visual.transformer.dec[0].mlp.c_proj.weight,
        released["clip.visual.transformer.dec.0.mlp.c_proj.weight"],
    )
    torch.testing.assert_close(
        model.text_encoder.transformer.resblocks[0].attn.in_proj_weight,
        released["clip.transformer.resblocks.0.attn.in_proj_weight"],
    )
    torch.testing.assert_close(model.text_encoder.text_mask_embedding, released["clip.text_mask_embedding"])
    torch.testing.assert_close(model.logit_scale, released["clip.logit_scale"])
    # The embeddings (eval mode: the decoder MLP has dropout): the fused video feature through
    # visual_ln_post and visual_proj; the text through CLIP's tower.
    model.eval()
    video = torch.randn(2, 3, 4, 32, 32)
    fused = model.visual.forward_features(video)
    expected = (
        torch.nn.functional.layer_norm(
            fused, (W,), released["clip.visual_ln_post.weight"], released["clip.visual_ln_post.bias"]
        )
        @ released["clip.visual_proj"]
    )
    torch.testing.assert_close(model.encode_video(video), expected)
    assert model.encode_text(torch.tensor([[48, 3, 49, 0, 0, 0]])).shape == (1, EMBED)


def test_layout_errors_and_encoder_registry(tmp_path):
    torch.save({"state_dict": {"clip.logit_scale": torch.tensor(1.0)}}, tmp_path / "bad.ckpt")
    model = timm.create_model("videointern_b16", **TINY)
    with pytest.raises(KeyError, match="not an InternVideo-MM checkpoint"):
        vi.load_videointern_checkpoint(model, tmp_path / "bad.ckpt")
    with torch.device("meta"):
        full = build_video_text_encoder("videointern_l14", num_frames=8)
    assert (full.context_length, full.num_frames, full.visual_proj.shape) == (77, 8, (1024, 768))
    assert full.visual.transformer.return_list == [20, 21, 22, 23]
