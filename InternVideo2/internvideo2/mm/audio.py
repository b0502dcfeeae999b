"""Audio input of the audio-visual models: decoding to 16 kHz mono and Kaldi log-mel filterbanks.

:func:`kaldi_fbank` reproduces ``torchaudio.compliance.kaldi.fbank`` with its defaults (povey
window, pre-emphasis 0.97, DC removal, 512-point power spectrum, mel triangles in mel space from
20 Hz to Nyquist, natural log floored at float32 eps) in plain torch: torchaudio's wheels need
CUDA here. :func:`beats_input` is the original's BEATs preprocessing on top of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

FBANK_MEAN, FBANK_STD = 15.41663, 6.55582  # the original's AudioSet statistics


def load_audio(
    path: str | Path, sample_rate: int = 16000, start_sec: float = 0.0, end_sec: float | None = None
) -> torch.Tensor:
    """Mono float waveform in [-1, 1] at ``sample_rate`` from an audio or video file (PyAV/FFmpeg)."""
    import av

    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise ValueError(f"cannot open {path}: {err}") from err
    with container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise ValueError(f"{path}: the audio stream decoded to no samples")
    wave = torch.from_numpy(np.concatenate(chunks).astype(np.float32))
    first = int(start_sec * sample_rate)
    last = None if end_sec is None else int(end_sec * sample_rate)
    return wave[first:last]


def _mel(freq: torch.Tensor | float):
    return 1127.0 * (
        torch.log1p(freq / 700.0) if isinstance(freq, torch.Tensor) else math.log1p(freq / 700.0)
    )


def kaldi_mel_banks(
    num_bins: int, padded_window: int, sample_rate: float, low_freq: float = 20.0
) -> torch.Tensor:
    """``(num_bins, padded_window // 2 + 1)`` triangular filters, equally spaced in Kaldi's mel scale."""
    high_freq = sample_rate / 2
    fft_bins = padded_window // 2
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins, dtype=torch.float64)[:, None]
    left, center, right = (
        mel_low + index * delta,
        mel_low + (index + 1) * delta,
        mel_low + (index + 2) * delta,
    )
    mel = _mel(torch.arange(fft_bins, dtype=torch.float64) * (sample_rate / padded_window))[None]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).float()  # the Nyquist bin gets no weight


def kaldi_fbank(
    wave: torch.Tensor,
    num_mel_bins: int = 128,
    sample_rate: int = 16000,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
) -> torch.Tensor:
    """``(frames, num_mel_bins)`` log-mel energies of a 1-D waveform, Kaldi conventions (snip edges)."""
    if wave.dim() != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(wave.shape)}")
    size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    if wave.numel() < size:
        raise ValueError(f"waveform of {wave.numel()} samples is shorter than one {size}-sample frame")
    wave = wave.double()
    frames = wave.unfold(0, size, shift)
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - preemphasis * previous
    frames = frames * torch.hann_window(size, periodic=False, dtype=torch.float64).pow(0.85)
    padded = 1 << (size - 1).bit_length()
    spectrum = torch.fft.rfft(frames, n=padded).abs().pow(2)
    energies = spectrum.float() @ kaldi_mel_banks(num_mel_bins, padded, sample_rate).T
    return energies.clamp_min(torch.finfo(torch.float32).eps).log()


def beats_input(wave: torch.Tensor, num_mel_bins: int = 64, target_frames: int | None = 998) -> torch.Tensor:
    """The original's BEATs input: 16-bit-scaled fbank, normalised, zero-padded/cut to ``target_frames``."""
    fbank = kaldi_fbank(wave * 2**15, num_mel_bins=num_mel_bins)
    fbank = (fbank - FBANK_MEAN) / (2 * FBANK_STD)
    if target_frames is not None:
        fbank = torch.nn.functional.pad(
            fbank[:target_frames], (0, 0, 0, max(target_frames - fbank.shape[0], 0))
        )
    return fbank
