"""Token masks for masked video pretraining and distillation (True = masked, hidden from the student).

Masks cover the student's patch tokens in time-major order ``(t, h, w)``; the class token is
never masked and is prepended by :func:`with_cls_column`. Three strategies, the original's
``--mask_type``:

* ``tube`` -- one spatial pattern repeated over every frame (:class:`TubeMaskingGenerator`);
* ``random`` -- independent positions over the whole clip (:class:`RandomMaskingGenerator`);
* ``attention`` -- per frame, the visible patches are drawn without replacement with
  probability proportional to the CLIP teacher's attention-pool weights
  (:func:`attention_guided_mask`); built in the training step, not in the dataset.

Counts are ``int(ratio * n)`` masked tokens, as the original (so a ratio never rounds up).
"""

from __future__ import annotations

import numpy as np
import torch

MASK_TYPES = ("tube", "random", "attention")


def _check_ratio(mask_ratio: float) -> None:
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")


def _check_window(window: tuple[int, int, int]) -> tuple[int, int, int]:
    if len(window) != 3 or any(int(s) <= 0 for s in window):
        raise ValueError(f"window must be (frames, height, width) in tokens, got {window}")
    return tuple(int(s) for s in window)


class TubeMaskingGenerator:
    """The same ``int(ratio * H * W)`` masked positions in every one of ``T`` token frames."""

    def __init__(self, window: tuple[int, int, int], mask_ratio: float):
        _check_ratio(mask_ratio)
        self.frames, self.height, self.width = _check_window(window)
        self.per_frame = self.height * self.width
        self.masked_per_frame = int(mask_ratio * self.per_frame)

    @property
    def num_masked(self) -> int:
        return self.frames * self.masked_per_frame

    def __repr__(self) -> str:
        return f"TubeMaskingGenerator({self.frames * self.per_frame} tokens, {self.num_masked} masked)"

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng if rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))
        frame = np.zeros(self.per_frame, dtype=bool)
        frame[rng.permutation(self.per_frame)[: self.masked_per_frame]] = True
        return np.tile(frame, self.frames)


class RandomMaskingGenerator:
    """``int(ratio * T * H * W)`` masked positions anywhere in the clip."""

    def __init__(self, window: tuple[int, int, int], mask_ratio: float):
        _check_ratio(mask_ratio)
        frames, height, width = _check_window(window)
        self.num_tokens = frames * height * width
        self.num_masked = int(mask_ratio * self.num_tokens)

    def __repr__(self) -> str:
        return f"RandomMaskingGenerator({self.num_tokens} tokens, {self.num_masked} masked)"

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng if rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))
        mask = np.zeros(self.num_tokens, dtype=bool)
        mask[rng.permutation(self.num_tokens)[: self.num_masked]] = True
        return mask


def build_mask_generator(mask_type: str, window: tuple[int, int, int], mask_ratio: float):
    """The dataset-side generator for ``mask_type`` (None for ``attention``, made in the step)."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
    if mask_type == "tube":
        return TubeMaskingGenerator(window, mask_ratio)
    if mask_type == "random":
        return RandomMaskingGenerator(window, mask_ratio)
    _check_ratio(mask_ratio)
    return None


def attention_guided_mask(
    attn: torch.Tensor, batch_size: int, mask_ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mask ``(B, T * N)`` from per-frame teacher attention ``attn`` of shape ``(B * T, N)``.

    In each frame ``N - int(N * ratio)`` visible patches are drawn without replacement with
    probabilities proportional to ``attn`` (``torch.multinomial``), so patches the teacher looks
    at are more likely to stay visible; every frame keeps exactly that many.
    """
    _check_ratio(mask_ratio)
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
