"""HiCo token merging against a hand-written loop reference and hand-computed cases."""

import pytest
import torch

from internvideo2_5.models.hico import compress_frames, merge_schedule, merge_tokens


def reference_merge(x, target, num_heads):
    """Plain-loop ToMe rounds on one sequence (T, C): the released model's merging, written naively."""
    tokens = [row.clone() for row in x]
    sizes = [1.0] * len(tokens)
    while len(tokens) > target:
        r = min(len(tokens) - target, len(tokens) // 2)
        metric = [t.reshape(num_heads, -1).mean(0) for t in tokens]
        a_idx, b_idx = list(range(0, len(tokens), 2)), list(range(1, len(tokens), 2))
        best = []
        for i in a_idx:
            sims = [float(torch.nn.functional.cosine_similarity(metric[i], metric[j], dim=0)) for j in b_idx]
            k = max(range(len(sims)), key=lambda n: sims[n])
            best.append((sims[k], i, b_idx[k]))
        order = sorted(range(len(best)), key=lambda n: -best[n][0])
        merged, kept = order[:r], order[r:]
        b_val = {j: tokens[j] * sizes[j] for j in b_idx}
        b_size = {j: sizes[j] for j in b_idx}
        for n in merged:
            _, i, j = best[n]
            b_val[j] = b_val[j] + tokens[i] * sizes[i]
            b_size[j] += sizes[i]
        new_tokens = [tokens[best[n][1]] for n in kept] + [b_val[j] / b_size[j] for j in b_idx]
        sizes = [sizes[best[n][1]] for n in kept] + [b_size[j] for j in b_idx]
        tokens = new_tokens
    return torch.stack(tokens)


def test_merge_schedule_hand_computed():
    assert merge_schedule(1024, 64) == [512, 256, 128, 64]
    assert merge_schedule(256, 64) == [128, 64]
    assert merge_schedule(100, 64) == [36]
    assert merge_schedule(10, 3) == [5, 2]
    assert merge_schedule(8, 8) == []
    with pytest.raises(ValueError):
        merge_schedule(8, 9)


def test_one_round_by_hand():
    # A = tokens 0, 2; B = tokens 1, 3. Token 0 is parallel to token 1 (cos 1), token 2 is 45 deg
    # from token 3, so one removal folds token 0 into token 1: mean of [2, 0] and [1, 0].
    x = torch.tensor([[[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    out = merge_tokens(x, 3, num_heads=1)
    torch.testing.assert_close(out, torch.tensor([[[0.0, 1.0], [1.5, 0.0], [1.0, 1.0]]]))


@pytest.mark.parametrize("tokens,target,heads", [(16, 4, 2), (24, 7, 4), (64, 16, 1)])
def test_merge_matches_loop_reference(tokens, target, heads):
    x = torch.randn(3, tokens, 8)
    out = merge_tokens(x, target, heads)
    assert out.shape == (3, target, 8)
    for b in range(3):
        torch.testing.assert_close(out[b], reference_merge(x[b], target, heads), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frames", [4, 8, 12, 20])
def test_tokens_per_frame_exact_and_groups_independent(frames):
    tokens = torch.randn(frames, 64, 16)
    out = compress_frames(tokens, local_num_frames=4, tokens_per_frame=16, num_heads=4)
    assert out.shape == (frames, 16, 16)
    # Each group of 4 frames is merged on its own, in temporal order: compressing the groups
    # separately gives the same tokens in the same slots (order and batch independence).
    for g in range(frames // 4):
        alone = compress_frames(tokens[4 * g : 4 * g + 4], 4, 16, 4)
        torch.testing.assert_close(out[4 * g : 4 * g + 4], alone)


def test_frames_not_multiple_of_group_is_a_clear_error():
    with pytest.raises(ValueError, match="multiple of 4"):
        compress_frames(torch.randn(6, 64, 8), 4, 16, 2)
