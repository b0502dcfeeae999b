"""Video-text retrieval: dual softmax by hand, feature-level recall, end-to-end on real files."""

import argparse
import json
from pathlib import Path

import pytest
import torch

from internvideo1.downstream.retrieval import (
    add_retrieval_args,
    dual_softmax,
    retrieval_from_features,
    retrieval_from_similarity,
    run_retrieval,
)
from ivtools.video.synthetic import MOTION_CLASSES


def test_dual_softmax_by_hand():
    sim = torch.tensor([[0.9, 0.1], [0.6, 0.5]])
    e = torch.exp
    expected = torch.tensor(
        [
            [
                0.9 * e(torch.tensor(9.0)) / (e(torch.tensor(9.0)) + e(torch.tensor(6.0))),
                0.1 / (1 + e(torch.tensor(4.0))),
            ],
            [0.6 / (1 + e(torch.tensor(3.0))), 0.5 / (1 + e(torch.tensor(-4.0)))],
        ]
    )
    torch.testing.assert_close(dual_softmax(sim, 10.0, dim=0), expected)


def test_dual_softmax_fixes_a_hub_video():
    # Video 0 is a "hub": text 1 prefers it (0.6 > 0.5) although text 1 describes video 1.
    sim = torch.tensor([[0.9, 0.1], [0.6, 0.5]])
    plain = retrieval_from_similarity(sim, ks=(1,))
    dsl = retrieval_from_similarity(sim, dual_softmax_temperature=10.0, ks=(1,))
    assert plain["t2v_r1"] == 50.0 and dsl["t2v_r1"] == 100.0
    assert dsl["v2t_r1"] == 100.0 and dsl["mean_r"] == 100.0


def test_retrieval_from_features_uses_cosine():
    videos = torch.tensor([[10.0, 0.0], [0.0, 0.1]])  # scales must not matter
    texts = torch.tensor([[1.0, 0.2], [0.3, 1.0], [0.9, 0.0]])
    out = retrieval_from_features(videos, texts, text_to_video=[0, 1, 1], ks=(1,))
    assert out["t2v_r1"] == pytest.approx(200 / 3)  # the third text points at video 0
    # Video 0's closest text is the third one (cos 1.0 > 0.98), which belongs to video 1.
    assert out["v2t_r1"] == 50.0


def test_run_retrieval_on_real_videos(tmp_path, motion_dataset, make_bpe, monkeypatch):
    from internvideo1.models import viclip as vc

    monkeypatch.setitem(vc._CONFIGS, "b16", ((32, 16, 32, 1, 2, 16), (32, 2, 1)))
    rows = [line.split() for line in Path(motion_dataset["val"]).read_text().splitlines()][:5]
    entries = [{"video": p, "caption": [f"moving {MOTION_CLASSES[int(lab)]}", "a square"]} for p, lab in rows]
    (tmp_path / "test.json").write_text(json.dumps(entries))
    args = add_retrieval_args(argparse.ArgumentParser()).parse_args(
        ["--bpe_path", str(make_bpe(["a", "square", "moving", *MOTION_CLASSES])), "--test_file",
         str(tmp_path / "test.json"), "--prefix", str(motion_dataset["root"]), "--num_frames", "4",
         "--input_size", "32", "--max_txt_l", "8", "--dual_softmax", "100", "--device", "cpu",
         "--output_json", str(tmp_path / "out.json")]
    )  # fmt: skip
    results = run_retrieval(args)
    # 5 videos x 2 captions; R@10 covers every video.
    assert results["t2v_r10"] == 100.0 and results["v2t_r10"] == 100.0
    assert (results["t2v_r1"] * 10 / 100) == pytest.approx(round(results["t2v_r1"] / 10))
    assert json.loads((tmp_path / "out.json").read_text())["t2v_r5"] == results["t2v_r5"]
