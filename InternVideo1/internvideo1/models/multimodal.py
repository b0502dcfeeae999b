"""InternVideo1's multi-modality model: a masked-video (VideoMAE) encoder and a CLIP-video encoder
joined by cross-model attention, aligned with a CLIP text encoder and a caption decoder.

Structure (the InternVideo paper, sec. 3, and the original's ``Multi-Modalities-Pretraining``):

* ``clip_video`` -- the CLIP video tower (:class:`ViCLIPVisionTransformer` returning every token);
* ``mae_video`` -- the VideoMAE ViT (:class:`videomae.VisionTransformer`, token output), frozen by
  default since it arrives pretrained by masked reconstruction;
* ``fusion`` -- :class:`CrossModelFusion`: in each layer the CLIP tokens attend to the MAE tokens and
  the MAE tokens to the CLIP tokens; every update passes through a tanh gate initialised at zero, so
  the fused model starts exactly as the two pretrained encoders;
* ``visual_ln_post`` + ``visual_proj`` on the fused CLIP class token give the video embedding, and
  ``text_encoder`` (CLIP's causal transformer) the text embedding; they are trained with the
  symmetric contrastive loss at ``logit_scale`` (CLIP's, initialised to ``log(1/0.07)``);
* ``caption_decoder`` -- the cross-modality decoder: learned visual queries pool the fused tokens of
  both streams, and layers of (causal self-attention, cross-attention) over the text encoder's
  token features predict the next token (captioning loss);
* optional heads of the original's CoTrain, built when their ``loss_names`` weight is positive:
  ``mlm_score`` (:class:`MLMHead`) predicts masked text tokens from the decoder's features of the
  masked caption (``mlm``), and ``pooler`` + ``vtm_score`` (:class:`Pooler`, :class:`VTMHead`)
  classify a (video, caption) pair as matching or not from the decoder's end-of-text feature
  (``vtm``). Their parameter names are the original's (``mlm_score.transform.dense.weight``,
  ``vtm_score.fc.weight``, ``pooler.dense.weight`` ...). With ``vtm`` on, the original's word-patch
  alignment (``vtm_wpa``, weight 0.1 by default as its ``compute_vtm_wpa``) adds the optimal-transport
  distance between each matching pair's caption tokens and video tokens, no parameters of its own.

``forward(video, text_ids, special_tokens_mask, idx)`` returns the losses; ``encode_video`` /
``encode_text`` give the embeddings that retrieval, zero-shot classification and multiple-choice
QA use, and ``encode_fused(video, text_ids)`` the decoder's token features for fusion tasks such
as open-ended QA.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import timm
import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from internvideo1.losses import (
    caption_loss,
    clip_special_tokens_mask,
    contrastive_loss,
    draw_vtm_pairs,
    mask_text_for_mlm,
    optimal_transport_distance,
    token_cross_entropy,
    vtm_loss,
    word_patch_alignment_loss,
)
from internvideo1.models._factory import register_factory
from internvideo1.models.clip_blocks import CLIPTextEncoder, ResidualAttentionBlock
from ivtools.layers import CrossAttention
from ivtools.layers.init import init_vit_weights


class CrossModelAttentionBlock(nn.Module):
    """Tokens ``x`` (width ``dim``) attend to ``context`` (width ``context_dim``), then an MLP.

    With ``gated`` both residual updates are scaled by ``tanh(gate)``, gates starting at zero.
    """

    def __init__(
        self, dim: int, context_dim: int, num_heads: int, mlp_ratio: float = 4.0, gated: bool = True
    ):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.context_proj = nn.Linear(context_dim, dim) if context_dim != dim else nn.Identity()
        self.attn = CrossAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        if gated:
            self.attn_gate = nn.Parameter(torch.zeros(1))
            self.mlp_gate = nn.Parameter(torch.zeros(1))
        self.gated = gated

    def _scale(self, gate_name: str) -> torch.Tensor | float:
        return torch.tanh(getattr(self, gate_name)) if self.gated else 1.0

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        ctx = self.context_proj(self.norm_context(context))
        x = x + self._scale("attn_gate") * self.attn(self.norm_q(x), ctx, ctx)[0]
        return x + self._scale("mlp_gate") * self.mlp(self.norm_mlp(x))


class CrossModelFusion(nn.Module):
    """``depth`` layers of two-way cross-model attention between CLIP and MAE token streams."""

    def __init__(self, clip_dim: int, mae_dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.clip_from_mae = nn.ModuleList(
            CrossModelAttentionBlock(clip_dim, mae_dim, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.mae_from_clip = nn.ModuleList(
            CrossModelAttentionBlock(mae_dim, clip_dim, num_heads, mlp_ratio) for _ in range(depth)
        )

    def forward(
        self, clip_tokens: torch.Tensor, mae_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for to_clip, to_mae in zip(self.clip_from_mae, self.mae_from_clip):
            # Both directions read the previous layer's streams, so neither direction goes first.
            clip_tokens, mae_tokens = to_clip(clip_tokens, mae_tokens), to_mae(mae_tokens, clip_tokens)
        return clip_tokens, mae_tokens


class CaptionDecoder(nn.Module):
    """Cross-modality decoder: visual queries pool the video tokens; text layers attend to them."""

    def __init__(
        self,
        width: int,
        vision_width: int,
        num_heads: int,
        num_layers: int,
        vocab_size: int,
        num_visual_queries: int = 256,
    ):
        super().__init__()
        self.visual_queries = nn.Parameter(width**-0.5 * torch.randn(num_visual_queries, width))
        self.visual_pooler = CrossModelAttentionBlock(width, vision_width, num_heads, gated=False)
        self.visual_pooler_norm = nn.LayerNorm(width)
        self.text_norm = nn.LayerNorm(width)
        self.self_attn = nn.ModuleList(
            ResidualAttentionBlock(width, num_heads, causal=True) for _ in range(num_layers)
        )
        self.cross_attn = nn.ModuleList(
            CrossModelAttentionBlock(width, width, num_heads, gated=False) for _ in range(num_layers)
        )
        self.predictor = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, width),
            nn.GELU(),
            nn.LayerNorm(width),
            nn.Linear(width, vocab_size),
        )

    def pool_visual(self, visual_tokens: torch.Tensor) -> torch.Tensor:
        """The visual queries pooled over the video tokens: ``(B, num_visual_queries, width)``."""
        queries = self.visual_queries.to(visual_tokens.dtype).expand(visual_tokens.shape[0], -1, -1)
        return self.visual_pooler_norm(self.visual_pooler(queries, visual_tokens))

    def decode_text(self, pooled_visual: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
        """Text token features ``(B, L, width)`` after the decoder layers over ``pooled_visual``."""
        x = self.text_norm(text_tokens)
        for self_attn, cross_attn in zip(self.self_attn, self.cross_attn):
            x = cross_attn(self_attn(x), pooled_visual)
        return x

    def forward_features(self, visual_tokens: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
        return self.decode_text(self.pool_visual(visual_tokens), text_tokens)

    def forward(self, visual_tokens: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(B, L, vocab)`` for text token features ``(B, L, width)``."""
        return self.predictor(self.forward_features(visual_tokens, text_tokens))


class PredictionHeadTransform(nn.Module):
    """``dense → GELU → LayerNorm`` under BERT's names (``BertPredictionHeadTransform``)."""

    def __init__(self, width: int, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.transform_act_fn = nn.GELU()
        self.LayerNorm = nn.LayerNorm(width, eps=layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(x)))


class MLMHead(nn.Module):
    """The original's ``heads.MLMHead``: a transform, then a bias-free vocabulary projection plus
    a separate ``bias`` (BERT's layout, which allows tying ``decoder.weight`` to embeddings)."""

    def __init__(self, width: int, vocab_size: int):
        super().__init__()
        self.transform = PredictionHeadTransform(width)
        self.decoder = nn.Linear(width, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x)) + self.bias


class VTMHead(nn.Module):
    """The original's ``heads.vtmHead``: two logits, (not matching, matching)."""

    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Pooler(nn.Module):
    """The original's ``heads.Pooler`` (``tanh(dense(x))``), applied to an already chosen token:
    the original pools its bidirectional encoder's first token, but in this causal decoder only
    the end-of-text token has seen the whole caption, so the caller passes that one."""

    def __init__(self, width: int):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.activation = nn.Tanh()

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(token))


# The original's ``loss_names`` keys this model trains, their default weights and the names under
# which ``forward`` reports each loss. ``vtm_wpa`` is not a key of the original: it names the 0.1
# that the original's ``compute_vtm_wpa`` hard-codes on its optimal-transport term, and counts
# only while ``vtm`` is on, since it scores the matching batch's pairs.
DEFAULT_LOSS_NAMES = {"contrastive": 1.0, "cap": 1.0, "mlm": 0.0, "vtm": 0.0, "vtm_wpa": 0.1}
_LOSS_OUTPUT_KEYS = {
    "contrastive": "loss_vtc",
    "cap": "loss_cap",
    "mlm": "loss_mlm",
    "vtm": "loss_vtm",
    "vtm_wpa": "loss_vtm_wpa",
}


def resolve_loss_names(loss_names: dict[str, float] | None) -> dict[str, float]:
    """``DEFAULT_LOSS_NAMES`` updated by ``loss_names``; unknown names, no objective at all, or a
    ``vtm_wpa`` weight given without ``vtm`` (it would silently do nothing) are errors."""
    given = loss_names or {}
    unknown = set(given) - set(DEFAULT_LOSS_NAMES)
    if unknown:
        raise ValueError(f"unknown loss names {sorted(unknown)}; choose from {sorted(DEFAULT_LOSS_NAMES)}")
    resolved = {**DEFAULT_LOSS_NAMES, **given}
    if given.get("vtm_wpa", 0) > 0 and resolved["vtm"] <= 0:
        raise ValueError("vtm_wpa scores the video-text matching pairs: it needs a positive vtm weight")
    if not any(weight > 0 for name, weight in resolved.items() if name != "vtm_wpa"):
        raise ValueError(f"no objective has a positive weight in {resolved}")
    return resolved


class VTMPairs(NamedTuple):
    """A video-text matching batch: caption ``i`` with video ``video_index[i]``, label 1 if they match;
    ``fused`` holds the caption decoder's token features ``(B, L, width)`` of each such pair."""

    fused: torch.Tensor
    labels: torch.Tensor
    video_index: torch.Tensor


class InternVideoMultiModal(nn.Module):
    """See the module docstring. ``vision``/``mae``/``text`` are the encoders' keyword configs."""

    def __init__(
        self,
        vision: dict,
        mae: dict,
        text: dict,
        embed_dim: int = 512,
        vision_model: str = "clip_joint_b16",
        mae_model: str = "videomae_vit_base_patch16_224",
        fusion_depth: int = 2,
        fusion_heads: int = 8,
        decoder_layers: int = 4,
        num_visual_queries: int = 256,
        loss_names: dict[str, float] | None = None,
        mlm_prob: float = 0.15,
        temp: float = 0.07,
        freeze_mae: bool = True,
        all_gather: bool = True,
    ):
        super().__init__()
        # The fusion needs every token, not the projected class token: no projection.
        self.clip_video = timm.create_model(vision_model, **{**vision, "output_dim": 0})
        self.mae_video = timm.create_model(mae_model, **{**mae, "num_classes": 0})
        # Each weight multiplies its loss; 0 leaves the objective (and its heads) out. The original
        # uses these values as on/off flags and sums the losses unweighted: the same at weight 1.
        self.loss_names, self.mlm_prob = resolve_loss_names(loss_names), mlm_prob
        mlm, vtm = self.loss_names["mlm"] > 0, self.loss_names["vtm"] > 0
        self.text_encoder = CLIPTextEncoder(embed_dim=embed_dim, **{"mask_embedding": mlm, **text})
        clip_dim, mae_dim = self.clip_video.width, self.mae_video.embed_dim
        self.fusion = CrossModelFusion(clip_dim, mae_dim, fusion_depth, fusion_heads)
        self.mae_to_clip = nn.Linear(mae_dim, clip_dim)
        self.visual_ln_post = nn.LayerNorm(clip_dim)
        self.visual_proj = nn.Parameter(clip_dim**-0.5 * torch.randn(clip_dim, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temp)))
        width = self.text_encoder.transformer.width
        self.caption_decoder = CaptionDecoder(
            width, clip_dim, text["heads"], decoder_layers, self.text_encoder.vocab_size, num_visual_queries
        )
        # The heads start as the original's ``objectives.init_weights``: N(0, 0.02) linear weights
        # (truncation at +-2 never bites at that std), zero biases, unit LayerNorms.
        if mlm:
            self.mlm_score = MLMHead(width, self.text_encoder.vocab_size)
            self.mlm_score.apply(init_vit_weights)
        if vtm:
            self.pooler = Pooler(width)
            self.vtm_score = VTMHead(width)
            self.pooler.apply(init_vit_weights)
            self.vtm_score.apply(init_vit_weights)
        self.all_gather = all_gather
        self.freeze_mae = freeze_mae
        if freeze_mae:
            self.mae_video.requires_grad_(False)

    @property
    def context_length(self) -> int:
        return self.text_encoder.context_length

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_mae:
            # A frozen encoder keeps its inference behaviour (dropout, drop-path off).
            self.mae_video.eval()
        return self

    def no_weight_decay(self) -> set[str]:
        names = {"logit_scale", "caption_decoder.visual_queries"}
        names |= {f"clip_video.{k}" for k in self.clip_video.no_weight_decay()}
        names |= {f"text_encoder.{k}" for k in self.text_encoder.no_weight_decay()}
        return names

    def _clip_frames(self, video: torch.Tensor) -> torch.Tensor:
        """The CLIP tower sees ``clip_video.num_frames`` frames evenly strided from the MAE clip."""
        frames, want = video.shape[2], self.clip_video.num_frames
        if frames % want:
            raise ValueError(f"clip has {frames} frames, not a multiple of the CLIP tower's {want}")
        return video[:, :, :: frames // want]

    def encode_video_tokens(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused CLIP tokens ``(B, 1 + N_clip, C)`` and fused MAE tokens ``(B, N_mae, C_mae)``."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected a clip (B, 3, T, H, W), got {tuple(video.shape)}")
        clip_tokens = self.clip_video(self._clip_frames(video))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_mae):
            mae_tokens = self.mae_video.forward_tokens(video)
        return self.fusion(clip_tokens, mae_tokens)

    def _embed(self, clip_tokens: torch.Tensor) -> torch.Tensor:
        return self.visual_ln_post(clip_tokens[:, 0]) @ self.visual_proj

    def _decoder_context(self, clip_tokens: torch.Tensor, mae_tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([clip_tokens, self.mae_to_clip(mae_tokens)], dim=1)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Video embedding ``(B, embed_dim)`` (unnormalised)."""
        return self._embed(self.encode_video_tokens(video)[0])

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Text embedding ``(B, embed_dim)`` (unnormalised) of CLIP BPE ids ``(B, L)``."""
        return self.text_encoder.encode_text(text_ids)

    def encode_fused(self, video: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        """Cross-modality decoder features ``(B, L, width)`` of (video, text) pairs."""
        clip_tokens, mae_tokens = self.encode_video_tokens(video)
        _, text_tokens = self.text_encoder.encode_text(text_ids, return_all_feats=True)
        return self.caption_decoder.forward_features(
            self._decoder_context(clip_tokens, mae_tokens), text_tokens
        )

    @staticmethod
    def similarity(video_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(video_feats.float(), dim=-1) @ F.normalize(text_feats.float(), dim=-1).t()

    def pooled_visual(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused CLIP tokens and the caption decoder's pooled visual queries of a clip batch."""
        clip_tokens, mae_tokens = self.encode_video_tokens(video)
        return clip_tokens, self.caption_decoder.pool_visual(self._decoder_context(clip_tokens, mae_tokens))

    def mlm_logits(
        self,
        pooled_visual: torch.Tensor,
        text_ids: torch.Tensor,
        special_tokens_mask: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, L, vocab), labels (B, L))`` of the masked-language objective.

        The caption is encoded again with masked tokens, so the other objectives see it unmasked
        (the original encodes once with the mask and lets the contrastive and caption losses read
        the masked caption); the caption decoder's features of it feed ``mlm_score``.
        """
        labels, masked = mask_text_for_mlm(
            text_ids, clip_special_tokens_mask(text_ids, special_tokens_mask), self.mlm_prob, generator
        )
        _, masked_tokens = self.text_encoder.encode_text(
            text_ids, masked_indices=masked, return_all_feats=True
        )
        return self.mlm_score(self.caption_decoder.decode_text(pooled_visual, masked_tokens)), labels

    def vtm_pairs(
        self,
        pooled_visual: torch.Tensor,
        text_tokens: torch.Tensor,
        idx: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> VTMPairs:
        """The matching batch of :func:`draw_vtm_pairs`, decoded; the negatives reuse the batch's
        pooled visual queries, so no video is encoded twice."""
        video_index, labels = draw_vtm_pairs(idx, generator)
        fused = self.caption_decoder.decode_text(pooled_visual[video_index], text_tokens)
        return VTMPairs(fused, labels, video_index)

    def vtm_logits(self, pairs: VTMPairs, text_ids: torch.Tensor) -> torch.Tensor:
        """Matching logits ``(B, 2)`` from each pair's end-of-text decoder feature."""
        fused = pairs.fused
        eot = fused[torch.arange(fused.shape[0], device=fused.device), text_ids.argmax(dim=-1)]
        return self.vtm_score(self.pooler(eot))

    def vtm_wpa_loss(
        self,
        pairs: VTMPairs,
        pooled_visual: torch.Tensor,
        text_ids: torch.Tensor,
        special_tokens_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Word-patch alignment of the matching batch (unweighted), between the decoder's caption
        tokens without SOT, EOT and padding (the original drops its text CLS, SEP and padding) and
        the paired video's pooled visual queries: the video tokens the decoder reads, in its width.
        The original's video side is its joint encoder's patch tokens without the class token;
        this model's patch tokens live in the vision width and never pass the text decoder."""
        video_tokens = pooled_visual[pairs.video_index]
        text_valid = ~clip_special_tokens_mask(text_ids, special_tokens_mask)
        video_valid = torch.ones(video_tokens.shape[:2], dtype=torch.bool, device=video_tokens.device)
        distance = optimal_transport_distance(pairs.fused, text_valid, video_tokens, video_valid)
        return word_patch_alignment_loss(distance, pairs.labels)

    def forward(
        self,
        video: torch.Tensor,
        text_ids: torch.Tensor,
        special_tokens_mask: torch.Tensor,
        idx: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_vtc", "loss_cap", "loss_mlm", "loss_vtm", "loss_vtm_wpa"}`` (the objectives
        whose ``loss_names`` weight is positive; each unweighted) for a batch of (clip, caption) pairs."""
        clip_tokens, visual = self.pooled_visual(video)
        text_emb, text_tokens = self.text_encoder.encode_text(text_ids, return_all_feats=True)
        losses = {}
        if self.loss_names["contrastive"] > 0:
            scale = self.logit_scale.exp().clamp(max=100.0)
            losses["contrastive"] = contrastive_loss(
                self._embed(clip_tokens), text_emb, scale, idx, self.all_gather
            )
        if self.loss_names["cap"] > 0:
            # The text encoder is causal, so position i has seen tokens <= i and predicts token i + 1.
            logits = self.caption_decoder.predictor(
                self.caption_decoder.decode_text(visual, text_tokens[:, :-1])
            )
            losses["cap"] = caption_loss(logits, text_ids, special_tokens_mask)
        if self.loss_names["mlm"] > 0:
            losses["mlm"] = token_cross_entropy(*self.mlm_logits(visual, text_ids, special_tokens_mask))
        if self.loss_names["vtm"] > 0:
            # Without sample ids every pair of the batch is a different sample.
            ids = torch.arange(video.shape[0], device=video.device) if idx is None else idx
            pairs = self.vtm_pairs(visual, text_tokens, ids)
            losses["vtm"] = vtm_loss(self.vtm_logits(pairs, text_ids), pairs.labels)
            if self.loss_names["vtm_wpa"] > 0:
                losses["vtm_wpa"] = self.vtm_wpa_loss(pairs, visual, text_ids, special_tokens_mask)
        out = {"loss": sum(self.loss_names[name] * loss for name, loss in losses.items())}
        return out | {_LOSS_OUTPUT_KEYS[name]: loss.detach() for name, loss in losses.items()}


# Per size: the two towers (timm names + overrides), the text transformer and the fusion width.
_CONFIGS = {
    "b16": {
        "vision_model": "clip_joint_b16",
        "vision": {},
        "mae_model": "videomae_vit_base_patch16_224",
        "mae": {},
        "text": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
        "embed_dim": 512,
        "fusion_heads": 12,
    },
    "l14": {
        "vision_model": "clip_joint_l14",
        "vision": {},
        "mae_model": "videomae_vit_large_patch16_224",
        "mae": {},
        "text": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12},
        "embed_dim": 768,
        "fusion_heads": 16,
    },
}


def build_internvideo_mm(size: str, **kwargs) -> InternVideoMultiModal:
    """The multi-modality model of size ``"b16"`` or ``"l14"``; ``vision=``, ``mae=``, ``text=`` dicts
    update the towers' configs (e.g. ``vision={"num_frames": 8}``, ``mae={"all_frames": 16}``), other
    keywords go to :class:`InternVideoMultiModal`."""
    if size not in _CONFIGS:
        raise ValueError(f"unknown InternVideo-MM size {size!r}; choose from {sorted(_CONFIGS)}")
    cfg = dict(_CONFIGS[size])
    for part in ("vision", "mae", "text"):
        cfg[part] = {**cfg[part], **kwargs.pop(part, {})}
    return InternVideoMultiModal(**{**cfg, **kwargs})


for _size, _name in (("b16", "InternVideo-MM-B-16"), ("l14", "InternVideo-MM-L-14")):
    register_factory(
        f"internvideo_mm_{_size}",
        __name__,
        partial(build_internvideo_mm, _size),
        f"The original's ``{_name}`` (keyword arguments as :func:`build_internvideo_mm`).",
    )
