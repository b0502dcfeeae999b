"""The MAR-style diffusion loss head: a small AdaLN MLP denoiser trained with a Gaussian diffusion.

The objective is that of improved DDPM (``learn_sigma=True``, ``LossType.MSE``) as the original
configures it: 1000 steps of the cosine schedule ``alpha_bar(t) = cos((t + 0.008) / 1.008 * pi/2)^2``
(betas capped at 0.999), epsilon prediction, and a learned interpolated variance trained by the
variational bound with the predicted mean detached. Per sample the loss is
``mean((eps - eps_hat)^2) + vb`` where ``vb`` is the KL (in bits) between the true posterior
``q(x_{t-1} | x_t, x_0)`` and the model's Gaussian -- or, at ``t = 0``, the discretised decoder NLL.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def cosine_betas(num_steps: int = 1000, max_beta: float = 0.999) -> np.ndarray:
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array(
        [
            min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta)
            for i in range(num_steps)
        ],
        dtype=np.float64,
    )


def _gather(table: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = torch.from_numpy(table).to(like.device)[t].to(like.dtype)
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def _normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def _approx_std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def _discretized_gaussian_log_likelihood(x, means, log_scales) -> torch.Tensor:
    """Log-likelihood of ``x`` (data in [-1, 1] on a 1/255 grid) under a discretised Gaussian."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


class GaussianDiffusion:
    """Training side of a DDPM with learned-range variance (float64 schedule tables)."""

    def __init__(self, betas: np.ndarray):
        self.betas = betas
        self.num_timesteps = len(betas)
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        self.posterior_variance = betas * (1.0 - prev) / (1.0 - self.alphas_cumprod)
        # The posterior variance is 0 at t = 0: its log borrows the t = 1 value there.
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1], self.posterior_variance[1:])
        )
        self.posterior_mean_coef1 = betas * np.sqrt(prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise``."""
        return (
            _gather(self.sqrt_alphas_cumprod, t, x_start) * x_start
            + _gather(self.sqrt_one_minus_alphas_cumprod, t, x_start) * noise
        )

    def q_posterior(self, x_start, x_t, t) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (
            _gather(self.posterior_mean_coef1, t, x_t) * x_start
            + _gather(self.posterior_mean_coef2, t, x_t) * x_t
        )
        return mean, _gather(self.posterior_log_variance_clipped, t, x_t)

    def p_mean_logvar(self, eps, var_values, x_t, t) -> tuple[torch.Tensor, torch.Tensor]:
        min_log = _gather(self.posterior_log_variance_clipped, t, x_t)
        max_log = _gather(np.log(self.betas), t, x_t)
        frac = (var_values + 1) / 2  # the network's [-1, 1] output spans [posterior var, beta_t]
        log_var = frac * max_log + (1 - frac) * min_log
        x0 = (
            _gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
            - _gather(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps
        )
        mean, _ = self.q_posterior(x0, x_t, t)
        return mean, log_var

    def vb_terms_bits(self, eps, var_values, x_start, x_t, t) -> torch.Tensor:
        true_mean, true_log_var = self.q_posterior(x_start, x_t, t)
        mean, log_var = self.p_mean_logvar(eps, var_values, x_t, t)
        kl = _normal_kl(true_mean, true_log_var, mean, log_var).flatten(1).mean(1) / math.log(2.0)
        nll = -_discretized_gaussian_log_likelihood(x_start, mean, 0.5 * log_var).flatten(1).mean(
            1
        ) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(self, model, x_start, t, noise, **model_kwargs) -> dict[str, torch.Tensor]:
        """Per-sample ``{"mse", "vb", "loss"}`` for timesteps ``t`` and the given ``noise``."""
        x_t = self.q_sample(x_start, t, noise)
        out = model(x_t, t, **model_kwargs)
        eps, var_values = out.split(x_start.shape[1], dim=1)
        # The bound trains only the variance: the mean is learned from the MSE alone.
        vb = self.vb_terms_bits(eps.detach(), var_values, x_start, x_t, t)
        mse = (noise - eps).pow(2).flatten(1).mean(1)
        return {"mse": mse, "vb": vb, "loss": mse + vb}


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    """Sinusoidal timestep features (cos half first, max period 10000) -> MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        half = dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
        )
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 3 * channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(modulate(self.in_ln(x), shift, scale))


class FinalLayer(nn.Module):
    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(channels, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 2 * channels))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class SimpleMLPAdaLN(nn.Module):
    """Denoiser ``(x_t, t, c) -> [eps, variance values]`` (``out_channels = 2 * in_channels``)."""

    def __init__(
        self, in_channels: int, model_channels: int, out_channels: int, z_channels: int, num_res_blocks: int
    ):
        super().__init__()
        self.time_embed = TimestepEmbedder(model_channels)
        self.cond_embed = nn.Linear(z_channels, model_channels)
        self.input_proj = nn.Linear(in_channels, model_channels)
        self.res_blocks = nn.ModuleList(ResBlock(model_channels) for _ in range(num_res_blocks))
        self.final_layer = FinalLayer(model_channels, out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.time_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_embed.mlp[2].weight, std=0.02)
        # Zero modulation and output: the denoiser starts as the identity residual path (DiT init).
        for block in self.res_blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.input_proj(x)
        y = self.time_embed(t) + self.cond_embed(c)
        for block in self.res_blocks:
            x = block(x, y)
        return self.final_layer(x, y)


class DiffLoss(nn.Module):
    """Diffusion loss of targets ``(N, C)`` given conditions ``(N, z_channels)``; keys ``net.*``."""

    def __init__(
        self, target_channels: int, z_channels: int, depth: int, width: int, num_timesteps: int = 1000
    ):
        super().__init__()
        self.net = SimpleMLPAdaLN(target_channels, width, target_channels * 2, z_channels, depth)
        self.diffusion = GaussianDiffusion(cosine_betas(num_timesteps))

    def forward(
        self,
        target: torch.Tensor,
        z: torch.Tensor,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean loss; ``t`` and ``noise`` are drawn uniformly / from N(0, I) unless given."""
        if t is None:
            t = torch.randint(0, self.diffusion.num_timesteps, (target.shape[0],), device=target.device)
        if noise is None:
            noise = torch.randn_like(target)
        return self.diffusion.training_losses(self.net, target, t, noise, c=z)["loss"].mean()
