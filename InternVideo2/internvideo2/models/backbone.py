"""The InternVideo2 video ViT shared by every InternVideo2 model class.

``InternVideo2Encoder`` holds what all variants have in common -- 3D patch embedding (tubelet x 14 x
14), one class token, a joint 3D sin-cos position embedding (or the separable variant), the blocks
of :mod:`ivtools.layers` and the attention-pooling ``clip_projector`` -- and the helpers training
needs (weight decay exclusions, layer ids for layer-wise lr decay, gradient checkpointing).
Subclasses in the sibling modules add heads and decide what ``forward`` returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from timm.layers import to_2tuple, trunc_normal_
from torch import nn

from ivtools.checkpoint import interpolate_pos_embed
from ivtools.layers import (
    AttentionPoolingBlock,
    check_fused_flags,
    init_vit_weights,
    make_blocks,
    merge_residual,
    rescale_residual_branches,
    sincos_pos_embed_1d,
    sincos_pos_embed_2d,
    sincos_pos_embed_3d,
    tubelet_embed,
)


class PatchEmbed3D(nn.Module):
    """``(B, C, T, H, W)`` video -> ``(B, T', H' * W', D)`` tokens with one Conv3d (key ``proj``)."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 14,
        in_chans: int = 3,
        embed_dim: int = 768,
        num_frames: int = 8,
        tubelet_size: int = 1,
    ):
        super().__init__()
        img_size, patch_size = to_2tuple(img_size), to_2tuple(patch_size)
        if num_frames % tubelet_size:
            raise ValueError(f"num_frames={num_frames} is not divisible by tubelet_size={tubelet_size}")
        self.img_size, self.patch_size, self.tubelet_size = img_size, patch_size, tubelet_size
        self.num_frames = num_frames
        self.grid_size = (
            num_frames // tubelet_size,
            img_size[0] // patch_size[0],
            img_size[1] // patch_size[1],
        )
        self.num_img_patches = self.grid_size[1] * self.grid_size[2]
        self.num_patches = self.grid_size[0] * self.num_img_patches
        kernel = (tubelet_size, *patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def check_input(self, x: torch.Tensor, num_frames: int) -> None:
        expected = (self.proj.in_channels, num_frames, *self.img_size)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected a video tensor (B, C, T, H, W) = (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tubelet_embed(x, self.proj).flatten(2, 3)


def select_visible(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the tokens where ``mask`` is False (True = masked out); every sample must keep as many."""
    if mask.dtype != torch.bool or mask.shape != x.shape[:2]:
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(x.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}"
        )
    visible = (~mask).sum(1)
    if (visible != visible[0]).any():
        raise ValueError(f"every sample must keep the same number of tokens, got {visible.tolist()}")
    return x[~mask].reshape(x.shape[0], -1, x.shape[-1])


def infer_grid(num_tokens: int, grid: tuple[int, int, int], key: str = "pos_embed") -> tuple[int, int, int]:
    """The ``(T, H, W)`` grid a saved table of ``num_tokens`` patch rows was made for.

    Tried in order: same image size (other frame count), same frame count (square image), and the
    frame counts the released models were trained with (8 single-modality, 4 CLIP/stage-2).
    """
    grid_t, grid_h, grid_w = grid
    if grid_t > 1 and grid_h == grid_w == 1:  # a separable temporal table
        return (num_tokens, 1, 1)
    if num_tokens % (grid_h * grid_w) == 0:
        return (num_tokens // (grid_h * grid_w), grid_h, grid_w)
    for frames in (grid_t, 8, 4, 16, 1):
        side = math.isqrt(num_tokens // frames)
        if num_tokens % frames == 0 and side > 1 and side * side * frames == num_tokens:
            return (frames, side, side)
    raise ValueError(
        f"{key}: cannot tell which (T, H, W) grid {num_tokens} position rows belong to (model: {grid})"
    )


class InternVideo2Encoder(nn.Module):
    """Patch embedding, position embedding, ``depth`` blocks and the ``clip_projector`` pool.

    The keyword arguments are the original's (``InternVideo2/single_modality/models``), with the
    same defaults (the 1B configuration, flags on). ``fused_mlp_heuristic`` only tunes flash-attn's
    cuBLASLt kernel choice and ``head_drop_path_rate`` is constructed but never applied by the
    original; both are accepted for compatibility and have no effect.
    """

    def __init__(
        self,
        in_chans: int = 3,
        patch_size: int = 14,
        img_size: int = 224,
        qkv_bias: bool = False,
        drop_path_rate: float = 0.25,
        embed_dim: int = 1408,
        head_drop_path_rate: float = 0.0,
        num_heads: int = 16,
        mlp_ratio: float = 4.3637,
        init_values: float = 1e-5,
        qk_normalization: bool = True,
        depth: int = 40,
        use_flash_attn: bool = True,
        use_fused_rmsnorm: bool = True,
        use_fused_mlp: bool = True,
        fused_mlp_heuristic: int = 1,
        attn_pool_num_heads: int = 16,
        clip_embed_dim: int = 768,
        layerscale_no_force_fp32: bool = False,
        num_frames: int = 8,
        tubelet_size: int = 1,
        sep_pos_embed: bool = False,
        use_checkpoint: bool = False,
        checkpoint_num: int = 0,
    ):
        super().__init__()
        self.fused = check_fused_flags(use_flash_attn, use_fused_rmsnorm, use_fused_mlp)
        self.embed_dim = embed_dim
        self.clip_embed_dim = clip_embed_dim
        self.depth = depth
        self.num_frames = num_frames
        self.tubelet_size = tubelet_size
        self.sep_pos_embed = sep_pos_embed
        self.patch_embed = PatchEmbed3D(img_size, patch_size, in_chans, embed_dim, num_frames, tubelet_size)
        self.grid_size = self.patch_embed.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self._make_pos_embed()
        self.register_load_state_dict_pre_hook(self._resize_pos_tables_on_load)
        self.blocks = make_blocks(
            depth,
            embed_dim,
            num_heads,
            mlp_ratio,
            drop_path_rate,
            use_checkpoint,
            checkpoint_num,
            layerscale_no_force_fp32,
            qkv_bias=qkv_bias,
            qk_normalization=qk_normalization,
            init_values=init_values,
            use_flash_attn=use_flash_attn,
            use_fused_rmsnorm=use_fused_rmsnorm,
            use_fused_mlp=use_fused_mlp,
        )
        self.clip_projector = AttentionPoolingBlock(embed_dim, attn_pool_num_heads, out_dim=clip_embed_dim)

    # ----------------------------------------------------------------- position embeddings
    def _make_pos_embed(self, prefix: str = "", cls_row: bool = True, image_table: bool = False) -> None:
        """Create the zero-initialised tables ``{prefix}pos_embed`` (or its separable parts).

        ``cls_row=False`` leaves out the class-token row (``mae_pos_embed``); ``image_table`` adds a
        single-frame ``{prefix}img_pos_embed`` (the multi-modality ``sep_image_video_pos_embed``).
        """
        grid_t, grid_h, grid_w = self.grid_size
        dim, extra = self.embed_dim, int(cls_row)
        if self.sep_pos_embed:
            if image_table:
                raise ValueError("sep_pos_embed has no separate image table (sep_image_video_pos_embed)")
            setattr(self, f"{prefix}pos_embed_spatial", nn.Parameter(torch.zeros(1, grid_h * grid_w, dim)))
            setattr(self, f"{prefix}pos_embed_temporal", nn.Parameter(torch.zeros(1, grid_t, dim)))
            if cls_row:
                setattr(self, f"{prefix}pos_embed_cls", nn.Parameter(torch.zeros(1, 1, dim)))
            return
        setattr(
            self,
            f"{prefix}pos_embed",
            nn.Parameter(torch.zeros(1, extra + self.patch_embed.num_patches, dim)),
        )
        if image_table:
            setattr(
                self, f"{prefix}img_pos_embed", nn.Parameter(torch.zeros(1, extra + grid_h * grid_w, dim))
            )

    def initial_pos_table(self, name: str, shape: torch.Size) -> torch.Tensor | None:
        """The sin-cos value a position parameter starts from (``None``: it starts at zero).

        Video tables (``pos_embed``, ``clip_pos_embed``, ...) use the (T', H', W') grid, image tables
        (``img_pos_embed``, ``clip_img_pos_embed``) a single frame; tables without a class-token row
        (``mae_pos_embed``) drop the leading zero row.
        """
        grid_t, grid_h, grid_w = self.grid_size
        if name.endswith("pos_embed_spatial"):
            return sincos_pos_embed_2d(self.embed_dim, grid_h, grid_w)[None]
        if name.endswith("pos_embed_temporal"):
            return sincos_pos_embed_1d(self.embed_dim, torch.arange(grid_t))[None]
        if not name.endswith("pos_embed"):
            return None
        frames = 1 if "img_" in name else grid_t
        table = sincos_pos_embed_3d(self.embed_dim, frames, grid_h, grid_w, cls_token=True)[None]
        return table if shape[1] == table.shape[1] else table[:, 1:]

    def pos_tables(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        """``{parameter name: (class-token rows, grid)}`` for every position table of this model."""
        grid_t, grid_h, grid_w = self.grid_size
        out = {}
        for name, param in self.named_parameters():
            if name.endswith("pos_embed_spatial"):
                out[name] = (0, (1, grid_h, grid_w))
            elif name.endswith("pos_embed_temporal"):
                out[name] = (0, (grid_t, 1, 1))
            elif name.endswith("pos_embed"):
                grid = (1 if "img_" in name else grid_t, grid_h, grid_w)
                out[name] = (param.shape[1] - math.prod(grid), grid)
        return out

    @staticmethod
    def _joint_table(spatial: torch.Tensor, temporal: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        """Separable tables -> one ``(1, [1 +] T * HW, D)`` table (each frame gets spatial + temporal)."""
        table = (temporal[:, :, None, :] + spatial[:, None, :, :]).flatten(1, 2)
        return table if cls is None else torch.cat([cls, table], dim=1)

    def pos_embed_table(self, prefix: str = "", use_image: bool = False) -> torch.Tensor:
        """The ``(1, [1 +] N, D)`` table added to the tokens (``prefix`` picks e.g. the ``clip_`` tables).

        ``use_image`` gives the single-frame table: ``{prefix}img_pos_embed`` when the model has one,
        the spatial table for separable embeddings, else the mean over time of the video table --
        what the original does for images in each case.
        """
        if use_image and hasattr(self, f"{prefix}img_pos_embed"):
            return getattr(self, f"{prefix}img_pos_embed")
        if self.sep_pos_embed and use_image:  # the original: the spatial table alone, no temporal term
            cls = getattr(self, f"{prefix}pos_embed_cls", None)
            spatial = getattr(self, f"{prefix}pos_embed_spatial")
            return spatial if cls is None else torch.cat([cls, spatial], dim=1)
        if self.sep_pos_embed:
            table = self._joint_table(
                getattr(self, f"{prefix}pos_embed_spatial"),
                getattr(self, f"{prefix}pos_embed_temporal"),
                getattr(self, f"{prefix}pos_embed_cls", None),
            )
        else:
            table = getattr(self, f"{prefix}pos_embed")
        if not use_image:
            return table
        extra = table.shape[1] - self.patch_embed.num_patches
        frames = table[:, extra:].reshape(1, self.grid_size[0], -1, table.shape[-1]).mean(1)
        return torch.cat([table[:, :extra], frames], dim=1)

    def _resize_pos_tables_on_load(self, module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
        """``load_state_dict`` pre-hook: resample position tables saved for another frame count or size.

        The saved grid is inferred from the token count (see :func:`infer_grid`), so that loading an
        8-frame 224-px checkpoint into a 16-frame or 336-px model works through plain
        ``load_state_dict`` and timm's ``checkpoint_path`` route alike.
        """
        for name, (extra, grid) in self.pos_tables().items():
            key = prefix + name
            value = state_dict.get(key)
            if value is None or value.dim() != 3 or value.shape[1] == extra + math.prod(grid):
                continue
            old_grid = infer_grid(value.shape[1] - extra, grid, key)
            state_dict[key] = interpolate_pos_embed(value, extra, old_grid, grid)

    # ----------------------------------------------------------------- initialisation
    def init_weights(self) -> None:
        """The original's initialisation: sin-cos tables, trunc-normal(0.02) linears, depth-scaled outputs."""
        for name, param in self.named_parameters():
            table = self.initial_pos_table(name, param.shape)
            if table is not None:
                param.data.copy_(table)
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_vit_weights)
        rescale_residual_branches(self.blocks)

    # ----------------------------------------------------------------- forward pieces
    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embed.proj.weight.dtype

    def embed(self, x: torch.Tensor, use_image: bool = False) -> torch.Tensor:
        """Video ``(B, C, T, H, W)`` (``T = 1`` when ``use_image``) -> ``(B, 1 + N, D)`` tokens."""
        if use_image and self.tubelet_size != 1:
            raise ValueError(f"single images need tubelet_size 1, this model has {self.tubelet_size}")
        self.patch_embed.check_input(x, 1 if use_image else self.num_frames)
        x = self.patch_embed(x.type(self.dtype)).flatten(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed_table(use_image=use_image)

    def forward(self, x: torch.Tensor, use_image: bool = False) -> torch.Tensor:
        """Pooled clip embedding ``(B, clip_embed_dim)``: the multi-modality CLIP vision encoder."""
        return self.clip_projector(self.run_blocks(self.embed(x, use_image=use_image))[0])

    def run_blocks(
        self, x: torch.Tensor, return_index: Iterable[int] = (), stop_after: int | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the blocks; return the final hidden state and those after the blocks in ``return_index``.

        Intermediate states come in block order. ``stop_after`` ends after that block index.
        """
        wanted = set(return_index)
        intermediates = []
        residual = None
        for index, block in enumerate(self.blocks):
            x, residual = block(x, residual)
            if index in wanted:
                intermediates.append(merge_residual(x, residual))
            if index == stop_after:
                break
        return merge_residual(x, residual), intermediates

    # ----------------------------------------------------------------- training helpers
    def get_num_layers(self) -> int:
        return len(self.blocks)

    def get_layer_id(self, name: str) -> int:
        """Layer id of a parameter for layer-wise lr decay, as the original's ``get_num_layer_for_vit``.

        ``cls_token``/``pos_embed*``/``patch_embed.*`` -> 0, ``blocks.i.*`` -> ``i + 1``, everything
        else -> ``get_num_layers() + 1``.
        """
        if name in ("cls_token", "mask_token") or name.startswith(("pos_embed", "patch_embed")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.get_num_layers() + 1

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's layer grouping (``timm.optim.param_groups_layer_decay``): the ids of :meth:`get_layer_id`.

        Every parameter after the blocks (pooling, heads, decoders) falls in one last group, so layer
        decay gives it the scale ``decay ** 0``.
        """
        return {
            "stem": r"^cls_token$|^mask_token$|^pos_embed|^patch_embed",
            "blocks": r"^blocks\.(\d+)",
            "head": r".",
        }

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """The class token and every position table (``pos_embed*``, ``clip_pos_embed``, ...)."""
        return {"cls_token", *(name for name, _ in self.named_parameters() if "pos_embed" in name)}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for block in self.blocks:
            block.with_cp = enable
