"""InternVideo2 models; importing this package registers every factory in timm's registry.

Public API (all inputs are videos ``(B, 3, T, H, W)``, ImageNet-normalised, T = ``num_frames``):

* :class:`InternVideo2Encoder` (``**VARIANTS[size]`` + kwargs) is also the multi-modality CLIP vision
  encoder: ``forward(x, use_image=False) -> pooled (B, clip_embed_dim)``; ``embed(x, use_image)``,
  ``run_blocks(tokens, return_index=(), stop_after=None) -> (hidden, [states])``, ``clip_projector``.
* Classifiers ``internvideo2{,_ap,_cat}_{small,base,large,1B,6B}_patch14_224`` ->
  :class:`InternVideo2` / :class:`InternVideo2AP` / :class:`InternVideo2Cat`. Keyword arguments are
  the original's (``num_classes``, ``num_frames``, ``tubelet_size``, ``drop_path_rate``,
  ``head_drop_path_rate``, ``init_values``, ``qk_normalization``, ``use_flash_attn`` /
  ``use_fused_rmsnorm`` / ``use_fused_mlp``, ``fc_drop_rate``, ``use_checkpoint`` /
  ``checkpoint_num``, ``sep_pos_embed``, ``clip_embed_dim``, ``init_scale``, ...).
  ``forward(x) -> logits (B, num_classes)``; ``forward_features(x) -> tokens (B, 1 + N, D)``;
  ``forward_head(tokens, pre_logits=False)``; ``no_weight_decay()``, ``group_matcher()``,
  ``get_num_layers()``, ``get_layer_id(name)``, ``set_grad_checkpointing()``.
* Pretraining students ``pretrain_internvideo2_{1B,6B}_patch14_224`` -> :class:`PretrainInternVideo2`;
  ``forward(x, mask) -> (clip_align (K, B, N_vis, clip_teacher_embed_dim), final_align (B,
  clip_teacher_final_dim), mae_align (K', B, N_vis - 1, mae_teacher_embed_dim))``; ``mask`` is bool
  ``(B, 1 + N)``, True = masked (the class token column is False).
* Multi-modality stage-2 vision encoder :class:`InternVideo2Stage2Vision`, built by
  ``stage2_vision_encoder("1B"|"6B", **kwargs)`` (released config defaults; keys as the spec, prefix
  ``vision_encoder.`` inside the full model): ``forward(x, mask=None, use_image=False, x_vis_return_idx=-1, x_vis_only=False) ->
  (x_vis, x_pool_vis, clip_align, final_align)`` or ``x_vis`` alone.
* Distillation students ``distill_internvideo2_{small,base,large}_patch14_224`` ->
  :class:`DistillInternVideo2`; ``forward(x, mask=None) -> (clip_align, final_align)``.
* Teachers (:mod:`.teachers`): :class:`InternVLCLIPVision` (``internvl_clip_6b``),
  :class:`VideoMAEv2Encoder` (``videomae_g14``), :class:`InternVideo2Teacher` (``teacher_internvideo2_1B``,
  ``teacher_internvideo2_6B``); ``released_conversion(teacher)`` maps a released teacher file's layout.
* Checkpoints: ``load_checkpoint(model, path_or_state_dict, orig_t_size=None, strict=True) -> LoadReport``
  (formats, prefixes, ``vision_encoder.`` extraction, pos-embed interpolation, head re-init; raises
  :class:`CheckpointMismatchError` naming the first mismatched keys). ``model.load_state_dict`` itself
  also resamples position tables saved for another frame count / image size.
* ``extract_features(model, video) -> (pooled (B, clip_embed_dim), patch_tokens (B, N, D))``;
  ``forward_flops(model, batch_size=1, keep_ratio=1.0) -> int``.
"""

from .backbone import InternVideo2Encoder, PatchEmbed3D
from .classification import InternVideo2, InternVideo2AP, InternVideo2Cat
from .configs import VARIANTS
from .features import extract_features
from .flops import forward_flops
from .loading import (
    CheckpointMismatchError,
    LoadReport,
    adapt_state_dict,
    load_checkpoint,
    to_encoder_state_dict,
)
from .pretrain import (
    AlignDecoder,
    DistillInternVideo2,
    InternVideo2Stage2Vision,
    InternVideo2Student,
    PretrainInternVideo2,
    stage2_vision_encoder,
)
from .teachers import (
    InternVideo2Teacher,
    InternVLCLIPVision,
    VideoMAEv2Encoder,
    internvl_clip_6b,
    released_conversion,
    teacher_internvideo2_1B,
    teacher_internvideo2_6B,
    videomae_g14,
)

__all__ = [
    "CheckpointMismatchError",
    "InternVLCLIPVision",
    "InternVideo2Teacher",
    "LoadReport",
    "VideoMAEv2Encoder",
    "adapt_state_dict",
    "extract_features",
    "forward_flops",
    "internvl_clip_6b",
    "load_checkpoint",
    "released_conversion",
    "teacher_internvideo2_1B",
    "teacher_internvideo2_6B",
    "to_encoder_state_dict",
    "videomae_g14",
    "VARIANTS",
    "AlignDecoder",
    "DistillInternVideo2",
    "InternVideo2Stage2Vision",
    "InternVideo2Student",
    "PretrainInternVideo2",
    "stage2_vision_encoder",
    "InternVideo2",
    "InternVideo2AP",
    "InternVideo2Cat",
    "InternVideo2Encoder",
    "PatchEmbed3D",
]

# Multi-modality models (issue 5): importing registers the CLIP vision factories in timm.
from .beats import BEATs, BEATsConfig
from .internvideo2_clip import InternVideo2_CLIP, InternVideo2_CLIP_small, InternVideo2CLIPVision
from .internvideo2_stage2 import InternVideo2_Stage2, InternVideo2_Stage2_audiovisual
from .mobileclip import MobileCLIPTextTransformer
from .text_bert import MedBertForMaskedLM, MedBertModel

__all__ += [
    "BEATs",
    "BEATsConfig",
    "InternVideo2CLIPVision",
    "InternVideo2_CLIP",
    "InternVideo2_CLIP_small",
    "InternVideo2_Stage2",
    "InternVideo2_Stage2_audiovisual",
    "MedBertForMaskedLM",
    "MedBertModel",
    "MobileCLIPTextTransformer",
]
