"""PatchGAN discriminator (pix2pix / CycleGAN): a score per overlapping image patch, and the critic presets.

With 3 stride-2 layers and 64 base filters each output sees a 70×70 patch, CycleGAN's published
discriminator; the style task's discriminators are these (PATCHGAN_PRESETS). The depth task's
WGAN-GP critic (Gulrajani et al. 2017) is the same network over RGB ⊕ depth without normalisation
layers (CRITIC_PRESETS, build_critic): the gradient penalty constrains each sample's gradient
separately, which batch norm breaks. Its losses are in depthda/train/losses.py.
"""

from __future__ import annotations

from torch import nn

from depthda.models.arg_bounds import CHANNELS, FILTERS

PATCHGAN_PRESETS: dict[str, dict] = {
    "paper": dict(base=64, n_layers=3),
    # CPU-sized: 2 stride-2 layers still see 34×34 patches, plenty at 128×416.
    "small": dict(base=32, n_layers=2),
}

CRITIC_PRESETS: dict[str, dict] = {
    "paper": dict(base=64, n_layers=3),
    # Narrower but as deep as the paper's, so it still judges 70×70 patches.
    "small": dict(base=16, n_layers=3),
}


def _norm(kind: str, ch: int) -> list[nn.Module]:
    if kind == "instance":
        return [nn.InstanceNorm2d(ch, affine=False)]
    if kind == "batch":
        return [nn.BatchNorm2d(ch)]
    if kind == "none":
        return []
    raise ValueError(f"unknown norm {kind!r}")


class PatchGAN(nn.Module):
    ARG_BOUNDS = {"in_channels": CHANNELS, "base": FILTERS, "n_layers": (int, 1, 8),
                  "norm": ("instance", "batch", "none")}

    def __init__(self, in_channels: int = 3, base: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        ch = base
        for i in range(1, n_layers + 1):
            out = base * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride, 1, bias=norm == "none"), *_norm(norm, out),
                       nn.LeakyReLU(0.2, inplace=True)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def build_critic(base: int = 64, n_layers: int = 3) -> PatchGAN:
    """The depth task's WGAN-GP critic: scores (RGB ⊕ depth) patches, no normalisation layers."""
    return PatchGAN(in_channels=4, base=base, n_layers=n_layers, norm="none")
