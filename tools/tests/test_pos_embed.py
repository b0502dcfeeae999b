"""interpolate_pos_embed against hand-computed values and an independent bicubic reference."""

import math

import numpy as np
import pytest
import torch

from ivtools.checkpoint import interpolate_pos_embed


def _cubic_weights(t: float, a: float = -0.75) -> list[float]:
    """Keys' cubic-convolution weights for taps at offsets -1, 0, 1, 2 (PyTorch uses a = -0.75)."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _bicubic_matrix(old: int, new: int) -> np.ndarray:
    """Row i: weights of the old samples for new sample i (half-pixel centres, edge clamping)."""
    m = np.zeros((new, old))
    for i in range(new):
        src = (i + 0.5) * old / new - 0.5
        base = math.floor(src)
        for tap, w in zip(range(base - 1, base + 3), _cubic_weights(src - base)):
            m[i, min(max(tap, 0), old - 1)] += w
    return m


def test_equal_grids_return_the_same_tensor():
    pe = torch.randn(1, 1 + 4 * 3 * 3, 8)
    assert interpolate_pos_embed(pe, 1, (4, 3, 3), (4, 3, 3)) is pe
    image = torch.randn(1, 36, 8)
    assert interpolate_pos_embed(image, 0, (6, 6), (6, 6)) is image


@pytest.mark.parametrize(
    ("extra", "old", "new", "tokens"),
    [
        (1, (8, 16, 16), (16, 16, 16), 1 + 16 * 256),
        (1, (8, 16, 16), (4, 16, 16), 1 + 4 * 256),
        (0, (8, 16, 16), (8, 20, 20), 8 * 400),
        (4, (8, 16, 16), (16, 8, 12), 4 + 16 * 96),
        (1, (14, 14), (16, 16), 1 + 256),
    ],
)
def test_shapes(extra, old, new, tokens):
    pe = torch.randn(1, extra + math.prod(old), 6)
    out = interpolate_pos_embed(pe, extra, old, new)
    assert out.shape == (1, tokens, 6)
    assert torch.equal(out[:, :extra], pe[:, :extra])


def test_time_two_to_four_is_linear_with_half_pixel_centres():
    # Frame 0 holds value a, frame 1 holds b at every position and channel (but differs per position).
    h, w, d = 2, 3, 2
    a = torch.arange(h * w * d, dtype=torch.float32).reshape(1, h * w, d)
    b = 100 + 10 * a
    cls = torch.full((1, 1, d), -7.0)
    pe = torch.cat([cls, a, b], dim=1)
    out = interpolate_pos_embed(pe, 1, (2, h, w), (4, h, w))
    frames = out[0, 1:].reshape(4, h * w, d)
    # New frame centres fall at old coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    expected = [a[0], 0.75 * a[0] + 0.25 * b[0], 0.25 * a[0] + 0.75 * b[0], b[0]]
    for got, want in zip(frames, expected):
        torch.testing.assert_close(got, want)
    assert torch.equal(out[:, :1], cls)


def test_space_matches_separable_cubic_convolution():
    old_h, old_w, new_h, new_w, t, d = 4, 5, 7, 3, 2, 3
    pe = torch.randn(1, 1 + t * old_h * old_w, d, dtype=torch.float64)
    out = interpolate_pos_embed(pe, 1, (t, old_h, old_w), (t, new_h, new_w))
    grid = pe[0, 1:].reshape(t, old_h, old_w, d).numpy()
    rows, cols = _bicubic_matrix(old_h, new_h), _bicubic_matrix(old_w, new_w)
    want = np.einsum("ih,jw,thwd->tijd", rows, cols, grid).reshape(1, t * new_h * new_w, d)
    np.testing.assert_allclose(out[:, 1:].numpy(), want, rtol=1e-12, atol=1e-12)


def test_time_then_space_on_a_separable_table():
    # value(t, h, w) = t * 1000 + h * 10 + w: both steps act on their own axis only.
    t, h, w = 2, 3, 3
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    table = (tt * 1000.0 + hh * 10.0 + ww).reshape(1, -1, 1)
    out = interpolate_pos_embed(table, 0, (t, h, w), (4, h, w)).reshape(4, h, w)
    torch.testing.assert_close(out[:, 1, 2], torch.tensor([12.0, 262.0, 762.0, 1012.0]))


def test_dtype_kept_and_bad_input_rejected():
    pe = torch.randn(1, 1 + 2 * 4, 4).bfloat16()
    assert interpolate_pos_embed(pe, 1, (2, 2, 2), (3, 2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="needs 9"):
        interpolate_pos_embed(pe[:, :-1], 1, (2, 2, 2), (3, 2, 2))
    with pytest.raises(ValueError, match=r"\[1, tokens, dim\]"):
        interpolate_pos_embed(pe[0], 1, (2, 2, 2), (3, 2, 2))
    with pytest.raises(ValueError, match="rank"):
        interpolate_pos_embed(pe, 1, (2, 2, 2), (4, 4))
    with pytest.raises(ValueError, match="positive"):
        interpolate_pos_embed(pe, 1, (2, 2, 2), (0, 2, 2))
