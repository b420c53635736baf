"""Camera response: linear radiance to the 8-bit RGB a real camera would have written.

Auto-exposure, white balance, an ACES-like tone curve, vignetting, gamma, saturation, lens blur
and sensor noise, with the settings of a scene's `Post`; then JPEG compression when it asks for it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from depthda.synth.scene import Post


def develop(img: torch.Tensor, post: Post, noise_seed: int) -> np.ndarray:
    """Linear radiance (3×H×W) -> camera-like H×W×3 uint8 RGB; `noise_seed` seeds the sensor noise."""
    dev = img.device
    lum = 0.2126 * img[0] + 0.7152 * img[1] + 0.0722 * img[2]
    log_avg = torch.exp(torch.log(lum.clamp_min(1e-4)).mean())
    x = img * (post.key / log_avg) * torch.tensor(post.white_balance, dtype=torch.float32, device=dev).view(3, 1, 1)
    x = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)  # ACES-like filmic curve
    if post.vignette > 0:
        H, W = img.shape[1:]
        yy = (torch.arange(H, device=dev) + 0.5 - H / 2) / (W / 2)
        xx = (torch.arange(W, device=dev) + 0.5 - W / 2) / (W / 2)
        x = x * (1 - post.vignette * (xx[None] ** 2 + yy[:, None] ** 2) / 1.3)
    x = x.clamp(0, 1) ** (1 / post.gamma)
    grey = (0.2126 * x[0] + 0.7152 * x[1] + 0.0722 * x[2])[None]
    x = grey + (x - grey) * post.saturation
    if post.blur_px > 0:
        x = _gaussian_blur(x, post.blur_px)
    if post.noise > 0:
        g = torch.Generator().manual_seed(noise_seed)
        x = x + (torch.randn(x.shape, generator=g) * post.noise).to(dev)
    x = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    rgb = x.permute(1, 2, 0).contiguous().cpu().numpy()
    if post.jpeg_quality:
        ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(post.jpeg_quality)])
        rgb = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return rgb


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a C×H×W image, as sums of shifted slices: on CPU these beat
    conv2d by a wide margin for kernels this small."""
    r = max(1, int(math.ceil(2.0 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).tolist()
    H, W = x.shape[1:]
    y = torch.nn.functional.pad(x[None], (r, r, r, r), mode="replicate")[0]
    h = sum(k[i] * y[:, :, i:i + W] for i in range(2 * r + 1))
    return sum(k[i] * h[:, i:i + H, :] for i in range(2 * r + 1))
