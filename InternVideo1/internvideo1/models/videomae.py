"""VideoMAE as InternVideo1 uses it: a masked video autoencoder and its fine-tuning ViT.

* :class:`PretrainVisionTransformer` -- encoder over the visible tubelets (tube masking, ratio 0.9
  in the original recipes), a narrow decoder that predicts the pixels of the masked ones.
* :class:`VisionTransformer` -- the fine-tuning ViT: tubelet embedding, fixed 1-D sin-cos
  positions, mean pooling + ``fc_norm`` + ``head``.

Checkpoint layout (original): pretraining ``{"model": {"encoder.*", "decoder.*",
"encoder_to_decoder.weight", "mask_token"}}``; fine-tuning ``{"model"|"module": {"patch_embed.*",
"blocks.N.*", "fc_norm.*", "head.*"}}``. The sin-cos tables are not stored; attention has a
bias-free ``qkv`` with separate ``q_bias``/``v_bias`` (k has no bias).

Registered names: the pretraining factories keep the original names (``pretrain_mae_*``). The
original's fine-tuning names (``vit_base_patch16_224``, ...) are also timm's own ViT names, so
they are registered with a ``videomae_`` prefix; :data:`FINETUNE_NAMES` maps one to the other.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from ivtools.checkpoint import interpolate_pos_embed, load_state_dict_file, strip_prefix, unwrap_state_dict
from ivtools.layers import DropPath, init_vit_weights, tubelet_embed

from ._factory import register_factory
from .clip_blocks import drop_path_rates

# The original builds the fine-tuning table for this clip and resamples it for other sizes.
REFERENCE_FRAMES, REFERENCE_SIZE = 16, 224


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """The Transformer's 1-D table ``(1, N, D)``: ``sin`` on even and ``cos`` on odd channels.

    Channel ``j`` of position ``p`` uses angle ``p / 10000 ** (2 * (j // 2) / D)``.
    """
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    exponent = 2 * (np.arange(dim) // 2) / dim
    angles = position / np.power(10000, exponent)[None, :]
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return torch.tensor(angles, dtype=torch.float32).unsqueeze(0)


class PatchEmbed(nn.Module):
    """Tubelet embedding: a Conv3d with kernel = stride = ``(tubelet, patch, patch)``."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, num_frames=16, tubelet_size=2):
        super().__init__()
        if img_size % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"img_size {img_size} / num_frames {num_frames} must be multiples of "
                f"patch {patch_size} / tubelet {tubelet_size}"
            )
        self.img_size, self.patch_size, self.tubelet_size = (
            (img_size, img_size),
            (patch_size, patch_size),
            tubelet_size,
        )
        self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.num_patches = math.prod(self.grid)
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-3:]) != (self.grid[0] * self.tubelet_size, *self.img_size):
            raise ValueError(
                f"input clip (T, H, W) = {tuple(x.shape[-3:])}, model expects "
                f"{(self.grid[0] * self.tubelet_size, *self.img_size)}"
            )
        return tubelet_embed(x, self.proj).flatten(1, 3)


class Attention(nn.Module):
    """Multi-head self-attention with a bias-free ``qkv`` and learned ``q_bias``/``v_bias``."""

    def __init__(
        self,
        dim,
        num_heads=8,
        qkv_bias=False,
        qk_scale=None,
        attn_drop=0.0,
        proj_drop=0.0,
        attn_head_dim=None,
    ):
        super().__init__()
        self.num_heads = num_heads
        head_dim = attn_head_dim or dim // num_heads
        all_head_dim = head_dim * num_heads
        self.scale = qk_scale or head_dim**-0.5
        self.qkv = nn.Linear(dim, all_head_dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(all_head_dim))
            self.v_bias = nn.Parameter(torch.zeros(all_head_dim))
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(all_head_dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        q, k, v = (
            F.linear(x, self.qkv.weight, bias).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        )
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).flatten(2)))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm ViT block; ``init_values > 0`` adds LayerScale (``gamma_1``/``gamma_2``)."""

    def __init__(
        self,
        dim,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=False,
        qk_scale=None,
        drop=0.0,
        attn_drop=0.0,
        drop_path=0.0,
        init_values=0.0,
        norm_layer=nn.LayerNorm,
        attn_head_dim=None,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop, attn_head_dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        if init_values and init_values > 0:
            self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gamma_1 is None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


@dataclass(frozen=True)
class BlockConfig:
    """The per-block hyper-parameters the encoder, decoder and fine-tuning ViT share (the
    original's keyword names); ``drop_path_rate`` rises linearly over a stack's depth."""

    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    qk_scale: float | None = None
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    norm_layer: Callable[[int], nn.Module] = nn.LayerNorm
    init_values: float = 0.0

    def stack(self, dim: int, depth: int, num_heads: int) -> nn.ModuleList:
        return nn.ModuleList(
            Block(
                dim,
                num_heads,
                self.mlp_ratio,
                self.qkv_bias,
                self.qk_scale,
                self.drop_rate,
                self.attn_drop_rate,
                rate,
                self.init_values,
                self.norm_layer,
            )
            for rate in drop_path_rates(self.drop_path_rate, depth)
        )


def _run_blocks(blocks: nn.ModuleList, x: torch.Tensor, with_cp: bool, training: bool) -> torch.Tensor:
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False) if with_cp and training else block(x)
    return x


def _xavier_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PretrainVisionTransformerEncoder(nn.Module):
    """The MAE encoder: embeds the clip, keeps the visible tokens, runs the blocks, normalises."""

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans=3,
        embed_dim=768,
        depth=12,
        num_heads=12,
        num_frames=16,
        tubelet_size=2,
        use_learnable_pos_emb=False,
        with_cp=False,
        block: BlockConfig = BlockConfig(),
    ):
        super().__init__()
        self.embed_dim, self.with_cp = embed_dim, with_cp
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, num_frames, tubelet_size)
        num_patches = self.patch_embed.num_patches
        if use_learnable_pos_emb:
            self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim))
            trunc_normal_(self.pos_embed, std=0.02)
        else:
            self.register_buffer("pos_embed", sinusoid_table(num_patches, embed_dim), persistent=False)
        self.blocks = block.stack(embed_dim, depth, num_heads)
        self.norm = block.norm_layer(embed_dim)
        self.apply(_xavier_init)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, 3, T, H, W)``; ``mask``: bool ``(B, N)``, True = masked. Returns visible tokens."""
        x = self.patch_embed(x)
        x = x + self.pos_embed.to(x.dtype)
        visible = x[~mask].reshape(x.shape[0], -1, x.shape[-1])
        return self.norm(_run_blocks(self.blocks, visible, self.with_cp, self.training))


class PretrainVisionTransformerDecoder(nn.Module):
    """The MAE decoder: blocks over ``[visible, mask tokens]``, pixels predicted for the masked."""

    def __init__(
        self,
        patch_size=16,
        num_classes=1536,
        embed_dim=384,
        depth=4,
        num_heads=6,
        tubelet_size=2,
        with_cp=False,
        block: BlockConfig = BlockConfig(),
    ):
        super().__init__()
        if num_classes != 3 * tubelet_size * patch_size**2:
            raise ValueError(
                f"decoder_num_classes {num_classes} must be 3 * tubelet {tubelet_size} * patch {patch_size}**2"
            )
        self.with_cp = with_cp
        self.blocks = block.stack(embed_dim, depth, num_heads)
        self.norm = block.norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self.apply(_xavier_init)

    def forward(self, x: torch.Tensor, return_token_num: int) -> torch.Tensor:
        x = _run_blocks(self.blocks, x, self.with_cp, self.training)
        if return_token_num > 0:
            x = x[:, -return_token_num:]
        return self.head(self.norm(x))


class PretrainVisionTransformer(nn.Module):
    """VideoMAE pretraining model: ``forward(video, mask)`` → pixel predictions of masked tubelets.

    The output ``(B, N_masked, 3 * tubelet * patch**2)`` is ordered like the masked positions in
    raster order; :func:`internvideo1.losses.mae_targets` builds the matching targets.
    """

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        encoder_in_chans=3,
        encoder_embed_dim=768,
        encoder_depth=12,
        encoder_num_heads=12,
        decoder_num_classes=1536,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=8,
        mlp_ratio=4.0,
        qkv_bias=False,
        qk_scale=None,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0,
        norm_layer=nn.LayerNorm,
        init_values=0.0,
        use_learnable_pos_emb=False,
        num_frames=16,
        tubelet_size=2,
        with_cp=False,
    ):
        super().__init__()
        block = BlockConfig(
            mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, norm_layer, init_values
        )
        shared = {"tubelet_size": tubelet_size, "with_cp": with_cp, "block": block}
        self.encoder = PretrainVisionTransformerEncoder(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=encoder_in_chans,
            embed_dim=encoder_embed_dim,
            depth=encoder_depth,
            num_heads=encoder_num_heads,
            num_frames=num_frames,
            use_learnable_pos_emb=use_learnable_pos_emb,
            **shared,
        )
        self.decoder = PretrainVisionTransformerDecoder(
            patch_size=patch_size,
            num_classes=decoder_num_classes,
            embed_dim=decoder_embed_dim,
            depth=decoder_depth,
            num_heads=decoder_num_heads,
            **shared,
        )
        self.encoder_to_decoder = nn.Linear(encoder_embed_dim, decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        num_patches = self.encoder.patch_embed.num_patches
        self.register_buffer("pos_embed", sinusoid_table(num_patches, decoder_embed_dim), persistent=False)
        trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)

    @property
    def patch_embed(self) -> PatchEmbed:
        return self.encoder.patch_embed

    def no_weight_decay(self) -> set[str]:
        return {"mask_token", "encoder.pos_embed"}

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, 3, T, H, W)``; ``mask``: bool ``(B, N)`` with the same count of True per row."""
        mask = mask.flatten(1).bool()
        if mask.shape[1] != self.encoder.patch_embed.num_patches:
            raise ValueError(
                f"mask has {mask.shape[1]} positions, the clip has {self.encoder.patch_embed.num_patches}"
            )
        counts = mask.sum(1)
        if not bool((counts == counts[0]).all()):
            raise ValueError(f"every sample must mask the same number of tubelets, got {counts.tolist()}")
        visible = self.encoder_to_decoder(self.encoder(x, mask))
        batch, _, dim = visible.shape
        pos = self.pos_embed.to(visible.dtype).expand(batch, -1, -1)
        # The visible tokens are not put back in place; each keeps its own position embedding.
        pos_visible = pos[~mask].reshape(batch, -1, dim)
        pos_masked = pos[mask].reshape(batch, -1, dim)
        full = torch.cat([visible + pos_visible, self.mask_token.to(visible.dtype) + pos_masked], dim=1)
        return self.decoder(full, pos_masked.shape[1])


class VisionTransformer(nn.Module):
    """The VideoMAE fine-tuning ViT (mean pooling + ``fc_norm`` by default, as the original).

    ``all_frames`` and ``img_size`` other than 16 / 224 resample the fixed sin-cos table built for
    the 16-frame 224-px reference clip (time linearly, space bicubically), as the original's
    fine-tuning script does.
    """

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans=3,
        num_classes=1000,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=False,
        qk_scale=None,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0,
        head_drop_rate=0.0,
        norm_layer=nn.LayerNorm,
        init_values=0.0,
        use_learnable_pos_emb=False,
        init_scale=0.001,
        all_frames=16,
        tubelet_size=2,
        use_mean_pooling=True,
        with_cp=False,
        num_segment=1,
    ):
        super().__init__()
        self.num_classes, self.num_features, self.embed_dim = num_classes, embed_dim, embed_dim
        self.with_cp, self.num_segment = with_cp, num_segment
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, all_frames, tubelet_size)
        grid = self.patch_embed.grid
        if use_learnable_pos_emb:
            self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, embed_dim))
            trunc_normal_(self.pos_embed, std=0.02)
        else:
            ref_grid = (
                REFERENCE_FRAMES // tubelet_size,
                REFERENCE_SIZE // patch_size,
                REFERENCE_SIZE // patch_size,
            )
            table = interpolate_pos_embed(sinusoid_table(math.prod(ref_grid), embed_dim), 0, ref_grid, grid)
            self.register_buffer("pos_embed", table, persistent=False)
        self.pos_drop = nn.Dropout(drop_rate)
        block = BlockConfig(
            mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, norm_layer, init_values
        )
        self.blocks = block.stack(embed_dim, depth, num_heads)
        self.norm = nn.Identity() if use_mean_pooling else norm_layer(embed_dim)
        self.fc_norm = norm_layer(embed_dim) if use_mean_pooling else None
        self.head_dropout = nn.Dropout(head_drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_vit_weights)
        if num_classes > 0:
            self.head.weight.data.mul_(init_scale)
            self.head.bias.data.mul_(init_scale)

    def get_num_layers(self) -> int:
        return len(self.blocks)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def group_matcher(self, coarse: bool = False) -> dict:
        # timm's layer-decay helpers read this: the embedding is layer 0, block i is layer i + 1.
        return {"stem": r"^patch_embed|^pos_embed", "blocks": r"^blocks\.(\d+)"}

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Every token after the last block, ``(B, T'*H'*W', D)`` in (t, h, w) order."""
        x = self.patch_embed(x)
        x = self.pos_drop(x + self.pos_embed.to(x.dtype))
        return self.norm(_run_blocks(self.blocks, x, self.with_cp, self.training))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled clip feature ``(B, D)`` the head classifies."""
        x = self.forward_tokens(x)
        return self.fc_norm(x.mean(1)) if self.fc_norm is not None else x[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.head_dropout(self.forward_features(x)))
        if self.num_segment > 1 and self.training:
            # Several segments of one video arrive as consecutive samples: average their logits.
            x = x.view(-1, self.num_segment, x.shape[-1]).mean(1)
        return x


_LN = partial(nn.LayerNorm, eps=1e-6)

# (embed_dim, depth, heads, mlp_ratio, patch) of the original's ViT sizes.
_SIZES = {
    "small": (384, 12, 6, 4.0),
    "base": (768, 12, 12, 4.0),
    "large": (1024, 24, 16, 4.0),
    "huge": (1280, 32, 16, 4.0),
    "giant": (1408, 40, 16, 48 / 11),
    "gigantic": (1664, 48, 16, 64 / 13),
}
# decoder (embed_dim, heads) per pretraining size, as the original's factories set them.
_DECODERS = {
    "small": (192, 3),
    "base": (384, 6),
    "large": (512, 8),
    "huge": (512, 8),
    "giant": (512, 8),
    "gigantic": (512, 8),
}


def _pretrain(size: str, patch: int, **kwargs) -> PretrainVisionTransformer:
    dim, depth, heads, mlp_ratio = _SIZES[size]
    dec_dim, dec_heads = _DECODERS[size]
    tubelet = kwargs.get("tubelet_size", 2)
    return PretrainVisionTransformer(
        **{
            "img_size": 224,
            "patch_size": patch,
            "encoder_embed_dim": dim,
            "encoder_depth": depth,
            "encoder_num_heads": heads,
            "decoder_num_classes": 3 * tubelet * patch**2,
            "decoder_embed_dim": dec_dim,
            "decoder_num_heads": dec_heads,
            "mlp_ratio": mlp_ratio,
            "qkv_bias": True,
            "norm_layer": _LN,
            **kwargs,
        }
    )


def _finetune(size: str, patch: int, default_img_size: int, **kwargs) -> VisionTransformer:
    dim, depth, heads, mlp_ratio = _SIZES[size]
    return VisionTransformer(
        **{
            "img_size": default_img_size,
            "patch_size": patch,
            "embed_dim": dim,
            "depth": depth,
            "num_heads": heads,
            "mlp_ratio": mlp_ratio,
            "qkv_bias": True,
            "norm_layer": _LN,
            **kwargs,
        }
    )


# (size, patch) of the original's pretraining factories ``pretrain_mae_<size>_patch<patch>_224``;
# each is also registered as ``pretrain_videomae_*``, the name later VideoMAE releases use.
PRETRAIN_MODELS = {
    "small_patch16": ("small", 16),
    "base_patch16": ("base", 16),
    "large_patch16": ("large", 16),
    "huge_patch16": ("huge", 16),
    "giant_patch16": ("giant", 16),
    "giant_patch14": ("giant", 14),
    "gigantic_patch14": ("gigantic", 14),
}
# (size, patch, image size) of the original's fine-tuning factories ``vit_<...>``. Those names are
# also timm's own image ViTs, so they are registered here as ``videomae_vit_<...>`` (registering
# them unprefixed would replace timm's models for every user of the process).
FINETUNE_MODELS = {
    "vit_small_patch16_224": ("small", 16, 224),
    "vit_base_patch16_224": ("base", 16, 224),
    "vit_base_patch16_384": ("base", 16, 384),
    "vit_large_patch16_224": ("large", 16, 224),
    "vit_large_patch16_384": ("large", 16, 384),
    "vit_large_patch16_512": ("large", 16, 512),
    "vit_huge_patch16_224": ("huge", 16, 224),
    "vit_giant_patch14_224": ("giant", 14, 224),
    "vit_giant_patch16_224": ("giant", 16, 224),
    "vit_gigantic_patch14_224": ("gigantic", 14, 224),
}
FINETUNE_NAMES = {name: f"videomae_{name}" for name in FINETUNE_MODELS}

for _suffix, (_size, _patch) in PRETRAIN_MODELS.items():
    for _prefix in ("pretrain_mae", "pretrain_videomae"):
        register_factory(f"{_prefix}_{_suffix}_224", __name__, partial(_pretrain, _size, _patch))
for _name, (_size, _patch, _img) in FINETUNE_MODELS.items():
    register_factory(FINETUNE_NAMES[_name], __name__, partial(_finetune, _size, _patch, _img))


def resolve_finetune_name(name: str) -> str:
    """Accept either the original's fine-tuning name or the registered one."""
    return FINETUNE_NAMES.get(name, name)


# Keys of a pretraining checkpoint that the fine-tuning ViT has no use for.
_PRETRAIN_ONLY = ("decoder.", "mask_token", "encoder_to_decoder.")


def load_videomae_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    model_key: str = "model|module",
    label_map: Sequence[int] | None = None,
):
    """Load a released VideoMAE checkpoint into a pretraining or a fine-tuning model.

    Pretraining models load ``encoder.*``/``decoder.*`` strictly. Fine-tuning models accept a
    pretraining checkpoint (the encoder is taken, ``encoder.``/``backbone.`` stripped, the decoder
    and the encoder's final ``norm`` -- replaced by ``fc_norm`` under mean pooling -- left out) or a
    fine-tuned one. A head of another class count is dropped, unless ``label_map`` selects its rows
    (e.g. Kinetics-710 → 600/700; 710 → 400 keeps the first 400 rows, as the original).
    Returns ``(missing, unexpected)``; a missing key other than the head's and ``fc_norm``'s is an error.
    """
    state = unwrap_state_dict(load_state_dict_file(path), model_key)
    state = strip_prefix(state, "module.")
    if isinstance(model, PretrainVisionTransformer):
        return model.load_state_dict(state, strict=True)
    state = {k: v for k, v in state.items() if not k.startswith(_PRETRAIN_ONLY)}
    state = strip_prefix(strip_prefix(state, "backbone."), "encoder.")
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(("norm.", "pos_embed"))}
    head = state.get("head.weight")
    if head is not None and "head.weight" in own and head.shape != own["head.weight"].shape:
        if label_map is None and head.shape[0] == 710 and model.num_classes == 400:
            label_map = range(400)
        for key in ("head.weight", "head.bias"):
            if label_map is None:
                state.pop(key, None)
            else:
                state[key] = state[key][torch.as_tensor(list(label_map))]
    result = model.load_state_dict(state, strict=False)
    # A pretraining checkpoint has neither the head nor fc_norm: both keep their initialisation.
    missing = [k for k in result.missing_keys if not k.startswith(("head.", "fc_norm."))]
    if missing:
        raise KeyError(f"{path}: checkpoint lacks {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if result.unexpected_keys:
        raise KeyError(f"{path}: keys the model does not have: {result.unexpected_keys[:8]}")
    return result
