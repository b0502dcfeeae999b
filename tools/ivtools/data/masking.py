"""Token masks for masked video modelling (VideoMAE-style), shared by every generation.

Stable API (other generations build on it; extend, don't change):

* ``TubeMaskGenerator(window, mask_ratio)`` -- the original's ``tube`` / ``t_consist`` masking:
  one random spatial pattern of ``int(mask_ratio * H * W)`` positions repeated in every frame;
* ``RandomMaskGenerator(window, mask_ratio)`` -- the original's ``random`` masking:
  ``int(mask_ratio * T * H * W)`` positions anywhere in the clip;
* ``build_mask_generator(name, window, mask_ratio)`` -- one of the above by name
  (``"tube"``, ``"t_consist"``, ``"random"``; :data:`MASK_GENERATORS`).

``window`` is the token grid ``(T, H, W)`` (frames / tubelet, height / patch, width / patch) and
``mask_ratio`` is in ``[0, 1)``. Both generators expose ``num_tokens`` and ``num_masked`` and, when
called with an optional ``numpy.random.Generator``, return a 1-D bool array of ``T * H * W``
entries in time-major ``(t, h, w)`` order, True = masked (hidden from the encoder). Counts are
exact and truncate (``int(ratio * n)``) as the original, so a ratio never rounds up and every draw
of a generator masks the same number of tokens (batches stack without padding). Without an
``rng`` a fresh one is seeded from numpy's global state, so ``np.random.seed`` (and data-loader
worker seeding) makes draws reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Window = tuple[int, int, int]


def check_mask_ratio(mask_ratio: float) -> float:
    """``mask_ratio`` as a float, or ValueError if it is outside ``[0, 1)``."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return float(mask_ratio)


def check_window(window: Sequence[int]) -> Window:
    """``window`` as three positive ints ``(T, H, W)``, or ValueError naming it."""
    if len(window) != 3 or any(int(s) <= 0 for s in window):
        raise ValueError(f"window must be (frames, height, width) in tokens, got {tuple(window)}")
    frames, height, width = (int(s) for s in window)
    return frames, height, width


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))


def _choose(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:k]] = True
    return mask


class TubeMaskGenerator:
    """The same ``int(ratio * H * W)`` masked positions in every one of ``T`` token frames."""

    def __init__(self, window: Sequence[int], mask_ratio: float):
        ratio = check_mask_ratio(mask_ratio)
        self.frames, self.height, self.width = check_window(window)
        self.per_frame = self.height * self.width
        self.masked_per_frame = int(ratio * self.per_frame)
        self.num_tokens = self.frames * self.per_frame
        self.num_masked = self.frames * self.masked_per_frame

    def __repr__(self) -> str:
        return f"TubeMaskGenerator({self.num_tokens} tokens, {self.num_masked} masked)"

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.tile(_choose(self.per_frame, self.masked_per_frame, _rng(rng)), self.frames)


class RandomMaskGenerator:
    """``int(ratio * T * H * W)`` masked positions anywhere in the clip."""

    def __init__(self, window: Sequence[int], mask_ratio: float):
        ratio = check_mask_ratio(mask_ratio)
        self.num_tokens = math.prod(check_window(window))
        self.num_masked = int(ratio * self.num_tokens)

    def __repr__(self) -> str:
        return f"RandomMaskGenerator({self.num_tokens} tokens, {self.num_masked} masked)"

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        return _choose(self.num_tokens, self.num_masked, _rng(rng))


MASK_GENERATORS = {"tube": TubeMaskGenerator, "t_consist": TubeMaskGenerator, "random": RandomMaskGenerator}


def build_mask_generator(name: str, window: Sequence[int], mask_ratio: float):
    """The generator registered as ``name`` in :data:`MASK_GENERATORS`."""
    if name not in MASK_GENERATORS:
        raise ValueError(f"mask type must be one of {sorted(MASK_GENERATORS)}, got {name!r}")
    return MASK_GENERATORS[name](window, mask_ratio)
