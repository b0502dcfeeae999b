"""Retrieval recalls against hand-computed values and a brute-force reference."""

import pytest
import torch

from internvideo2.mm.retrieval import dual_softmax, multiple_choice_accuracy, retrieval_metrics, target_ranks


def brute_force_rank(row, targets):
    """Rank = how many candidates beat the best target (higher score, or equal score and lower index)."""
    best = None
    for t in targets:
        rank = sum(1 for j, s in enumerate(row) if s > row[t] or (s == row[t] and j < t))
        best = rank if best is None else min(best, rank)
    return best


def test_hand_computed_recalls_many_captions_per_video():
    # 2 videos, 4 captions: video 0 owns captions 0, 1; video 1 owns 2, 3.
    sim = torch.tensor([[0.1, 0.9, 0.5, 0.2], [0.8, 0.1, 0.3, 0.7]])
    txt2vid, vid2txt = [0, 0, 1, 1], [[0, 1], [2, 3]]
    m = retrieval_metrics(sim, sim.T, txt2vid, vid2txt)
    # v2t: video 0 ranks caption 1 first (rank 0); video 1 ranks 0, 3, 2: best own caption at rank 1.
    assert m["v2t_r1"] == pytest.approx(50.0) and m["v2t_r5"] == pytest.approx(100.0)
    # t2v: caption 0 -> video 1 first (miss), 1 -> 0 (hit), 2 -> 1 (0.3 < 0.5: miss), 3 -> 1 (hit).
    assert m["t2v_r1"] == pytest.approx(50.0)
    assert m["t2v_medr"] == pytest.approx(1.5) and m["t2v_meanr"] == pytest.approx(1.5)
    assert m["v2t_medr"] == pytest.approx(1.5)
    assert m["r_mean"] == pytest.approx((m["v2t_r_mean"] + m["t2v_r_mean"]) / 2)
    assert m["v2t_r_mean"] == pytest.approx((50 + 100 + 100) / 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_ranks_match_brute_force_with_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    num_videos, caps = 30, 3
    sim = torch.randint(0, 6, (num_videos, num_videos * caps), generator=gen).float()  # many ties
    vid2txt = [list(range(v * caps, (v + 1) * caps)) for v in range(num_videos)]
    txt2vid = [t // caps for t in range(num_videos * caps)]
    v2t = target_ranks(sim, vid2txt)
    t2v = target_ranks(sim.T, [[v] for v in txt2vid])
    assert v2t.tolist() == [brute_force_rank(sim[v].tolist(), vid2txt[v]) for v in range(num_videos)]
    assert t2v.tolist() == [brute_force_rank(sim[:, t].tolist(), [txt2vid[t]]) for t in range(len(txt2vid))]
    m = retrieval_metrics(sim, sim.T, txt2vid, vid2txt)
    for k in (1, 5, 10):
        assert m[f"v2t_r{k}"] == pytest.approx(100.0 * sum(r < k for r in v2t.tolist()) / num_videos)
        assert m[f"t2v_r{k}"] == pytest.approx(100.0 * sum(r < k for r in t2v.tolist()) / len(txt2vid))


def test_dual_softmax_formula():
    sim = torch.randn(3, 4)
    v2t, t2v = dual_softmax(sim)
    col = sim.exp() / sim.exp().sum(0, keepdim=True)
    torch.testing.assert_close(v2t, sim * col)
    row = sim.T.exp() / sim.T.exp().sum(0, keepdim=True)
    torch.testing.assert_close(t2v, sim.T * row)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="target lists"):
        target_ranks(torch.zeros(2, 2), [[0]])
    with pytest.raises(ValueError, match="no ground-truth"):
        target_ranks(torch.zeros(1, 2), [[]])


def test_multiple_choice_accuracy_hand_computed():
    # Two videos with three options each; video 0 picks option 2 (right), video 1 option 0 (wrong).
    sim = torch.tensor([[0.1, 0.2, 0.9, 0, 0, 0], [0, 0, 0, 0.8, 0.5, 0.1]])
    assert multiple_choice_accuracy(sim, [[0, 1, 2], [3, 4, 5]], [2, 1]) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="answer"):
        multiple_choice_accuracy(sim, [[0, 1, 2], [3, 4, 5]], [2, None])
