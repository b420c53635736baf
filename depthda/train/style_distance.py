"""How synthetic do translated images look? A distance between image statistics, no network needed.

Two parts, both in units of the [0, 1] intensity range so they add up sensibly:

* colour: per-channel Wasserstein-1 distance between the RGB value distributions of the two sets
  (the mean absolute difference of their quantile functions), averaged over R, G, B;
* patch: 2-Wasserstein (Fréchet) distance between Gaussians fitted to descriptors of every 16×16
  patch (stride 8): mean and std of R, G, B, and mean absolute horizontal/vertical gradient and
  Laplacian of the luminance at full and half resolution. These carry texture and local contrast:
  rendered scenes are flatter and sharper-edged than camera frames.

total = colour + patch. The distance is symmetric, 0 for identical sets, and is a statistic of
each set, so batches of different size and resolution can be compared. It is a training signal
for "did the style transfer move real images toward the synthetic domain", not a published metric.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PATCH = 16
STRIDE = 8
BINS = 256
# Luminance derivatives average ~0.05 on camera frames against ~0.4 for colour means; ×4 gives
# them a spread comparable to the colour descriptors so texture is not drowned out.
TEXTURE_GAIN = 4.0

_LUMA = torch.tensor([0.299, 0.587, 0.114])
_DERIVATIVE_KERNELS = TEXTURE_GAIN * torch.tensor([
    [[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]],
    [[0.0, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0]],
    [[0.0, 0.25, 0.0], [0.25, -1.0, 0.25], [0.0, 0.25, 0.0]],
]).unsqueeze(1)  # 3×1×3×3


def _check(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be B×3×H×W, got {tuple(x.shape)}")
    if x.shape[0] == 0 or min(x.shape[2:]) < 2 * PATCH:
        raise ValueError(f"{name} needs at least one image of at least {2 * PATCH}×{2 * PATCH}, got {tuple(x.shape)}")
    # [-1, 1] → [0, 1], on the CPU so the numbers do not depend on the device that made them.
    return ((x.detach().float().cpu() + 1.0) * 0.5).clamp_(0.0, 1.0)


def _cdfs(x: torch.Tensor) -> torch.Tensor:
    """3×BINS cumulative distributions of the R, G, B values."""
    # Bin centres at k/(BINS-1), the 8-bit levels; histc's edges sit half a level either side.
    half = 0.5 / (BINS - 1)
    counts = torch.stack([torch.histc(x[:, c], BINS, -half, 1 + half) for c in range(3)]).double()
    return counts.cumsum(1) / counts.sum(1, keepdim=True)


def colour_distance(a01: torch.Tensor, b01: torch.Tensor) -> float:
    # W1 of 1-D distributions = the L1 distance between their CDFs (bin width 1/(BINS-1)).
    return float((_cdfs(a01) - _cdfs(b01)).abs().sum(1).mean() / (BINS - 1))


def _patch_mean(x: torch.Tensor, downscale: int) -> torch.Tensor:
    """Means over PATCH×PATCH windows with stride STRIDE (in full-resolution pixels) of a map at
    1/`downscale` resolution; as 8×8 blocks then 2×2 of them, 4× cheaper than one big window."""
    return F.avg_pool2d(F.avg_pool2d(x, STRIDE // downscale), 2, 1)


def _derivatives(luma: torch.Tensor) -> torch.Tensor:
    """|d/dx|, |d/dy| (central differences) and |Laplacian| of B×1×H×W, on the (H-2)×(W-2) interior."""
    return F.conv2d(luma, _DERIVATIVE_KERNELS).abs_()


def _texture(x01: torch.Tensor) -> torch.Tensor:
    """B×6×h×w patch means of |dx|, |dy|, |Laplacian| of the luminance at 1× and ½×."""
    luma = (x01 * _LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
    full = _patch_mean(_derivatives(luma), 1)
    half = _patch_mean(_derivatives(F.avg_pool2d(luma, 2)), 2)
    h, w = min(full.shape[2], half.shape[2]), min(full.shape[3], half.shape[3])
    return torch.cat([full[:, :, :h, :w], half[:, :, :h, :w]], 1)


def patch_descriptors(x01: torch.Tensor) -> torch.Tensor:
    """N×12 descriptors, one row per 16×16 patch (stride 8) of every image."""
    mean, sq = _patch_mean(torch.cat([x01, x01 * x01], 1), 1).chunk(2, 1)
    std = (sq - mean * mean).clamp_(min=0).sqrt_()
    tex = _texture(x01)
    h, w = tex.shape[2], tex.shape[3]
    feats = torch.cat([mean[:, :, :h, :w], std[:, :, :h, :w], tex], 1)
    return feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1]).double()


def _gaussian(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu = feats.mean(0)
    centred = feats - mu
    cov = centred.T @ centred / max(1, feats.shape[0] - 1)
    return mu, cov


def _psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def _trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """Tr((S1 S2)^½) = Σ √eig(S1^½ S2 S1^½), for symmetric PSD S1, S2."""
    r = _psd_sqrt(s1)
    vals = torch.linalg.eigvalsh(r @ s2 @ r)
    return vals.clamp(min=0).sqrt().sum()


def frechet_distance(fa: torch.Tensor, fb: torch.Tensor) -> float:
    """2-Wasserstein distance between Gaussians fitted to two descriptor sets (N×D, M×D)."""
    mu_a, cov_a = _gaussian(fa)
    mu_b, cov_b = _gaussian(fb)
    # Tr((AB)^½) equals Tr((BA)^½) only in exact arithmetic; averaging keeps d(a, b) = d(b, a).
    cross = 0.5 * (_trace_sqrt_product(cov_a, cov_b) + _trace_sqrt_product(cov_b, cov_a))
    squared = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return math.sqrt(max(0.0, float(squared)))


def style_distance(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Distance between the image statistics of two sets (B×3×H×W in [-1, 1], any B, H, W)."""
    a01, b01 = _check(a, "a"), _check(b, "b")
    if a01.shape == b01.shape and torch.equal(a01, b01):
        # Identical sets: skip the eigen-decompositions, whose rounding would leave ~1e-8.
        return {"colour": 0.0, "patch": 0.0, "total": 0.0}
    colour = colour_distance(a01, b01)
    patch = frechet_distance(patch_descriptors(a01), patch_descriptors(b01))
    return {"colour": colour, "patch": patch, "total": colour + patch}


def translation_report(real: torch.Tensor, translated: torch.Tensor, synthetic: torch.Tensor) -> dict:
    """Distances to the synthetic set before and after translation; ratio < 1 means closer."""
    before = style_distance(real, synthetic)
    after = style_distance(translated, synthetic)
    if before["total"] > 0:
        ratio = after["total"] / before["total"]
    else:
        ratio = 1.0 if after["total"] == 0 else math.inf
    return {"untranslated": before, "translated": after, "ratio": ratio}


def format_report(report: dict) -> str:
    before, after, ratio = report["untranslated"]["total"], report["translated"]["total"], report["ratio"]
    if math.isinf(ratio):
        change = "was 0 before"
    elif ratio <= 1:
        change = f"{(1 - ratio) * 100:.0f}% closer"
    else:
        change = f"{(ratio - 1) * 100:.0f}% farther"
    return f"style distance to synthetic: untranslated {before:.3f} -> translated {after:.3f} ({change})"
