"""Open-set recognition: evidential loss and uncertainty by hand, rejection on a constructed case."""

import argparse
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from torch.distributions import Dirichlet, kl_divergence

from internvideo1.downstream.metrics import macro_f1
from internvideo1.downstream.open_set import (
    add_open_set_args,
    evaluate_open_set,
    evidential_loss,
    load_feature_file,
    open_set_predict,
    run_open_set,
    train_open_set_head,
    uncertainty,
)


def test_evidential_loss_by_hand():
    logits = torch.zeros(1, 2)
    # alpha = (2, 2): expected NLL log S - log alpha_y = log 2; no KL at epoch 0.
    assert evidential_loss(logits, torch.tensor([0]), epoch=0).item() == pytest.approx(math.log(2))
    # Fully annealed: the KL acts on alpha with the true evidence removed, (1, 2).
    kl = kl_divergence(Dirichlet(torch.tensor([1.0, 2.0])), Dirichlet(torch.ones(2))).item()
    assert evidential_loss(logits, torch.tensor([0]), epoch=10).item() == pytest.approx(
        math.log(2) + kl, rel=1e-5
    )
    assert evidential_loss(logits, torch.tensor([0]), epoch=5).item() == pytest.approx(
        math.log(2) + kl / 2, rel=1e-5
    )


def test_uncertainty_by_hand():
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    np.testing.assert_allclose(uncertainty(logits, "evidential").numpy(), [2 / 4, 2 / 6], rtol=1e-6)
    np.testing.assert_allclose(uncertainty(logits, "max_softmax").numpy(), [0.5, 0.25], rtol=1e-6)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(2)
    np.testing.assert_allclose(uncertainty(logits, "entropy").numpy(), [1.0, h], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown uncertainty method"):
        uncertainty(logits, "odin")


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    expected = f1_score(truth, pred, average="macro", labels=np.arange(5), zero_division=0)
    assert macro_f1(truth, pred, 5) == pytest.approx(expected)


def test_evaluate_open_set_by_hand():
    known = torch.tensor([[5.0, 0.0], [0.0, 5.0], [4.0, 0.0], [0.0, 0.5]])  # last: known but unsure
    labels = torch.tensor([0, 1, 1, 1])  # the third is misclassified
    unknown = torch.tensor([[0.1, 0.0], [0.0, 0.0]])
    out = evaluate_open_set(known, labels, unknown, "max_softmax", threshold=0.3)
    assert out["closed_top1"] == 75.0
    # Uncertainties: known 0.0067, 0.0067, 0.018, 0.378; unknown 0.475, 0.5 -> perfect ranking.
    assert out["open_auroc"] == 100.0
    pred = open_set_predict(torch.cat([known, unknown]), 0.3, "max_softmax")
    assert pred.tolist() == [0, 1, 0, 2, 2, 2]
    # Per-class F1 with truth [0, 1, 1, 1, 2, 2]: class 0 2/3, class 1 1/2, unknown 4/5.
    assert out["open_macro_f1"] == pytest.approx(100 * (2 / 3 + 1 / 2 + 4 / 5) / 3)


def _clusters(n_per_class, centres, noise=0.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.cat([c + noise * torch.randn(n_per_class, len(c), generator=gen) for c in centres])
    labels = torch.arange(len(centres)).repeat_interleave(n_per_class)
    return feats, labels


@pytest.mark.parametrize("loss, method", [("evidential", "evidential"), ("ce", "max_softmax")])
def test_open_set_rejects_unseen_classes(loss, method):
    eye = 4.0 * torch.eye(6)
    train_x, train_y = _clusters(40, eye[:3])
    head = train_open_set_head(train_x, train_y, 3, epochs=40, lr=5e-2, loss=loss)
    test_x, test_y = _clusters(20, eye[:3], seed=1)
    # Unknown classes: other directions of feature space, which none of the known classes uses.
    unknown_x, _ = _clusters(20, eye[3:], seed=2)
    with torch.no_grad():
        out = evaluate_open_set(head(test_x), test_y, head(unknown_x), method)
    assert out["closed_top1"] > 95.0
    assert out["open_auroc"] > 90.0
    assert out["open_macro_f1"] > 70.0


def test_run_open_set_from_feature_files(tmp_path):
    eye = 4.0 * torch.eye(6)
    for name, (x, y) in {
        "train": _clusters(40, eye[:3]),
        "known": _clusters(20, eye[:3], seed=1),
        "unknown": _clusters(20, eye[3:], seed=2),
    }.items():
        np.savez(tmp_path / f"{name}.npz", features=x.numpy(), labels=y.numpy())
    args = add_open_set_args(argparse.ArgumentParser()).parse_args(
        ["--train_features", str(tmp_path / "train.npz"), "--known_features", str(tmp_path / "known.npz"),
         "--unknown_features", str(tmp_path / "unknown.npz"), "--epochs", "40", "--lr", "0.05",
         "--output_json", str(tmp_path / "out.json")]
    )  # fmt: skip
    results = run_open_set(args)
    assert results["closed_top1"] > 95.0 and results["open_auroc"] > 90.0
    assert json.loads((tmp_path / "out.json").read_text())["threshold"] == pytest.approx(results["threshold"])
    np.savez(tmp_path / "bad.npz", feats=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="needs a 2D 'features' array"):
        load_feature_file(tmp_path / "bad.npz")
