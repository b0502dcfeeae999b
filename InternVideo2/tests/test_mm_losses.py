"""Stage-2 losses against naive references and hand-computed values."""

import math

import pytest
import torch

from internvideo2.mm.losses import mask_tokens, sample_negatives, similarity, vtc_loss
from internvideo2.models.internvideo2_stage2 import random_token_mask


def naive_vtc(vision, text, idx, temp):
    """Per-row loops: cross-entropy against a uniform target over same-idx pairs, both directions."""
    v = [x / x.norm() for x in vision]
    t = [x / x.norm() for x in text]
    n = len(v)
    total = 0.0
    for direction in ("v2t", "t2v"):
        for i in range(n):
            logits = [
                float((v[i] @ t[j]) / temp) if direction == "v2t" else float((t[i] @ v[j]) / temp)
                for j in range(n)
            ]
            log_z = math.log(sum(math.exp(x) for x in logits))
            positives = [j for j in range(n) if idx[j] == idx[i]]
            total += -sum(logits[j] - log_z for j in positives) / len(positives) / n
    return total / 2


@pytest.mark.parametrize("idx", [[0, 1, 2, 3, 4], [0, 1, 1, 2, 0]])
def test_vtc_matches_naive_reference(idx):
    vision, text = torch.randn(5, 8), torch.randn(5, 8)
    got = vtc_loss(vision, text, torch.tensor(idx), temp=0.07)
    assert got.item() == pytest.approx(naive_vtc(vision, text, idx, 0.07), rel=1e-5)


def test_vtc_hand_computed_two_pairs():
    # Orthogonal unit embeddings: each row's logits are (1/T, 0) -> loss = log(1 + e^{-1/T}).
    vision = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    text = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    assert vtc_loss(vision, text, None, temp=0.5).item() == pytest.approx(
        math.log(1 + math.exp(-2)), rel=1e-6
    )


def test_similarity_aggregates_frames():
    vision, text = torch.randn(3, 4, 8), torch.randn(5, 8)
    v2t, t2v = similarity(vision, text, temp=2.0, agg="max")
    vn, tn = vision / vision.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    expected = torch.stack([torch.stack([(vn[i] @ tn[j]).max() / 2.0 for j in range(5)]) for i in range(3)])
    torch.testing.assert_close(v2t, expected)
    torch.testing.assert_close(t2v, expected.T)


def test_hard_negatives_never_pick_positives_and_follow_similarity():
    idx = torch.tensor([0, 0, 1, 2])
    sim = torch.tensor(
        [[5.0, 5.0, 0.0, 4.0], [5.0, 5.0, 0.0, 4.0], [0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 9.0, 5.0]]
    )
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(4, 4)
    for _ in range(300):
        video_neg, text_neg = sample_negatives(sim, idx, hard=True, generator=gen)
        counts[torch.arange(4), text_neg] += 1
        same = idx[video_neg] == idx
        assert not same.any() and not (idx[text_neg] == idx).any()
    # Video 3's negatives are texts 0..2 with softmax weights e^0, e^0, e^9: text 2 dominates.
    assert counts[3, 2] > 280
    with pytest.raises(ValueError, match="only positives"):
        sample_negatives(sim, torch.zeros(4, dtype=torch.long))


def test_mask_tokens_rates_and_specials():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (200, 50))
    ids[:, 0], ids[:, -5:] = 101, 0  # [CLS] and padding are never picked
    masked, labels = mask_tokens(ids, 1000, 103, [0, 101], prob=0.5, generator=gen)
    picked = labels != -100
    assert not picked[:, 0].any() and not picked[:, -5:].any()
    assert torch.equal(labels[picked], ids[picked])
    rate = picked[:, 1:-5].float().mean().item()
    assert rate == pytest.approx(0.5, abs=0.02)
    to_mask = (masked == 103) & picked
    assert to_mask.sum().item() / picked.sum().item() == pytest.approx(0.8, abs=0.02)
    assert torch.equal(masked[~picked], ids[~picked])


def test_random_token_mask_counts():
    mask = random_token_mask(3, 16, 0.75)
    assert mask.shape == (3, 17) and not mask[:, 0].any()
    assert mask.sum(1).tolist() == [12, 12, 12]
