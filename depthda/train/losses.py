"""Every loss the two tasks train with, in one place.

Depth task (the paper's stage 1): L1 on the valid pixels plus a WGAN-GP critic (Gulrajani et al.
2017) that scores depth conditioned on the image. Style task (stage 2): CycleGAN's (Zhu et al.
2017) least-squares GAN, cycle-consistency and identity losses. The tasks weigh and sum these.

Losses are computed in fp32: they cast network outputs with `.float()` (a no-op on fp32 tensors),
so under mixed precision no loss is reduced in half precision.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def set_requires_grad(nets: Iterable[nn.Module], requires_grad: bool) -> None:
    """Freeze or unfreeze every parameter of `nets`.

    A generator's adversarial loss backpropagates through the judging network; frozen, that network
    gets no gradients (and does no work computing them) from a step that is not its own.
    """
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(requires_grad)


# ------------------------------------------------------------ depth task
def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean |pred − target| over the pixels where `valid` is 1 (0 when there are none)."""
    return ((pred.float() - target).abs() * valid).sum() / valid.sum().clamp_min(1)


def gradient_matching(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale gradient matching (Li & Snavely 2018, MegaDepth): the mean |∂x R| + |∂y R| of the
    residual R = pred − target over neighbouring valid pixels, at `scales` resolutions halved each time.

    In log depth a constant offset of R costs nothing, so the term judges only where depth changes:
    an object boundary the prediction blurs or misses costs here even when L1 is small.
    """
    residual = (pred.float() - target) * valid
    total = pred.new_zeros(())
    for k in range(scales):
        step = 2 ** k
        r, v = residual[..., ::step, ::step], valid[..., ::step, ::step]
        vx, vy = v[..., :, 1:] * v[..., :, :-1], v[..., 1:, :] * v[..., :-1, :]
        gx = (r[..., :, 1:] - r[..., :, :-1]).abs() * vx
        gy = (r[..., 1:, :] - r[..., :-1, :]).abs() * vy
        total = total + (gx.sum() + gy.sum()) / (vx.sum() + vy.sum()).clamp_min(1)
    return total / scales


def critic_score(critic: nn.Module, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """One Wasserstein score per sample: the mean of the critic's patch map over RGB ⊕ depth."""
    return critic(torch.cat([rgb, depth], dim=1)).flatten(1).mean(1)


def gradient_penalty(critic: nn.Module, rgb: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(‖∇ D(x̂)‖₂ − 1)²] on random interpolates x̂ between real and fake depth (λ applied by the caller).

    The image is the condition, identical for real and fake, so the gradient is taken with respect
    to the depth part only (as conditional WGAN-GP implementations do). Call it outside autocast:
    its second derivatives overflow fp16.
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    score = critic_score(critic, rgb.detach(), x_hat)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


# ------------------------------------------------------------ style task
def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: the mean squared distance of a discriminator's map to 1 (real) or 0 (fake)."""
    pred = pred.float()
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def lsgan_discriminator(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """A discriminator's loss on real images and (pooled) fakes, halved as CycleGAN does to slow
    the discriminators relative to the generators."""
    return 0.5 * (lsgan(disc(real), True) + lsgan(disc(fake), False))


def cycle_loss(rec_a: torch.Tensor, real_a: torch.Tensor, rec_b: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
    """‖g_ba(g_ab(a)) − a‖₁ + ‖g_ab(g_ba(b)) − b‖₁, each a mean over pixels."""
    return F.l1_loss(rec_a.float(), real_a) + F.l1_loss(rec_b.float(), real_b)


def identity_loss(g_ab: nn.Module, g_ba: nn.Module, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
    """‖g_ab(b) − b‖₁ + ‖g_ba(a) − a‖₁: a generator leaves images already in its output domain alone."""
    return F.l1_loss(g_ab(real_b).float(), real_b) + F.l1_loss(g_ba(real_a).float(), real_a)
