"""Pluggable scorers and captioners, driven by tiny models defined here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from internvid.captioning import ChatCaptioner, JoinFuser, LLMFuser, caption_clips
from internvid.jsonio import RowErrors
from internvid.manifest import Clip
from internvid.plugins import PluginError, build, load_object, parse_kwargs
from internvid.scoring import CosineScorer, as_scorer, score_clips
from ivtools.video import read_frames
from ivtools.video.synthetic import coded_frames, read_frame_code, write_video

COLOURS = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "blue": [0.0, 0.0, 1.0]}


class ColourEncoder:
    """A 'CLIP' whose video embedding is the mean RGB and whose text embedding sums colour words."""

    def encode_video(self, frames):
        return frames.reshape(-1, 3).mean(axis=0)

    def encode_text(self, texts):
        return np.array(
            [np.sum([COLOURS[w] for w in t.split() if w in COLOURS] or [[1e-3] * 3], axis=0) for t in texts]
        )


def solid(colour, num_frames=10, height=32, width=64):  # decord rejects some widths (48)
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., "rgb".index(colour[0])] = 200
    return frames


@pytest.fixture
def coloured_clips(tmp_path):
    clips = [
        Clip("AAAAAAAAAA1", 0, 1000, "a red ball", line=1),
        Clip("AAAAAAAAAA1", 1000, 2000, "a blue sky", line=2),
        Clip("BBBBBBBBBB2", 0, 1000, "red and green", line=3),
        Clip("CCCCCCCCCC3", 0, 1000, "missing file", line=4),
    ]
    for clip, colour in zip(clips[:3], ("red", "red", "green")):
        write_video(tmp_path / clip.clip_path, solid(colour), fps=10)
    return tmp_path, clips


def cosine(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_cosine_scorer_scores_each_clip_against_its_caption(coloured_clips):
    root, clips = coloured_clips
    errors = RowErrors("fail")
    scored = list(score_clips(clips, as_scorer(ColourEncoder()), root, errors, "m.jsonl", num_frames=4))
    assert [c.line for c in scored] == [1, 2, 3]
    for clip, caption_vector in zip(scored, ([1, 0, 0], [0, 0, 1], [1, 1, 0])):
        mean = read_frames(root / clip.clip_path, [0, 5, 9]).reshape(-1, 3).mean(axis=0)
        assert clip.fields["ViCLIP_Score"] == pytest.approx(cosine(mean, caption_vector), abs=1e-6)
    assert scored[0].fields["ViCLIP_Score"] > 0.99 and scored[1].fields["ViCLIP_Score"] < 0.01
    assert scored[2].fields["ViCLIP_Score"] == pytest.approx(np.sqrt(0.5), abs=0.02)  # green vs (red + green)
    assert [(e.line, e.reason.split(":")[0]) for e in errors.errors] == [(4, "video unreadable")]


def test_as_scorer_accepts_scorers_and_rejects_others():
    class Direct:
        def score(self, frames, texts):
            return [0.5] * len(texts)

    direct = Direct()
    assert as_scorer(direct) is direct
    assert isinstance(as_scorer(ColourEncoder()), CosineScorer)
    with pytest.raises(PluginError, match="is not a scorer"):
        as_scorer(object())


def test_plugins_load_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "tiny_plugin.py").write_text(
        "class Thing:\n    def __init__(self, size=1):\n        self.size = size\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert build("tiny_plugin:Thing", {"size": 3}).size == 3
    assert parse_kwargs(["n=3", "name=vit", "xs=[1, 2]", "flag=true"]) == {
        "n": 3,
        "name": "vit",
        "xs": [1, 2],
        "flag": True,
    }
    for spec, message in [
        ("tiny_plugin", "must look like"),
        ("no_such_module_xyz:f", "cannot import module"),
        ("tiny_plugin:Other", "has no attribute"),
    ]:
        with pytest.raises(PluginError, match=message):
            load_object(spec)
    with pytest.raises(PluginError, match="key=value"):
        parse_kwargs(["novalue"])


class CodeCaptioner:
    """Captions each frame with the index drawn into it (so the test sees which frames it got)."""

    def caption_frames(self, frames):
        return [f"frame {read_frame_code(f)}" for f in frames]


def test_frame_captions_are_fused_in_order(tmp_path):
    clip = Clip("AAAAAAAAAA1", 520, 1520, "old caption", {"UMT_Score": 0.3}, line=5)
    write_video(tmp_path / clip.clip_path, coded_frames(40)[13:38], fps=25)  # a 25-frame clip of codes 13..37
    errors = RowErrors("fail")
    (out,) = caption_clips(
        [clip],
        tmp_path,
        errors,
        num_frames=4,
        frame_captioner=CodeCaptioner(),
        fuser=JoinFuser(),
        keep_frame_captions=True,
    )
    # 4 equal intervals of 25 frames: [0,5] [6,11] [12,17] [18,24], middles 2, 8, 14, 21
    assert out.fields["frame_captions"] == ["frame 15", "frame 21", "frame 27", "frame 34"]
    assert out.caption == "frame 15; then frame 21; then frame 27; then frame 34"
    assert out.fields["UMT_Score"] == 0.3
    prompts = []

    def generate(prompt):
        prompts.append(prompt)
        return "  a fused caption \n"

    (out,) = caption_clips(
        [clip],
        tmp_path,
        errors,
        num_frames=2,
        frame_captioner=CodeCaptioner(),
        fuser=LLMFuser(generate),
        field="Fused",
    )
    assert "1. frame 18\n2. frame 31" in prompts[0]  # middles of [0,11] and [12,24]: 5 and 18, plus 13
    assert out.fields["Fused"] == "a fused caption" and out.caption == "old caption"


def test_repeated_frame_captions_are_joined_once():
    assert JoinFuser(" / ").fuse(["a cat", "a cat ", "a dog", "a cat"]) == "a cat / a dog / a cat"
    with pytest.raises(ValueError, match="captions"):
        LLMFuser(str, prompt="no slot")


def test_chat_captioner_and_failures(tmp_path):
    clips = [Clip("AAAAAAAAAA1", 0, 1000, "x", line=1), Clip("AAAAAAAAAA1", 1000, 2000, "y", line=2)]
    write_video(tmp_path / clips[0].clip_path, coded_frames(4), fps=4)
    write_video(tmp_path / clips[1].clip_path, coded_frames(4), fps=4)
    calls = []

    def chat(path, question, **kwargs):
        calls.append((Path(path).name, question, kwargs))
        return "" if len(calls) == 2 else "a video of stripes"

    errors = RowErrors("fail")
    captioner = ChatCaptioner(chat, question="What happens?", max_new_tokens=20)
    out = list(caption_clips(clips, tmp_path, errors, video_captioner=captioner))
    assert [c.caption for c in out] == ["a video of stripes"]
    assert calls[0] == (Path(clips[0].clip_path).name, "What happens?", {"max_new_tokens": 20})
    assert [(e.line, e.reason) for e in errors.errors] == [(2, "captioner returned an empty caption")]
    with pytest.raises(ValueError, match="video captioner"):
        list(caption_clips(clips, tmp_path, errors, frame_captioner=CodeCaptioner()))
