"""The multi-frame-count / multi-resolution schedule of stage-1 pretraining under a token budget.

Candidates are every ``(frames, resolution)`` with ``frames`` in ``f1, f1+fs, ..., <= f2`` and
``resolution`` in ``r1, r1+rs, ..., <= r2`` whose token count
``tokens = frames / tubelet * (resolution / patch)^2`` lies in ``[min_tokens, max_tokens]``.
Each step draws one candidate (a pure function of ``(seed, step)``: every rank agrees and a
resumed run replays the same shapes) and a per-step batch size
``min(batch_size, max(1, batch_size * base_tokens // tokens))``, so that a step never carries more
than ``batch_size * base_tokens`` tokens (one clip of ``tokens`` at the very least).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Scale:
    frames: int
    resolution: int
    tokens: int
    batch_size: int


@dataclass(frozen=True)
class MultiScaleSchedule:
    f1: int = 4
    f2: int = 26
    fs: int = 2
    r1: int = 168
    r2: int = 280
    rs: int = 28
    patch_size: int = 14
    tubelet_size: int = 1
    base_tokens: int = 2048
    min_tokens: int = 2048
    max_tokens: int = 4096
    batch_size: int = 16
    seed: int = 0

    def tokens(self, frames: int, resolution: int) -> int:
        return (frames // self.tubelet_size) * (resolution // self.patch_size) ** 2

    def batch_for(self, tokens: int) -> int:
        return min(self.batch_size, max(1, self.batch_size * self.base_tokens // tokens))

    def candidates(self) -> list[Scale]:
        out = []
        for frames in range(self.f1, self.f2 + 1, self.fs):
            for res in range(self.r1, self.r2 + 1, self.rs):
                if frames % self.tubelet_size or res % self.patch_size:
                    continue
                tokens = self.tokens(frames, res)
                if self.min_tokens <= tokens <= self.max_tokens:
                    out.append(Scale(frames, res, tokens, self.batch_for(tokens)))
        if not out:
            raise ValueError(
                f"no (frames, resolution) in [{self.f1}..{self.f2} step {self.fs}] x "
                f"[{self.r1}..{self.r2} step {self.rs}] has {self.min_tokens}..{self.max_tokens} tokens"
            )
        return out

    def at(self, step: int) -> Scale:
        choices = self.candidates()
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return choices[int(torch.randint(len(choices), (1,), generator=g))]


def resample_clip(video: torch.Tensor, scale: Scale) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> the first ``scale.batch_size`` clips at ``scale.frames`` x ``scale.resolution``.

    Frames are picked uniformly over the loaded clip (repeating when more are asked for than
    loaded); space is resized bilinearly.
    """
    video = video[: scale.batch_size]
    b, c, t, h, w = video.shape
    index = torch.linspace(0, t - 1, scale.frames).round().long().to(video.device)
    video = video.index_select(2, index)
    if (h, w) != (scale.resolution, scale.resolution):
        frames = video.transpose(1, 2).reshape(b * scale.frames, c, h, w)
        frames = torch.nn.functional.interpolate(
            frames, size=(scale.resolution, scale.resolution), mode="bilinear", align_corners=False
        )
        video = frames.reshape(b, scale.frames, c, scale.resolution, scale.resolution).transpose(1, 2)
    return video
