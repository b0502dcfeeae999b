"""Model families of InternVideo1's pretraining; importing this registers them in timm.

Public API (stable; the downstream and multi-modality code builds on it)
-----------------------------------------------------------------------

VideoMAE (:mod:`.videomae`)
    ``timm.create_model("pretrain_mae_base_patch16_224", decoder_depth=4)`` (alias
    ``pretrain_videomae_base_patch16_224``) → :class:`PretrainVisionTransformer`,
    ``model(video, mask)`` with ``video`` ``(B, 3, T, H, W)`` normalised and ``mask`` bool ``(B, N)``
    (True = hidden) → pixel predictions ``(B, N_masked, 3 * tubelet * patch**2)``.
    ``timm.create_model("videomae_vit_base_patch16_224", num_classes=400, all_frames=16)`` (the
    original's ``vit_base_patch16_224``; :func:`resolve_finetune_name` maps the name) →
    :class:`VisionTransformer` with ``forward_features(video) -> (B, D)`` (mean-pooled + ``fc_norm``),
    ``forward_tokens(video) -> (B, N, D)`` and ``forward(video) -> logits``.
    Masks: ``ivtools.data.masking`` (``build_mask_generator("tube", window, ratio)``).
    Checkpoints: :func:`load_videomae_checkpoint`.

ViCLIP (:mod:`.viclip`)
    ``timm.create_model("viclip_l14")`` / ``"viclip_b16"`` (8 frames, text context 32) → :class:`ViCLIP`:
    ``encode_video(video (B, 3, T, H, W)) -> (B, D)``, ``encode_text(ids (B, L)) -> (B, D)``
    (unnormalised; ``ViCLIP.similarity`` gives cosines), ``forward(video, ids, idx=None) ->
    {"loss_vtc"}``. Ids come from :class:`internvideo1.tokenizer.ClipBPETokenizer`
    (``tokenizer(texts, model.context_length) -> (ids, padding_mask)``).
    Checkpoints: :func:`load_viclip_checkpoint`. Vision tower alone: ``clip_joint_b16`` / ``clip_joint_l14``.

UniFormerV2 (:mod:`.uniformerv2`)
    ``timm.create_model("uniformerv2_b16", num_classes=400, t_size=8)`` → :class:`UniFormerV2`,
    ``forward(video) -> logits``, ``forward_features(video) -> (B, n_dim)``.
    Checkpoints: :func:`load_uniformerv2_checkpoint` (released ``backbone.*`` layout);
    CLIP image weights: :func:`load_clip_visual_weights`.

Multi-modality model (:mod:`.multimodal`)
    ``timm.create_model("internvideo_mm_b16")`` / ``"internvideo_mm_l14"`` →
    :class:`InternVideoMultiModal` (``encode_video``, ``encode_text``, ``encode_fused``, ``forward``
    → losses), the trainable model (its weights were not released).

Released InternVideo-MM video-text model (:mod:`.videointern`)
    ``timm.create_model("videointern_b16")`` / ``"videointern_l14"`` → :class:`VideoIntern`
    (UniFormerV2 ``vit_only_global`` vision tower + CLIP text tower; ``encode_video``,
    ``encode_text``); ``InternVideo-MM-{B-16,L-14}.ckpt`` load with :func:`load_videointern_checkpoint`.

CLIP pieces shared with the multi-modality model live in :mod:`.clip_blocks`
(``Transformer``, ``CLIPTextEncoder``, ``MultiheadAttention``, ``load_clip_visual_weights``).
"""

from .clip_blocks import CLIPTextEncoder, load_clip_visual_weights
from .multimodal import InternVideoMultiModal
from .uniformerv2 import UniFormerV2, load_uniformerv2_checkpoint
from .viclip import ViCLIP, ViCLIPVisionTransformer, build_viclip, load_viclip_checkpoint
from .videointern import VideoIntern, load_videointern_checkpoint
from .videomae import (
    PretrainVisionTransformer,
    VisionTransformer,
    load_videomae_checkpoint,
    resolve_finetune_name,
)

__all__ = [
    "CLIPTextEncoder",
    "InternVideoMultiModal",
    "PretrainVisionTransformer",
    "UniFormerV2",
    "ViCLIP",
    "ViCLIPVisionTransformer",
    "VideoIntern",
    "VisionTransformer",
    "build_viclip",
    "load_clip_visual_weights",
    "load_uniformerv2_checkpoint",
    "load_videointern_checkpoint",
    "load_videomae_checkpoint",
    "load_viclip_checkpoint",
    "resolve_finetune_name",
]
