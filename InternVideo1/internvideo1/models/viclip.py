"""ViCLIP, the video CLIP of InternVid: a CLIP ViT over all frames' patches jointly, and CLIP's text tower.

* :class:`ViCLIPVisionTransformer` (the original's ``clip_joint_*``): a Conv3d patch embedding
  (kernel ``(kernel_size, p, p)``, no bias), CLIP's class token and spatial position table, a
  learned temporal table ``(1, T, width)`` added per frame, then one transformer over the class
  token and every frame's patches. In training a fixed share ``masking_prob`` of the patch tokens
  is dropped at random per sample (ViCLIP trains with 0.9, "FLIP"-style). The output is the
  projected class token.
* :class:`ViCLIP`: ``vision_encoder`` + ``text_encoder`` (:class:`~.clip_blocks.CLIPTextEncoder`)
  + the temperature ``temp`` (logits are ``cos / temp``, ``temp`` clamped to at least 0.01).

Released checkpoints (``ViCLIP-{B,L}_InternVid-FLT-10M.pth``) are ``{"model": {"vision_encoder.*",
"text_encoder.*", "temp"}}`` with 8 frames and a text context of 32; :func:`load_viclip_checkpoint`
reads them (and resizes the temporal table for other frame counts).
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from ivtools.checkpoint import load_state_dict_file, unwrap_state_dict
from ivtools.layers import tubelet_embed

from ..losses import contrastive_loss
from ._factory import model_kwargs
from .clip_blocks import CLIPTextEncoder, Transformer, clip_token_tables, resize_class_pos_embed

logger = logging.getLogger(__name__)

CONTEXT_LENGTH, VOCAB_SIZE = 32, 49408


def keep_random_tokens(
    x: torch.Tensor, masking_prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Drop ``int(masking_prob * L)`` of the ``L`` tokens of every sample at random, keeping order.

    ``x``: ``(B, L, C)`` → ``(B, L - int(masking_prob * L), C)``.
    """
    batch, length, dim = x.shape
    num_masked = int(masking_prob * length)
    if num_masked == 0:
        return x
    noise = torch.rand(batch, length, generator=generator, device=x.device)
    keep = noise.argsort(dim=1)[:, num_masked:].sort(dim=1).values
    return x.gather(1, keep[..., None].expand(-1, -1, dim))


class ViCLIPVisionTransformer(nn.Module):
    """The video tower; ``forward(video (B, 3, T, H, W))`` → ``(B, output_dim)``.

    With ``output_dim=0`` there is no ``proj`` and every token comes back, ``(B, 1 + N*T, width)``,
    the class token first and the patches ordered (position, frame).
    """

    def __init__(
        self,
        input_resolution: int = 224,
        patch_size: int = 16,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        output_dim: int = 512,
        kernel_size: int = 1,
        num_frames: int = 8,
        drop_path: float = 0.0,
        checkpoint_num: int = 0,
        dropout: float = 0.0,
        temp_embed: bool = True,
    ):
        super().__init__()
        self.input_resolution, self.patch_size, self.num_frames = input_resolution, patch_size, num_frames
        self.output_dim, self.width = output_dim, width
        kernel = (kernel_size, patch_size, patch_size)
        self.conv1 = nn.Conv3d(3, width, kernel, kernel, bias=False)
        self.class_embedding, self.positional_embedding = clip_token_tables(
            width, input_resolution, patch_size
        )
        self.ln_pre = nn.LayerNorm(width)
        if temp_embed:
            self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, num_frames, width))
        self.transformer = Transformer(
            width, layers, heads, drop_path=drop_path, dropout=dropout, checkpoint_num=checkpoint_num
        )
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(width**-0.5 * torch.randn(width, output_dim)) if output_dim > 0 else None
        self.dropout = nn.Dropout(dropout)

    def get_num_layers(self) -> int:
        return len(self.transformer.resblocks)

    def no_weight_decay(self) -> set[str]:
        return {"positional_embedding", "class_embedding", "temporal_positional_embedding"}

    def _temporal(self, frames: int) -> torch.Tensor | None:
        table = getattr(self, "temporal_positional_embedding", None)
        if table is None:
            return None
        if frames == 1:
            # A single image gets the average time embedding (and every entry gets a gradient).
            return table.mean(1, keepdim=True)
        if frames != table.shape[1]:
            raise ValueError(
                f"clip has {frames} time steps, the temporal table has {table.shape[1]}; build the model "
                f"with num_frames={frames} (load_viclip_checkpoint resizes the table)"
            )
        return table

    def forward(self, x: torch.Tensor, masking_prob: float = 0.0) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a clip (B, 3, T, H, W), got {tuple(x.shape)}")
        x = tubelet_embed(x, self.conv1)  # B, T, H', W', C
        batch, frames = x.shape[:2]
        x = x.flatten(2, 3).transpose(1, 2)  # B, N, T, C
        x = x + self.positional_embedding[1:, None].to(x.dtype)
        temporal = self._temporal(frames)
        if temporal is not None:
            x = x + temporal.to(x.dtype)
        x = x.flatten(1, 2)
        if masking_prob > 0.0:
            x = keep_random_tokens(x, masking_prob)
        cls = (self.class_embedding + self.positional_embedding[0]).to(x.dtype).expand(batch, 1, -1)
        x = self.ln_post(self.transformer(self.ln_pre(torch.cat([cls, x], dim=1))))
        if self.proj is None:
            return x
        return self.dropout(x[:, 0]) @ self.proj


class ViCLIP(nn.Module):
    """Video-text CLIP. The documented interface other packages rely on:

    * ``encode_video(video)`` — ``(B, 3, T, H, W)`` (or images ``(B, 3, H, W)``) → ``(B, D)``,
      unnormalised; patch tokens are masked only when ``self.training`` and ``masking_prob > 0``;
    * ``encode_text(ids)`` — ``(B, L<=context)`` CLIP BPE ids (see :mod:`internvideo1.tokenizer`) → ``(B, D)``;
    * ``forward(video, ids, idx=None)`` → ``{"loss_vtc": ...}``, the symmetric contrastive loss;
    * ``similarity(video_feats, text_feats)`` → cosine similarities ``(Nv, Nt)``.
    """

    def __init__(
        self,
        vision: dict,
        text: dict,
        masking_prob: float = 0.9,
        temp: float = 1 / 100.0,
        temp_min: float = 1 / 100.0,
        freeze_text: bool = True,
        all_gather: bool = True,
    ):
        super().__init__()
        self.vision_encoder = ViCLIPVisionTransformer(**vision)
        self.text_encoder = CLIPTextEncoder(**text)
        self.temp = nn.Parameter(torch.tensor(float(temp)))
        self.temp_min, self.masking_prob, self.all_gather = temp_min, masking_prob, all_gather
        if self.vision_encoder.output_dim != self.text_encoder.text_projection.shape[1]:
            raise ValueError(
                f"vision output_dim {self.vision_encoder.output_dim} != text embed_dim "
                f"{self.text_encoder.text_projection.shape[1]}"
            )
        if freeze_text:
            self.text_encoder.requires_grad_(False)

    @property
    def embed_dim(self) -> int:
        return self.vision_encoder.output_dim

    @property
    def num_frames(self) -> int:
        return self.vision_encoder.num_frames

    @property
    def context_length(self) -> int:
        return self.text_encoder.context_length

    def no_weight_decay(self) -> set[str]:
        names = {"temp"}
        names |= {f"vision_encoder.{k}" for k in self.vision_encoder.no_weight_decay()}
        names |= {f"text_encoder.{k}" for k in self.text_encoder.no_weight_decay()}
        return names

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim == 4:
            video = video.unsqueeze(2)
        masking = self.masking_prob if self.training else 0.0
        return self.vision_encoder(video, masking_prob=masking)

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder.encode_text(text_ids)

    @staticmethod
    def similarity(video_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(video_feats.float(), dim=-1) @ F.normalize(text_feats.float(), dim=-1).t()

    def forward(self, video: torch.Tensor, text_ids: torch.Tensor, idx: torch.Tensor | None = None) -> dict:
        with torch.no_grad():
            self.temp.clamp_(min=self.temp_min)
        loss = contrastive_loss(
            self.encode_video(video),
            self.encode_text(text_ids),
            1.0 / self.temp,
            idx,
            all_gather=self.all_gather,
        )
        return {"loss_vtc": loss}


# (vision: input, patch, width, layers, heads, output_dim), (text: width, heads, layers)
_CONFIGS = {
    "b16": ((224, 16, 768, 12, 12, 512), (512, 8, 12)),
    "l14": ((224, 14, 1024, 24, 16, 768), (768, 12, 12)),
}


def _vision_config(size: str, **overrides) -> dict:
    res, patch, width, layers, heads, out = _CONFIGS[size][0]
    cfg = {
        "input_resolution": res,
        "patch_size": patch,
        "width": width,
        "layers": layers,
        "heads": heads,
        "output_dim": out,
    }
    return {**cfg, **overrides}


def _text_config(size: str, **overrides) -> dict:
    width, heads, layers = _CONFIGS[size][1]
    cfg = {
        "embed_dim": _CONFIGS[size][0][5],
        "context_length": CONTEXT_LENGTH,
        "vocab_size": VOCAB_SIZE,
        "width": width,
        "heads": heads,
        "layers": layers,
    }
    return {**cfg, **overrides}


_VISION_KEYS = (
    "input_resolution",
    "kernel_size",
    "num_frames",
    "drop_path",
    "checkpoint_num",
    "dropout",
    "temp_embed",
)
_TEXT_KEYS = ("context_length", "vocab_size")


def build_viclip(size: str, **kwargs) -> ViCLIP:
    """ViCLIP of size ``"b16"`` or ``"l14"``; vision/text overrides may be passed flat
    (``num_frames=``, ``drop_path=``, ``context_length=`` ...) or as ``vision=``/``text=`` dicts."""
    if size not in _CONFIGS:
        raise ValueError(f"unknown ViCLIP size {size!r}; choose from {sorted(_CONFIGS)}")
    vision = {**{k: kwargs.pop(k) for k in _VISION_KEYS if k in kwargs}, **kwargs.pop("vision", {})}
    text = {**{k: kwargs.pop(k) for k in _TEXT_KEYS if k in kwargs}, **kwargs.pop("text", {})}
    return ViCLIP(_vision_config(size, **vision), _text_config(size, **text), **kwargs)


@register_model
def viclip_b16(pretrained: bool = False, **kwargs) -> ViCLIP:
    return build_viclip("b16", **model_kwargs("viclip_b16", pretrained, kwargs))


@register_model
def viclip_l14(pretrained: bool = False, **kwargs) -> ViCLIP:
    return build_viclip("l14", **model_kwargs("viclip_l14", pretrained, kwargs))


@register_model
def clip_joint_b16(pretrained: bool = False, **kwargs) -> ViCLIPVisionTransformer:
    """The video tower alone, under the original's name."""
    return ViCLIPVisionTransformer(
        **_vision_config("b16", **model_kwargs("clip_joint_b16", pretrained, kwargs))
    )


@register_model
def clip_joint_l14(pretrained: bool = False, **kwargs) -> ViCLIPVisionTransformer:
    return ViCLIPVisionTransformer(
        **_vision_config("l14", **model_kwargs("clip_joint_l14", pretrained, kwargs))
    )


def resize_temporal_embed(table: torch.Tensor, frames: int) -> torch.Tensor:
    """``(1, T, C)`` → ``(1, frames, C)`` by linear interpolation over time (the original's choice
    when loading checkpoints for more or fewer frames)."""
    if table.shape[1] == frames:
        return table
    resized = F.interpolate(table.float().transpose(1, 2), size=frames, mode="linear", align_corners=False)
    return resized.transpose(1, 2).to(table.dtype)


def adapt_viclip_state_dict(state_dict: dict, model: ViCLIP) -> dict:
    """Fit a released state dict to ``model``'s frame count, resolution and text context."""
    state = dict(state_dict)
    own = model.state_dict()
    key = "vision_encoder.temporal_positional_embedding"
    if key in state and key in own:
        state[key] = resize_temporal_embed(state[key], own[key].shape[1])
    key = "vision_encoder.positional_embedding"
    if key in state and state[key].shape != own[key].shape:
        state[key] = resize_class_pos_embed(state[key], round((own[key].shape[0] - 1) ** 0.5))
    key = "text_encoder.positional_embedding"
    if key in state and state[key].shape[0] != own[key].shape[0]:
        # Shorter contexts keep the first rows; longer ones get zero rows (as the original).
        old, new = state[key], own[key].shape[0]
        state[key] = old[:new] if new < old.shape[0] else F.pad(old, (0, 0, 0, new - old.shape[0]))
    return state


def load_viclip_checkpoint(model: ViCLIP, path: str | os.PathLike, strict: bool = True):
    """Load a released ViCLIP file (``{"model": ...}`` or a bare state dict) into ``model``."""
    state = unwrap_state_dict(load_state_dict_file(path), "model|module|state_dict")
    missing = [
        k for k in ("vision_encoder.conv1.weight", "text_encoder.token_embedding.weight") if k not in state
    ]
    if missing:
        raise KeyError(f"{path}: not a ViCLIP checkpoint, keys {missing} are absent")
    result = model.load_state_dict(adapt_viclip_state_dict(state, model), strict=strict)
    logger.info("loaded ViCLIP weights from %s: %s", path, result)
    return result
