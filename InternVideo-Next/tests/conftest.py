"""Tiny configurations shared by the InternVideo-Next tests."""

import pytest

TINY_BERT = {
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 6,
    "num_attention_heads": 2,
    "vocab_size": 8,
    "local_attention": 8,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "cls_token_id": 1,
    "sep_token_id": 2,
}
TINY_TRUNK = {
    "embed_dim": 32,
    "depth": 3,
    "num_heads": 2,
    "num_frames": 4,
    "img_size": 28,
    "clip_embed_dim": 16,
    "attn_pool_num_heads": 2,
}
TINY_TEACHER = {
    "hidden_size": 24,
    "intermediate_size": 32,
    "num_attention_heads": 2,
    "num_hidden_layers": 4,
    "patch_size": 8,
    "image_size": 16,
}
TINY_STAGE1 = {
    "clip_teacher_embed_dim": 24,
    "clip_teacher_final_dim": 24,
    "clip_return_layer": 2,
    "diffloss_d": 2,
    "diffloss_w": 32,
}


@pytest.fixture
def tiny():
    """The tiny configs (trunk, ModernBERT, SigLIP teacher, stage-1 heads)."""
    return {"trunk": TINY_TRUNK, "bert": TINY_BERT, "teacher": TINY_TEACHER, "stage1": TINY_STAGE1}


@pytest.fixture
def tiny_bert():
    from internvideo_next.models import build_semantic_decoder

    return build_semantic_decoder(keep_layers=5, **TINY_BERT)
