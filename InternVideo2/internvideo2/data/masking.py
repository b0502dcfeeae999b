"""Token masks for masked video pretraining and distillation (True = masked, hidden from the student).

Masks cover the student's patch tokens in time-major order ``(t, h, w)``; the class token is
never masked and is prepended by :func:`with_cls_column`. Three strategies, the original's
``--mask_type``:

* ``tube`` -- one spatial pattern repeated over every frame (:class:`ivtools.data.masking.TubeMaskGenerator`);
* ``random`` -- independent positions over the whole clip (:class:`ivtools.data.masking.RandomMaskGenerator`);
* ``attention`` -- per frame, the visible patches are drawn without replacement with
  probability proportional to the CLIP teacher's attention-pool weights
  (:func:`attention_guided_mask`); built in the training step, not in the dataset.

Counts are ``int(ratio * n)`` masked tokens, as the original (so a ratio never rounds up).
"""

from __future__ import annotations

import torch

from ivtools.data.masking import RandomMaskGenerator, TubeMaskGenerator, check_mask_ratio

MASK_TYPES = ("tube", "random", "attention")


def build_mask_generator(mask_type: str, window: tuple[int, int, int], mask_ratio: float):
    """The dataset-side generator for ``mask_type`` (None for ``attention``, made in the step)."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
    if mask_type == "tube":
        return TubeMaskGenerator(window, mask_ratio)
    if mask_type == "random":
        return RandomMaskGenerator(window, mask_ratio)
    check_mask_ratio(mask_ratio)
    return None


def attention_guided_mask(
    attn: torch.Tensor, batch_size: int, mask_ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mask ``(B, T * N)`` from per-frame teacher attention ``attn`` of shape ``(B * T, N)``.

    In each frame ``N - int(N * ratio)`` visible patches are drawn without replacement with
    probabilities proportional to ``attn`` (``torch.multinomial``), so patches the teacher looks
    at are more likely to stay visible; every frame keeps exactly that many.
    """
    check_mask_ratio(mask_ratio)
    if attn.ndim != 2 or attn.shape[0] % batch_size:
        raise ValueError(
            f"attn must be (batch * frames, patches) with batch {batch_size}, got {tuple(attn.shape)}"
        )
    rows, patches = attn.shape
    visible = patches - int(patches * mask_ratio)
    # float32: multinomial rejects bf16 on some devices, and tiny weights must stay positive.
    weights = attn.detach().float().clamp(min=0) + 1e-12
    keep = torch.multinomial(weights, visible, replacement=False, generator=generator)
    mask = torch.ones(rows, patches, dtype=torch.bool, device=attn.device)
    mask.scatter_(1, keep, False)
    return mask.reshape(batch_size, -1)


def with_cls_column(mask: torch.Tensor) -> torch.Tensor:
    """Prepend an always-visible class-token column: ``(B, N)`` -> ``(B, 1 + N)``."""
    return torch.cat([torch.zeros_like(mask[:, :1]), mask.bool()], dim=1)
