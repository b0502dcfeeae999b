"""Video clip transforms for classification training and multi-view evaluation.

Clips arrive as ``(T, H, W, 3)`` uint8 arrays from :mod:`ivtools.video` and leave as normalised
``(3, T, H, W)`` float tensors, the layout the video models take. Geometric transforms are
torchvision's ``transforms.v2`` applied to a ``tv_tensors.Video`` (one crop for all frames);
RandAugment and random erasing are timm's, applied so that every frame of a clip receives the
same operations.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ivtools.video.sampling import spatial_crop_starts

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATION = {
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
    "nearest": v2.InterpolationMode.NEAREST,
}


def to_video_tensor(frames: np.ndarray) -> tv_tensors.Video:
    """``(T, H, W, 3)`` uint8 array → ``(T, 3, H, W)`` uint8 ``tv_tensors.Video``."""
    return tv_tensors.Video(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))


def normalize(
    video: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
):
    """``(T, 3, H, W)`` uint8 → ``(3, T, H, W)`` float, scaled to [0, 1] and standardised."""
    video = video.as_subclass(torch.Tensor).float().div_(255.0)
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return ((video - mean_t) / std_t).permute(1, 0, 2, 3).contiguous()


class VideoRandAugment:
    """timm's RandAugment (config string such as ``rand-m7-n4-mstd0.5-inc1``) on a whole clip.

    timm draws its operations from Python's and NumPy's global generators; replaying the same
    generator state for every frame gives each frame the same operations and magnitudes.
    """

    def __init__(
        self, config: str, img_size: int, mean: Sequence[float] = IMAGENET_MEAN, interpolation="bicubic"
    ):
        from timm.data.auto_augment import rand_augment_transform
        from timm.data.transforms import str_to_pil_interp

        hparams = {
            "translate_const": int(img_size * 0.45),
            "img_mean": tuple(round(255 * m) for m in mean),
            "interpolation": str_to_pil_interp(interpolation),  # timm's ops pass it on to PIL
        }
        self.transform = rand_augment_transform(config, hparams)

    def __call__(self, video: torch.Tensor) -> tv_tensors.Video:
        from PIL import Image

        py_state, np_state = random.getstate(), np.random.get_state()
        out = []
        for frame in video.as_subclass(torch.Tensor).permute(0, 2, 3, 1).numpy():
            random.setstate(py_state)
            np.random.set_state(np_state)
            out.append(np.asarray(self.transform(Image.fromarray(frame))))
        return to_video_tensor(np.stack(out))


class CubeRandomErasing:
    """timm's RandomErasing with one erased region shared by every frame of a clip.

    Folding time into channels makes timm erase the same box in all frames, with fresh random
    values per channel and frame in ``pixel`` mode (the original's ``cube`` erasing).
    """

    def __init__(self, probability: float, mode: str = "pixel", max_count: int = 1):
        from timm.data.random_erasing import RandomErasing

        self.erase = RandomErasing(probability, mode=mode, max_count=max_count, num_splits=0, device="cpu")

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        c, t, h, w = video.shape
        return self.erase(video.reshape(c * t, h, w)).reshape(c, t, h, w)


@dataclass
class TrainTransformConfig:
    input_size: int = 224
    min_scale: float = 0.08
    aspect_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True  # off for direction-sensitive sets such as SSv2
    rand_augment: str | None = "rand-m7-n4-mstd0.5-inc1"
    reprob: float = 0.25
    remode: str = "pixel"
    recount: int = 1
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


class TrainTransform:
    """Random resized crop → flip → RandAugment → normalise → random erasing, one draw per clip."""

    def __init__(self, cfg: TrainTransformConfig):
        self.cfg = cfg
        geometric = [
            v2.RandomResizedCrop(
                cfg.input_size,
                scale=(cfg.min_scale, 1.0),
                ratio=cfg.aspect_ratio,
                interpolation=_INTERPOLATION[cfg.interpolation],
                antialias=True,
            )
        ]
        if cfg.flip:
            geometric.append(v2.RandomHorizontalFlip())
        self.geometric = v2.Compose(geometric)
        self.rand_augment = (
            VideoRandAugment(cfg.rand_augment, cfg.input_size, cfg.mean, cfg.interpolation)
            if cfg.rand_augment
            else None
        )
        self.erase = CubeRandomErasing(cfg.reprob, cfg.remode, cfg.recount) if cfg.reprob > 0 else None

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        video = self.geometric(to_video_tensor(frames))
        if self.rand_augment is not None:
            video = self.rand_augment(video)
        out = normalize(video, self.cfg.mean, self.cfg.std)
        return self.erase(out) if self.erase is not None else out


class EvalTransform:
    """Resize the short side to ``short_side``, then take crop ``crop_idx`` of ``num_crops``.

    One crop is a centre crop of ``crop_size``; several crops (multi-view testing) are squares of
    ``short_side`` spread along the longer side, as the original's 3-crop test.
    """

    def __init__(
        self,
        crop_size: int = 224,
        short_side: int = 224,
        num_crops: int = 1,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self.crop_size, self.short_side, self.num_crops = crop_size, short_side, num_crops
        self.mean, self.std = tuple(mean), tuple(std)
        self.resize = v2.Resize(short_side, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)

    @property
    def output_size(self) -> int:
        return self.crop_size if self.num_crops == 1 else self.short_side

    def __call__(self, frames: np.ndarray, crop_idx: int = 0) -> torch.Tensor:
        video = self.resize(to_video_tensor(frames))
        h, w = video.shape[-2:]
        if self.num_crops == 1:
            top = spatial_crop_starts(h, self.crop_size, 1)[0]
            left = spatial_crop_starts(w, self.crop_size, 1)[0]
            video = video[..., top : top + self.crop_size, left : left + self.crop_size]
        else:
            size = self.short_side
            start = spatial_crop_starts(max(h, w), size, self.num_crops)[crop_idx]
            video = (
                video[..., start : start + size, :size] if h >= w else video[..., :size, start : start + size]
            )
        return normalize(video, self.mean, self.std)
