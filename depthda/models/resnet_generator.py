"""CycleGAN's ResNet generator (Zhu et al. 2017, after Johnson et al. 2016).

Two stride-2 downsamplings, residual blocks at 1/4 resolution, two upsamplings; instance norm and
reflection padding avoid the border artefacts zero padding leaves in translated images.
Output is tanh in [-1, 1]: exactly the RGB range the depth network reads.
"""

from __future__ import annotations

import torch
from torch import nn

from depthda.errors import DepthdaError
from depthda.models.arg_bounds import CHANNELS, FILTERS

# `paper`: CycleGAN's published configuration (resnet_9blocks, ngf 64).
# `small`: a CPU-sized version fast enough to train in an hour and to run in real time.
RESNET_PRESETS: dict[str, dict] = {
    "paper": dict(base=64, n_blocks=9),
    "small": dict(base=16, n_blocks=6),
}


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x):
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    ARG_BOUNDS = {"in_channels": CHANNELS, "out_channels": CHANNELS, "base": FILTERS, "n_blocks": (int, 0, 64)}
    stride = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 3, base: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, base, 7),
                                   nn.InstanceNorm2d(base), nn.ReLU(inplace=True)]
        ch = base
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1), nn.InstanceNorm2d(ch * 2), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(ch // 2),
                       nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def check_size(self, height: int, width: int) -> None:
        s = self.stride
        if height % s or width % s or height < 16 or width < 16:
            raise DepthdaError(f"input size {height}x{width} is not a multiple of the style generator's stride {s} "
                               "(or is smaller than 16 pixels)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(x.shape[-2], x.shape[-1])
        return self.net(x)
