"""Video clip transforms for classification training and multi-view evaluation.

Clips arrive as ``(T, H, W, 3)`` uint8 arrays from :mod:`ivtools.video` and leave as normalised
``(3, T, H, W)`` float tensors, the layout the video models take. Geometric transforms are
torchvision's ``transforms.v2`` applied to a ``tv_tensors.Video`` (one crop for all frames);
RandAugment draws its operations with timm's objects and applies them to the whole clip at once,
so every frame of a clip receives the same operations; random erasing is timm's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
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
) -> torch.Tensor:
    """``(..., T, 3, H, W)`` uint8 → ``(..., 3, T, H, W)`` float, scaled to [0, 1] and standardised.

    One clip or a batch of clips, on any device. Per channel, one pass converts into the output
    layout and scales, a second shifts: Python-scalar factors need no constant tensor on the
    clip's device (no host-to-device copy), and this measured faster than one fused ``addcmul``.
    """
    src = video.as_subclass(torch.Tensor).transpose(-4, -3)
    out = torch.empty(src.shape, dtype=torch.float32, device=src.device)
    for channel, (m, s) in enumerate(zip(mean, std)):
        plane = out.select(-4, channel)
        torch.mul(src.select(-4, channel), 1.0 / (255.0 * s), out=plane)
        plane.add_(-m / s)
    return out


# Clip-level versions of timm's RandAugment ops. Each takes the ``(T, 3, H, W)`` uint8 clip and
# the arguments timm's ``AugmentOp`` drew, and reproduces the PIL function it replaces: the
# pixel-wise ops bit for bit (same lookup tables and float32 blend as Pillow), the geometric
# ones up to interpolation (torch's bicubic kernel differs slightly from Pillow's). They run on
# the clip's device (CPU in DataLoader workers, the GPU in ``DeviceAugment``) without host syncs:
# constants are built there or passed as Python scalars.
_U8 = torch.uint8


def lut_gather(video: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``_lut`` with a torch gather: works on any device (the path for GPU clips)."""
    t, c = video.shape[:2]
    return table.gather(-1, video.reshape(t, c, -1).long()).view(video.shape)


def _lut(video: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Map each frame's channel ``(t, c)`` through its own table ``table[t, c]`` of 256 values."""
    if video.device.type != "cpu":
        return lut_gather(video, table)
    # NumPy's indexing with uint8 pixels is several times faster than torch's long-index gather.
    pixels, table = video.numpy(), table.numpy()
    out = np.empty_like(pixels)
    for t, c in np.ndindex(*pixels.shape[:2]):
        out[t, c] = table[t, c][pixels[t, c]]
    return torch.from_numpy(out)


def _histograms(video: torch.Tensor) -> torch.Tensor:
    # index_add_ rather than bincount: CUDA's bincount syncs to size its output, and on the CPU
    # index_add_ measured three times faster.
    t, c = video.shape[:2]
    offsets = torch.arange(t * c, device=video.device).mul_(256).view(-1, 1)
    flat = (video.reshape(t * c, -1).long() + offsets).view(-1)
    hist = torch.zeros(t * c * 256, dtype=torch.long, device=video.device)
    return hist.index_add_(0, flat, torch.ones_like(flat)).view(t, c, 256)


def _blend(degenerate: torch.Tensor, video: torch.Tensor, factor: float) -> torch.Tensor:
    # Pillow's ImagingBlend: float32 ``in1 + alpha * (in2 - in1)``, truncated to uint8. A Python
    # scalar multiplies a float32 tensor in float32, as Pillow's float alpha does.
    first = degenerate.float()
    out = (video.float() - first).mul_(factor).add_(first)
    return out.clamp_(0, 255).to(_U8)


def _grayscale(video: torch.Tensor) -> torch.Tensor:
    # Pillow's RGB -> L: fixed-point ITU-R 601-2 luma.
    r, g, b = video.int().unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(_U8).unsqueeze(1)


def _auto_contrast(video: torch.Tensor, **_) -> torch.Tensor:
    hist = _histograms(video) > 0
    levels = torch.arange(256, dtype=torch.float64, device=video.device)
    lo = torch.where(hist, levels, 256.0).amin(-1, keepdim=True)
    hi = torch.where(hist, levels, -1.0).amax(-1, keepdim=True)
    scale = 255.0 / (hi - lo).clamp_min(1)
    table = (levels * scale - lo * scale).trunc().clamp_(0, 255)
    table = torch.where(hi <= lo, levels, table)
    return _lut(video, table.to(_U8))


def _equalize(video: torch.Tensor, **_) -> torch.Tensor:
    hist = _histograms(video)
    levels = torch.arange(256, device=video.device)
    nonzero = hist > 0
    last = torch.where(nonzero, levels, -1).amax(-1, keepdim=True)
    step = (hist.sum(-1, keepdim=True) - hist.gather(-1, last.clamp_min(0))) // 255
    before = torch.cumsum(hist, -1) - hist
    table = ((step // 2 + before) // step.clamp_min(1)).clamp_(0, 255)
    identity = (nonzero.sum(-1, keepdim=True) <= 1) | (step == 0)
    table = torch.where(identity, levels, table)
    return _lut(video, table.to(_U8))


def _invert(video: torch.Tensor, **_) -> torch.Tensor:
    return 255 - video


def _posterize(video: torch.Tensor, bits: int, **_) -> torch.Tensor:
    if bits >= 8:
        return video
    return video & (~(2 ** (8 - bits) - 1) & 0xFF)


def _solarize(video: torch.Tensor, thresh: float, **_) -> torch.Tensor:
    return torch.where(video < thresh, video, 255 - video)


def _solarize_add(video: torch.Tensor, add: int, thresh: int = 128, **_) -> torch.Tensor:
    added = (video.to(torch.int16) + add).clamp_(0, 255).to(_U8)
    return torch.where(video < thresh, added, video)


def _color(video: torch.Tensor, factor: float, **_) -> torch.Tensor:
    return _blend(_grayscale(video), video, factor)


def _contrast(video: torch.Tensor, factor: float, **_) -> torch.Tensor:
    gray = _grayscale(video).flatten(1).double().mean(1)
    mean = (gray + 0.5).floor().view(-1, 1, 1, 1)
    return _blend(mean, video, factor)


def _brightness(video: torch.Tensor, factor: float, **_) -> torch.Tensor:
    return _blend(torch.zeros((), dtype=_U8, device=video.device), video, factor)


def _sharpness(video: torch.Tensor, factor: float, **_) -> torch.Tensor:
    # Pillow's SMOOTH filter (3x3 ones with centre 5, over 13) rounds to nearest and leaves the
    # one-pixel border unfiltered; in integers: floor(sum / 13 + 1/2) = (2 sum + 13) // 26.
    x = video.to(torch.int16)
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    total = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:] + 4 * x[..., 1:-1, 1:-1]
    degenerate = video.clone()
    degenerate[..., 1:-1, 1:-1] = ((2 * total + 13) // 26).to(_U8)
    return _blend(degenerate, video, factor)


_GRID_MODE = {Image.Resampling.NEAREST: "nearest", Image.Resampling.BILINEAR: "bilinear"}


def _affine(video: torch.Tensor, matrix: Sequence[float], resample, fillcolor) -> torch.Tensor:
    """Pillow's ``Image.transform(size, AFFINE, matrix)``: output pixel centre -> input point."""
    if isinstance(resample, (list, tuple)):  # timm draws the interpolation per call
        resample = random.choice(resample)
    t, c, h, w = video.shape
    a, b, off_x, d, e, off_y = matrix
    xs = torch.arange(w, dtype=torch.float64, device=video.device).add_(0.5).view(1, w)
    ys = torch.arange(h, dtype=torch.float64, device=video.device).add_(0.5).view(h, 1)
    x_in = a * xs + b * ys + off_x
    y_in = d * xs + e * ys + off_y
    inside = (x_in >= 0) & (x_in < w) & (y_in >= 0) & (y_in < h)
    grid = torch.stack((x_in * (2 / w) - 1, y_in * (2 / h) - 1), -1).float()
    mode = _GRID_MODE.get(resample, "bicubic")
    out = torch.nn.functional.grid_sample(
        video.float(), grid.expand(t, h, w, 2), mode=mode, padding_mode="border", align_corners=False
    )
    out = out.round_().clamp_(0, 255).to(_U8)
    # One masked fill per channel with a Python scalar: no fill tensor to copy to the device.
    outside = ~inside
    fills = fillcolor if isinstance(fillcolor, Sequence) else (fillcolor,) * c
    for channel, value in enumerate(fills):
        out[:, channel].masked_fill_(outside, value)
    return out


def _shear_x(video, factor, **kw):
    return _affine(video, (1, factor, 0, 0, 1, 0), **kw)


def _shear_y(video, factor, **kw):
    return _affine(video, (1, 0, 0, factor, 1, 0), **kw)


def _translate_x_rel(video, pct, **kw):
    return _affine(video, (1, 0, pct * video.shape[-1], 0, 1, 0), **kw)


def _translate_y_rel(video, pct, **kw):
    return _affine(video, (1, 0, 0, 0, 1, pct * video.shape[-2]), **kw)


def _translate_x_abs(video, pixels, **kw):
    return _affine(video, (1, 0, pixels, 0, 1, 0), **kw)


def _translate_y_abs(video, pixels, **kw):
    return _affine(video, (1, 0, 0, 0, 1, pixels), **kw)


def _rotate(video, degrees, **kw):
    # Pillow's Image.rotate about the centre without expansion; angle 0 is an exact copy.
    if degrees % 360.0 == 0:
        return video
    h, w = video.shape[-2:]
    angle = -math.radians(degrees % 360.0)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
    cx, cy = w / 2, h / 2
    return _affine(video, (a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy), **kw)


CLIP_OPS = {
    "AutoContrast": _auto_contrast,
    "Equalize": _equalize,
    "Invert": _invert,
    "Rotate": _rotate,
    "Posterize": _posterize,
    "PosterizeIncreasing": _posterize,
    "PosterizeOriginal": _posterize,
    "Solarize": _solarize,
    "SolarizeIncreasing": _solarize,
    "SolarizeAdd": _solarize_add,
    "Color": _color,
    "ColorIncreasing": _color,
    "Contrast": _contrast,
    "ContrastIncreasing": _contrast,
    "Brightness": _brightness,
    "BrightnessIncreasing": _brightness,
    "Sharpness": _sharpness,
    "SharpnessIncreasing": _sharpness,
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x_abs,
    "TranslateY": _translate_y_abs,
    "TranslateXRel": _translate_x_rel,
    "TranslateYRel": _translate_y_rel,
}


def _per_frame(name: str):
    """timm's PIL op applied frame by frame, for ops without a clip-level version."""
    from timm.data.auto_augment import NAME_TO_OP

    pil_op = NAME_TO_OP[name]

    def apply(video: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        state = random.getstate()  # ops that draw inside (random blur radius) draw once per clip
        out = []
        # PIL needs host memory: a device clip makes the round trip (these ops are rare).
        for frame in video.permute(0, 2, 3, 1).cpu().numpy():
            random.setstate(state)
            out.append(torch.from_numpy(np.asarray(pil_op(Image.fromarray(frame), *args, **dict(kwargs)))))
        return torch.stack(out).permute(0, 3, 1, 2).contiguous().to(video.device)

    return apply


class VideoRandAugment:
    """timm's RandAugment (config string such as ``rand-m7-n4-mstd0.5-inc1``) on a whole clip.

    timm's own ``RandAugment`` and ``AugmentOp`` objects choose the operations and draw their
    probabilities and magnitudes, once per clip, from Python's and NumPy's global generators;
    each op's image function is swapped for a clip-level tensor version (see ``CLIP_OPS``), so
    every frame receives the same operations in one call.
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
        for op in self.transform.ops:
            op.aug_fn = CLIP_OPS.get(op.name) or _per_frame(op.name)

    def __call__(self, video: torch.Tensor) -> tv_tensors.Video:
        return tv_tensors.Video(self.transform(video.as_subclass(torch.Tensor)))


class CubeRandomErasing:
    """timm's RandomErasing with one erased region shared by every frame of a clip.

    Folding time into channels makes timm erase the same box in all frames, with fresh random
    values per channel and frame in ``pixel`` mode (the original's ``cube`` erasing). Takes one
    ``(C, T, H, W)`` clip or a ``(B, C, T, H, W)`` batch, which timm erases clip by clip; the
    erasing values are drawn on the video's device.
    """

    def __init__(self, probability: float, mode: str = "pixel", max_count: int = 1):
        self.probability, self.mode, self.max_count = probability, mode, max_count

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        from timm.data.random_erasing import RandomErasing

        # timm fixes the device of its erasing values at construction, and construction is cheap.
        erase = RandomErasing(
            self.probability, mode=self.mode, max_count=self.max_count, num_splits=0, device=video.device
        )
        *batch, c, t, h, w = video.shape
        return erase(video.reshape(*batch, c * t, h, w)).reshape(video.shape)


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
    # Workers stop after the flip (uint8 out); DeviceAugment does the rest on the training device.
    device_augment: bool = False


class TrainTransform:
    """Random resized crop → flip → RandAugment → normalise → random erasing, one draw per clip.

    With ``cfg.device_augment`` only the crop and flip run here and the clip leaves as a
    ``(T, 3, S, S)`` uint8 tensor, for :class:`DeviceAugment` to finish on the batch.
    """

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
        # The rest of the chain is DeviceAugment's, run here clip by clip unless it moves to the device.
        self.augment = None if cfg.device_augment else DeviceAugment(cfg)

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        video = self.geometric(to_video_tensor(frames)).as_subclass(torch.Tensor)
        return video if self.augment is None else self.augment.clip(video)


class DeviceAugment:
    """RandAugment → normalise → random erasing of :class:`TrainTransform`, on a batch anywhere.

    Takes the ``(B, T, 3, S, S)`` uint8 batch of ``device_augment`` workers on its device (CPU or
    CUDA) and returns the ``(B, 3, T, S, S)`` float batch. Clip by clip, timm's RandAugment draws
    the ops as :class:`VideoRandAugment` does, in the order the CPU path would draw them, so that
    with the same random state each clip equals :class:`TrainTransform`'s output; erasing then runs
    over the whole batch (timm erases a 4-D batch sample by sample).

    The draws come from the calling process's global generators (Python's ``random``, NumPy's and
    torch's, seeded by ``seed_everything`` and kept in checkpoints), like mixup's: the
    per-``(index, epoch)`` purity of worker-side augmentation does not extend to them (a clip's
    draws depend on the rank and on its place in the batch order).
    """

    def __init__(self, cfg: TrainTransformConfig):
        self.cfg = cfg
        self.rand_augment = (
            VideoRandAugment(cfg.rand_augment, cfg.input_size, cfg.mean, cfg.interpolation)
            if cfg.rand_augment
            else None
        )
        self.erase = CubeRandomErasing(cfg.reprob, cfg.remode, cfg.recount) if cfg.reprob > 0 else None

    def _rand_augmented(self, video: torch.Tensor) -> torch.Tensor:
        if self.rand_augment is None:
            return video
        return self.rand_augment(video).as_subclass(torch.Tensor)

    def _normalized_erased(self, video: torch.Tensor) -> torch.Tensor:
        out = normalize(video, self.cfg.mean, self.cfg.std)
        return self.erase(out) if self.erase is not None else out

    def clip(self, video: torch.Tensor) -> torch.Tensor:
        """One ``(T, 3, S, S)`` uint8 clip → ``(3, T, S, S)`` float (the worker-side path)."""
        return self._normalized_erased(self._rand_augmented(video))

    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        if videos.dim() != 5 or videos.shape[2] != 3 or videos.dtype != torch.uint8:
            raise ValueError(
                f"DeviceAugment takes a (B, T, 3, S, S) uint8 batch, got {tuple(videos.shape)} {videos.dtype}"
            )
        # The step runs under autocast; these ops are exact only in the dtypes they choose.
        with torch.autocast(videos.device.type, enabled=False):
            return self._normalized_erased(torch.stack([self._rand_augmented(video) for video in videos]))


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
