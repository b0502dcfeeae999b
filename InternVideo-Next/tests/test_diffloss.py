"""The diffusion loss against a hand-written reference of the forward noising and the hybrid loss."""

import math

import numpy as np
import torch

from internvideo_next.models import DiffLoss, cosine_betas


def test_cosine_schedule_hand_values():
    betas = cosine_betas(1000)
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert len(betas) == 1000
    assert betas[0] == 1 - f(0.001) / f(0.0)
    assert betas[500] == 1 - f(0.501) / f(0.5)
    assert betas[-1] == 0.999  # capped: alpha_bar(1) = cos(pi/2)^2 ~ 0


def _reference_loss(net, x0, t, noise, z, betas):
    """Improved-DDPM hybrid loss written out in float64 NumPy for each sample."""
    alphas_cumprod = np.cumprod(1 - betas)
    losses = []
    for i in range(x0.shape[0]):
        ti = int(t[i])
        ab = alphas_cumprod[ti]
        ab_prev = alphas_cumprod[ti - 1] if ti > 0 else 1.0
        x_t = math.sqrt(ab) * x0[i].double() + math.sqrt(1 - ab) * noise[i].double()
        out = net(x_t.float()[None], t[i : i + 1], z[i : i + 1])[0].double()
        eps, v = out[: x0.shape[1]], out[x0.shape[1] :]
        mse = ((noise[i].double() - eps) ** 2).mean()
        post_var = betas[ti] * (1 - ab_prev) / (1 - ab)
        post_var_t1 = betas[1] * (1 - alphas_cumprod[0]) / (1 - alphas_cumprod[1])
        min_log = math.log(post_var if ti > 0 else post_var_t1)
        log_var = (v + 1) / 2 * math.log(betas[ti]) + (1 - (v + 1) / 2) * min_log
        coef1 = betas[ti] * math.sqrt(ab_prev) / (1 - ab)
        coef2 = (1 - ab_prev) * math.sqrt(1 - betas[ti]) / (1 - ab)
        x0_hat = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        mean_model = coef1 * x0_hat + coef2 * x_t
        mean_true = coef1 * x0[i].double() + coef2 * x_t
        kl = 0.5 * (
            -1
            + log_var
            - min_log
            + math.exp(min_log) * torch.exp(-log_var)
            + (mean_true - mean_model) ** 2 * torch.exp(-log_var)
        )
        assert ti > 0  # the decoder-NLL branch is not exercised here
        losses.append(mse + kl.mean() / math.log(2.0))
    return torch.stack(losses).mean()


def test_training_loss_matches_hand_reference_for_fixed_draw():
    torch.manual_seed(0)
    loss_fn = DiffLoss(target_channels=6, z_channels=5, depth=2, width=16)
    for p in loss_fn.parameters():  # leave the zero init so that eps and variance outputs are non-trivial
        torch.nn.init.normal_(p, std=0.3)
    x0, z = torch.randn(4, 6), torch.randn(4, 5)
    t, noise = torch.tensor([1, 250, 600, 999]), torch.randn(4, 6)
    got = loss_fn(x0, z, t=t, noise=noise)
    want = _reference_loss(loss_fn.net, x0, t, noise, z, loss_fn.diffusion.betas)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)


def test_forward_noising_is_the_closed_form():
    loss_fn = DiffLoss(target_channels=3, z_channels=2, depth=1, width=8)
    x0, noise, t = torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 700])
    ab = np.cumprod(1 - cosine_betas(1000))
    got = loss_fn.diffusion.q_sample(x0, t, noise)
    for i, ti in enumerate(t.tolist()):
        want = math.sqrt(ab[ti]) * x0[i] + math.sqrt(1 - ab[ti]) * noise[i]
        torch.testing.assert_close(got[i], want)


def test_zero_initialised_denoiser_gives_unit_mse_and_mean_grad_flows():
    loss_fn = DiffLoss(target_channels=4, z_channels=3, depth=2, width=8)
    x0, z = torch.randn(64, 4), torch.randn(64, 3, requires_grad=True)
    terms = loss_fn.diffusion.training_losses(loss_fn.net, x0, torch.full((64,), 10), torch.ones(64, 4), c=z)
    torch.testing.assert_close(terms["mse"], torch.ones(64))  # eps_hat = 0 at init: mse = |noise|^2 / C
    loss_fn(x0, z).backward()
    assert loss_fn.net.final_layer.linear.weight.grad.abs().sum() > 0
