"""The clip-level RandAugment ops and the fused normalise against timm's PIL ops on real frames.

Reference: timm's own op functions (``timm.data.auto_augment``) applied frame by frame through
PIL, and a plain float64 normalisation.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import auto_augment as aa

from ivtools.data.transforms import CLIP_OPS, VideoRandAugment, normalize
from ivtools.video import read_frames

FILL = (124, 116, 104)
PIXEL_OPS = [
    ("AutoContrast", ()),
    ("Equalize", ()),
    ("Invert", ()),
    ("Posterize", (3,)),
    ("Posterize", (8,)),
    ("Solarize", (96,)),
    ("Solarize", (200.5,)),
    ("SolarizeAdd", (77,)),
    ("Color", (0.3,)),
    ("Color", (1.7,)),
    ("Contrast", (0.45,)),
    ("Contrast", (1.8,)),
    ("Brightness", (0.6,)),
    ("Brightness", (1.9,)),
    ("Sharpness", (0.2,)),
    ("Sharpness", (1.85,)),
]
GEOMETRIC_OPS = [
    ("ShearX", (0.21,)),
    ("ShearY", (-0.17,)),
    ("TranslateXRel", (0.3,)),
    ("TranslateYRel", (-0.25,)),
    ("TranslateX", (40,)),
    ("Rotate", (23.0,)),
    ("Rotate", (-11.5,)),
]


@pytest.fixture(scope="module")
def clip(real_videos) -> np.ndarray:
    """Four real frames (plus a flat one, the degenerate histogram case), cropped to 120x136."""
    # PyAV, not "auto": loading decord's bundled FFmpeg first breaks later libvpx encoding in-process.
    frames = read_frames(real_videos[0], [0, 7, 19, 33], backend="pyav")[:, :120, :136].copy()
    flat = np.full_like(frames[:1], 90)
    return np.concatenate([frames, flat])


def pil_reference(frames: np.ndarray, name: str, args, resample) -> np.ndarray:
    op = aa.NAME_TO_OP[name]
    return np.stack(
        [np.asarray(op(Image.fromarray(f), *args, fillcolor=FILL, resample=resample)) for f in frames]
    )


def clip_op(frames: np.ndarray, name: str, args, resample) -> np.ndarray:
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    out = CLIP_OPS[name](video, *args, fillcolor=FILL, resample=resample)
    return out.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize(("name", "args"), PIXEL_OPS)
def test_pixel_ops_match_pil_exactly(clip, name, args):
    expected = pil_reference(clip, name, args, Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(clip_op(clip, name, args, Image.Resampling.BICUBIC), expected)


@pytest.mark.parametrize(
    "resample", [Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC]
)
@pytest.mark.parametrize(("name", "args"), GEOMETRIC_OPS)
def test_geometric_ops_match_pil_up_to_interpolation(clip, name, args, resample):
    expected = pil_reference(clip, name, args, resample).astype(float)
    got = clip_op(clip, name, args, resample).astype(float)
    # The filled (out-of-image) region is the same up to single pixels on its edge.
    filled_pil = (expected == FILL).all(-1)
    filled_ours = (got == FILL).all(-1)
    assert (filled_pil != filled_ours).mean() < 0.001
    # measured: nearest <= 0.003, bilinear <= 0.32, bicubic <= 0.44 (torch's cubic kernel is a=-0.75)
    bound = {Image.Resampling.NEAREST: 0.05, Image.Resampling.BILINEAR: 0.4}.get(resample, 0.6)
    assert np.abs(got - expected).mean() < bound


def test_every_frame_gets_the_same_ops():
    """Identical frames stay identical, and the clip equals timm's transform of one frame."""
    frame = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    video = torch.from_numpy(np.stack([frame] * 6)).permute(0, 3, 1, 2)
    ra = VideoRandAugment("rand-m9-n4-mstd0.5-inc1", img_size=64, interpolation="bilinear")
    reference_ra = aa.rand_augment_transform("rand-m9-n4-mstd0.5-inc1", dict(ra.transform.ops[0].hparams))
    changed = 0
    for seed in range(12):
        random.seed(seed)
        np.random.seed(seed)
        out = ra(video).as_subclass(torch.Tensor).permute(0, 2, 3, 1).numpy()
        assert (out == out[:1]).all()
        random.seed(seed)
        np.random.seed(seed)
        ref = np.asarray(reference_ra(Image.fromarray(frame))).astype(float)
        assert np.abs(out[0].astype(float) - ref).mean() < 2.0
        changed += int((out[0] != frame).any())
    assert changed >= 10


def test_normalize_matches_float64_reference():
    video = torch.randint(0, 256, (3, 3, 5, 7), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ref = (
        video.double().permute(1, 0, 2, 3) / 255 - torch.tensor(mean, dtype=torch.float64).view(3, 1, 1, 1)
    ) / (torch.tensor(std, dtype=torch.float64).view(3, 1, 1, 1))
    out = normalize(video, mean, std)
    assert out.shape == (3, 3, 5, 7) and out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out.double(), ref, atol=1e-6, rtol=0)
    # hand-computed: 255 in the red channel -> (1 - 0.485) / 0.229
    assert normalize(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8))[0, 0, 0, 0].item() == pytest.approx(
        2.2489083, abs=1e-6
    )


def test_pyav_reader_skipping_nonreference_frames_is_bit_exact(real_videos):
    """Sparse reads (which skip unwanted B-frames) equal a plain sequential decode with PyAV."""
    import av

    from ivtools.video import open_video

    path = real_videos[0]
    with av.open(str(path)) as container:
        reference = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    rng = np.random.default_rng(0)
    with open_video(path, backend="pyav") as reader:
        assert len(reader) == len(reference)
        for _ in range(3):
            indices = np.sort(rng.choice(len(reference), 8, replace=False))
            got = reader.get_frames(indices)
            for frame, i in zip(got, indices):
                np.testing.assert_array_equal(frame, reference[i])
