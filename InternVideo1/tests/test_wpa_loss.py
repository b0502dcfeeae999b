"""The optimal-transport pieces of the word-patch alignment term (``vtm_wpa``): the IPOT plan, the
OT distance under cosine cost, and the signed batch loss with padded tokens left out."""

import itertools

import torch

from internvideo1.losses import (
    cosine_cost,
    ipot_transport_plan,
    optimal_transport_distance,
    word_patch_alignment_loss,
)


def _valid(lengths: list[int], size: int) -> torch.Tensor:
    return torch.arange(size)[None, :] < torch.tensor(lengths)[:, None]


def _distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """OT distance between two unpadded point sets ``(N, D)``."""
    valid = torch.ones(1, x.shape[0], dtype=torch.bool)
    return optimal_transport_distance(x[None], valid, y[None], valid).item()


def test_plan_marginals_are_the_uniform_masses_and_padding_gets_nothing():
    generator = torch.Generator().manual_seed(0)
    cost = 2 * torch.rand(3, 7, 5, generator=generator, dtype=torch.float64)
    x_valid, y_valid = _valid([7, 4, 2], 7), _valid([5, 3, 5], 5)
    plan = ipot_transport_plan(cost, x_valid, y_valid, iterations=300)
    mu = x_valid.double() / x_valid.sum(1, keepdim=True)
    nu = y_valid.double() / y_valid.sum(1, keepdim=True)
    torch.testing.assert_close(plan.sum(dim=2), mu, rtol=0, atol=1e-9)  # matched exactly every step
    torch.testing.assert_close(plan.sum(dim=1), nu, rtol=0, atol=1e-4)  # matched at convergence
    assert not plan[~(x_valid[:, :, None] & y_valid[:, None, :])].any()
    assert (plan >= 0).all()


def test_ipot_distance_reaches_the_exact_optimal_transport():
    """With equal sizes and uniform masses the optimum is a permutation (Birkhoff): brute force."""
    generator = torch.Generator().manual_seed(1)
    valid = torch.ones(1, 5, dtype=torch.bool)
    for _ in range(5):
        cost = 2 * torch.rand(1, 5, 5, generator=generator, dtype=torch.float64)
        exact = min(cost[0, range(5), list(p)].mean() for p in itertools.permutations(range(5)))
        # The original's 50 iterations get within 2e-3 on these costs.
        ipot = (cost * ipot_transport_plan(cost, valid, valid)).sum().item()
        assert abs(ipot - exact) < 2e-3


def test_distance_is_zero_for_the_same_points_and_grows_as_they_move_apart():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(6, 16, generator=generator)
    shuffled = x[torch.randperm(6, generator=generator)]  # the same set in another order
    assert abs(_distance(x, shuffled)) < 1e-5
    noise = torch.randn(6, 16, generator=generator)
    distances = [_distance(x, x + t * noise) for t in (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(distances, distances[1:])), distances
    # The identity matching is feasible, so the optimum is at most its mean cost.
    assert distances[3] <= cosine_cost(x[None], (x + noise)[None])[0].diagonal().mean().item() + 1e-3


def test_gradient_flows_through_the_cost_only():
    """The features' gradient is that of ``<cost, plan>`` with the plan a constant, as the original
    detaches it; letting it flow through the IPOT steps would add terms."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 8, generator=generator).requires_grad_()
    y = torch.randn(2, 6, 8, generator=generator).requires_grad_()
    x_valid, y_valid = _valid([4, 3], 4), _valid([6, 5], 6)
    grads = torch.autograd.grad(optimal_transport_distance(x, x_valid, y, y_valid).sum(), (x, y))
    cost = cosine_cost(x, y)
    plan = ipot_transport_plan(cost.detach(), x_valid, y_valid)
    expected = torch.autograd.grad((cost * plan).sum(), (x, y))
    for grad, want in zip(grads, expected):
        torch.testing.assert_close(grad, want)


def test_padded_features_do_not_change_the_distance_and_the_sign_follows_the_labels():
    generator = torch.Generator().manual_seed(4)
    text = torch.randn(3, 8, 16, generator=generator)
    video = torch.randn(3, 5, 16, generator=generator)
    text_valid, video_valid = _valid([8, 3, 5], 8), _valid([5, 5, 2], 5)
    distance = optimal_transport_distance(text, text_valid, video, video_valid)
    noisy_text = torch.where(text_valid[..., None], text, torch.randn(text.shape, generator=generator))
    noisy_video = torch.where(video_valid[..., None], video, torch.randn(video.shape, generator=generator))
    noisy = optimal_transport_distance(noisy_text, text_valid, noisy_video, video_valid)
    torch.testing.assert_close(noisy, distance)
    assert (distance > 0).all()
    # Positives add their distance, negatives subtract theirs; the sum is divided by the batch.
    loss = word_patch_alignment_loss(distance, torch.tensor([1, 0, 1]))
    torch.testing.assert_close(loss, (distance[0] - distance[1] + distance[2]) / 3)
