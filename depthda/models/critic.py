"""Stage 1's WGAN-GP critic (Gulrajani et al. 2017), conditioned on the image.

The critic scores (RGB ⊕ depth) patches; a sample's score is the mean over its patches. It has no
normalisation layers because the gradient penalty constrains each sample's gradient separately.
"""

from __future__ import annotations

import torch
from torch import nn

from depthda.models.patchgan import PatchGAN


def build_critic(base: int = 64, n_layers: int = 3) -> nn.Module:
    return PatchGAN(in_channels=4, base=base, n_layers=n_layers, norm="none")


def critic_score(critic: nn.Module, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """One Wasserstein score per sample: the mean of the critic's patch map."""
    return critic(torch.cat([rgb, depth], dim=1)).flatten(1).mean(1)


def gradient_penalty(critic: nn.Module, rgb: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(‖∇ D(x̂)‖₂ − 1)²] on random interpolates x̂ between real and fake depth (λ applied by the caller).

    The image is the condition, identical for real and fake, so the gradient is taken with respect
    to the depth part only (as conditional WGAN-GP implementations do).
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    score = critic_score(critic, rgb.detach(), x_hat)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
