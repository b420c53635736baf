"""U-Net generator RGB -> depth (pix2pix's `unet_256` family, Isola et al. 2017).

Each level halves the resolution with a 4×4 stride-2 convolution and the decoder mirrors it,
concatenating the encoder's features at each scale (the skip connections that keep depth edges
sharp). Inputs must have sides divisible by 2**levels; `check_size` says so before a convolution
fails with a shape error deep inside.
"""

from __future__ import annotations

import torch
from torch import nn

from depthda.errors import DepthdaError
from depthda.models.arg_bounds import CHANNELS, FILTERS

# `paper`: the generator of Atapour-Abarghouei & Breckon (2018) is pix2pix's unet_256: 8 levels,
# 64 base filters, batch norm, transposed convolutions, dropout in the 3 innermost decoders.
# `small`: a few million parameters for CPU training and real-time CPU inference; bilinear
# upsampling avoids the checkerboard artefacts transposed convolutions leave after short training.
UNET_PRESETS: dict[str, dict] = {
    "paper": dict(base=64, levels=8, max_mult=8, upsample="transpose", dropout=True),
    "small": dict(base=32, levels=5, max_mult=8, upsample="bilinear", dropout=False),
}


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int, norm: bool, first: bool):
        super().__init__()
        layers: list[nn.Module] = [] if first else [nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, upsample: str, norm: bool, dropout: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]
        if upsample == "transpose":
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=not norm))
        elif upsample == "bilinear":
            # Convolve at the coarse scale, then upsample: a quarter of the FLOPs of the reverse order.
            layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=not norm),
                       nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
        else:
            raise ValueError(f"unknown upsample mode {upsample!r}")
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        if dropout:
            layers.append(nn.Dropout(0.5))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class UNet(nn.Module):
    """RGB in [-1, 1] -> `out_channels` maps in [-1, 1] (tanh), at the input's resolution."""

    ARG_BOUNDS = {"in_channels": CHANNELS, "out_channels": CHANNELS, "base": FILTERS, "levels": (int, 2, 10),
                  "max_mult": (int, 1, 64), "upsample": ("transpose", "bilinear"), "dropout": (bool,)}

    def __init__(self, in_channels: int = 3, out_channels: int = 1, base: int = 64, levels: int = 8,
                 max_mult: int = 8, upsample: str = "transpose", dropout: bool = True):
        super().__init__()
        if levels < 2:
            raise ValueError("a U-Net needs at least 2 levels")
        self.levels = levels
        chans = [base * min(2 ** i, max_mult) for i in range(levels)]
        self.downs = nn.ModuleList()
        cin = in_channels
        for i, c in enumerate(chans):
            # No norm on the outermost layer (pix2pix) nor the innermost, whose map may be 1×1.
            self.downs.append(_Down(cin, c, norm=0 < i < levels - 1, first=i == 0))
            cin = c
        self.ups = nn.ModuleList()
        for i in reversed(range(1, levels)):
            up_in = chans[i] if i == levels - 1 else chans[i] * 2
            # pix2pix puts dropout in the 3 innermost decoder blocks below the bottleneck.
            use_dropout = dropout and i >= levels - 4 and i < levels - 1
            self.ups.append(_Up(up_in, chans[i - 1], upsample, norm=True, dropout=use_dropout))
        self.head = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(chans[0] * 2, out_channels, 4, 2, 1) if upsample == "transpose" else
            nn.Sequential(nn.Conv2d(chans[0] * 2, out_channels, 3, 1, 1),
                          nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)),
            nn.Tanh(),
        )

    @property
    def stride(self) -> int:
        return 2 ** self.levels

    def check_size(self, height: int, width: int) -> None:
        s = self.stride
        if height % s or width % s or height < s or width < s:
            raise DepthdaError(
                f"input size {height}x{width} is not a multiple of this U-Net's stride {s} "
                f"({self.levels} levels); use e.g. {max(s, round(height / s) * s)}x{max(s, round(width / s) * s)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(x.shape[-2], x.shape[-1])
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], dim=1)
        # The head runs in fp32 even under autocast: a bf16 tanh output has an 8-bit mantissa, which
        # quantises log depth into ~1 % depth steps beyond ~22 m (DepthParam maps it to metres).
        with torch.autocast(x.device.type, enabled=False):
            return self.head(x.float())
