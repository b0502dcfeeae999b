"""The LAION aesthetic predictor plugin, with a tiny random CLIP and heads in the released layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from internvid.aesthetic import AestheticPredictor, load_predictor, make_aesthetic_scorer
from internvid.cli import main
from internvid.jsonio import RowErrors
from internvid.manifest import Clip
from internvid.plugins import PluginError
from internvid.scoring import score_clips
from ivtools.video import read_frames, uniform_indices

PROJ = 8  # the tiny CLIP's projection width (768 for ViT-L/14)
# improved-aesthetic-predictor's sac+logos+ava1-l14-linearMSE.pth, written out by hand.
RELEASED_MLP_SHAPES = {
    "layers.0.weight": (1024, 768),
    "layers.0.bias": (1024,),
    "layers.2.weight": (128, 1024),
    "layers.2.bias": (128,),
    "layers.4.weight": (64, 128),
    "layers.4.bias": (64,),
    "layers.6.weight": (16, 64),
    "layers.6.bias": (16,),
    "layers.7.weight": (1, 16),
    "layers.7.bias": (1,),
}


def mlp_state(width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the released MLP layout for ``width``-d inputs."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in RELEASED_MLP_SHAPES.items():
        shape = (shape[0], width) if key == "layers.0.weight" else shape
        state[key] = torch.randn(shape, generator=gen) / np.sqrt(shape[-1])
    return state


def numpy_mlp(state: dict[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    """The released head as plain matmuls: five affine maps, no activations (dropout off)."""
    for i in (0, 2, 4, 6, 7):
        x = x @ state[f"layers.{i}.weight"].double().numpy().T + state[f"layers.{i}.bias"].double().numpy()
    return x[:, 0]


def save_tiny_clip(folder: Path, projection_scale: float = 1.0) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tiny = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config=dict(tiny, vocab_size=64, max_position_embeddings=16, bos_token_id=0, eos_token_id=1),
        vision_config=dict(tiny, image_size=32, patch_size=8),
        projection_dim=PROJ,
    )
    torch.manual_seed(0)
    model = CLIPModel(config)
    with torch.no_grad():
        model.visual_projection.weight.mul_(projection_scale)
    model.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def mlp_file(tmp_path) -> Path:
    path = tmp_path / "mlp.pth"
    torch.save(mlp_state(PROJ), path)
    return path


def reference_clip_scores(clip_dir: Path, state: dict, frames: np.ndarray) -> np.ndarray:
    """Per-frame scores from transformers' full CLIPModel and the numpy head, not the plugin."""
    from transformers import CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    pixels = CLIPImageProcessor.from_pretrained(clip_dir)(images=list(frames), return_tensors="pt")[
        "pixel_values"
    ]
    with torch.no_grad():
        emb = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output).double().numpy()
    return numpy_mlp(state, emb / np.linalg.norm(emb, axis=1, keepdims=True))


def test_mlp_has_the_released_keys_and_matches_hand_written_matmuls():
    model = AestheticPredictor()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == RELEASED_MLP_SHAPES
    state = mlp_state(4)
    small = AestheticPredictor(4)
    small.load_state_dict(state)
    x = np.array([[1.0, -2.0, 0.5, 3.0], [0.0, 0.25, -1.0, 2.0]])
    got = small.eval()(torch.tensor(x, dtype=torch.float32)).squeeze(-1).detach().double().numpy()
    np.testing.assert_allclose(got, numpy_mlp(state, x), rtol=1e-5)


def test_linear_head_loads_from_its_released_keys(tmp_path):
    path = tmp_path / "sa_0_4.pth"
    torch.save({"weight": torch.tensor([[1.0, 2.0, -1.0]]), "bias": torch.tensor([0.5])}, path)
    head = load_predictor(path, embed_dim=3)
    assert head(torch.tensor([[1.0, 1.0, 1.0]])).item() == pytest.approx(2.5)  # 1 + 2 - 1 + 0.5


def test_predictor_mismatch_names_the_file_keys_and_shapes(tmp_path):
    state = mlp_state(PROJ)
    del state["layers.7.bias"]
    state["layers.2.weight"] = torch.zeros(64, 1024)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(PluginError) as info:
        load_predictor(path, embed_dim=PROJ)
    message = str(info.value)
    assert str(path) in message and "missing layers.7.bias" in message
    assert "layers.2.weight: file (64, 1024) vs model (128, 1024)" in message
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PluginError, match="cannot read aesthetic predictor .*junk.pth"):
        load_predictor(tmp_path / "junk.pth")


def test_scores_two_real_clips_like_an_independent_reference(tiny_clip, mlp_file, make_video):
    clips = [Clip("AAAAAAAAAA1", 0, 1000, "x", line=1), Clip("BBBBBBBBBB2", 0, 1000, "y", line=2)]
    # make_video draws the same drifting frames each time; different lengths give different samples.
    lengths = (12, 24)
    paths = [make_video(c.clip_path, num_frames=n) for c, n in zip(clips, lengths)]
    root = paths[0].parents[1]
    scorer = make_aesthetic_scorer(clip=str(tiny_clip), predictor=str(mlp_file), batch_size=3)
    errors = RowErrors("fail")
    scored = list(score_clips(clips, scorer, root, errors, "m.jsonl", num_frames=4, field=scorer.field))
    assert not errors.errors and [c.line for c in scored] == [1, 2]
    state = torch.load(mlp_file)
    for clip, path, length in zip(scored, paths, lengths):
        frames = read_frames(path, uniform_indices(length, 4, mode="middle"))
        expected = reference_clip_scores(tiny_clip, state, frames).mean()
        assert clip.fields["Aesthetic_Score"] == pytest.approx(expected, abs=1e-5)
    assert scored[0].fields["Aesthetic_Score"] != pytest.approx(scored[1].fields["Aesthetic_Score"])


def test_embeddings_are_l2_normalised(tiny_clip, mlp_file, tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 64, 3), dtype=np.uint8)
    tripled = save_tiny_clip(tmp_path / "clip3", projection_scale=3.0)
    plain = make_aesthetic_scorer(clip=str(tiny_clip), predictor=str(mlp_file))
    scaled = make_aesthetic_scorer(clip=str(tripled), predictor=str(mlp_file))
    np.testing.assert_allclose(scaled.score_frames(frames), plain.score_frames(frames), rtol=1e-5, atol=1e-6)
    # Without normalisation the head (affine, with biases) would see 3x inputs and score differently.
    unnormalised = numpy_mlp(torch.load(mlp_file), 3 * plain.embed(frames).double().numpy())
    assert not np.allclose(unnormalised, plain.score_frames(frames), atol=1e-3)


def test_width_mismatch_and_missing_clip_are_clear_errors(tiny_clip, tmp_path):
    wide = tmp_path / "l14.pth"
    torch.save(mlp_state(768), wide)
    with pytest.raises(PluginError, match=r"8-d AestheticPredictor.*layers\.0\.weight: file \(1024, 768\)"):
        make_aesthetic_scorer(clip=str(tiny_clip), predictor=str(wide))
    with pytest.raises(PluginError, match=f"CLIP folder {tmp_path / 'nowhere'} does not exist"):
        make_aesthetic_scorer(clip=str(tmp_path / "nowhere"), predictor=str(wide))


def test_cli_writes_aesthetic_scores_and_reports_a_corrupt_clip(
    tiny_clip, mlp_file, make_video, corrupt_videos, tmp_path, monkeypatch
):
    good = Clip("AAAAAAAAAA1", 0, 1000, "x", line=1)
    bad = Clip("BBBBBBBBBB2", 0, 1000, "y", line=2)
    make_video(good.clip_path, num_frames=8)
    (tmp_path / bad.clip_path).parent.mkdir(parents=True)
    (tmp_path / bad.clip_path).write_bytes(corrupt_videos["garbage"].read_bytes())
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(c.to_row()) + "\n" for c in (good, bad)))
    monkeypatch.setenv("INTERNVID_CLIP_DIR", str(tiny_clip))
    monkeypatch.setenv("INTERNVID_AESTHETIC_PREDICTOR", str(mlp_file))
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    args = ["score", str(manifest), str(out), "--clips-dir", str(tmp_path), "--num-frames", "2"]
    args += ["--scorer", "internvid.aesthetic:make_aesthetic_scorer", "--on-error", "reject"]
    assert main([*args, "--rejects", str(rejects)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["YoutubeID"] for r in rows] == ["AAAAAAAAAA1"] and np.isfinite(rows[0]["Aesthetic_Score"])
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejected] == [(2, "video unreadable")]
