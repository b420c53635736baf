"""Weight initialisation of pix2pix and CycleGAN (Isola et al. 2017; Zhu et al. 2017):
`init_weights(net, 'normal', 0.02)` of their published code, for networks built for training.

Convolution (and transposed convolution, linear) weights ~ N(0, 0.02), their biases 0; affine
batch/instance-norm weights ~ N(1, 0.02), their biases 0. Non-affine norms have nothing to set.
PyTorch's own default (Kaiming-uniform convolutions, norm weights 1) is what a network gets
without this.
"""

from __future__ import annotations

import torch
from torch import nn

INITS = ("normal", "default")  # "default": PyTorch's own initialisation, left as built

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
         nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm)


@torch.no_grad()
def init_normal(net: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix/CycleGAN's 'normal' initialisation of every layer of `net`, in place; returns `net`.

    Draws from the global torch RNG, so a seeded run gets the same weights every time.
    """
    for m in net.modules():
        if isinstance(m, _CONV):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORM) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net


def apply_init(net: nn.Module, kind: str) -> nn.Module:
    """`kind` "normal": init_normal; "default": the network as PyTorch initialised it."""
    if kind == "normal":
        return init_normal(net)
    if kind != "default":
        raise ValueError(f"unknown init {kind!r}; choose from {', '.join(INITS)}")
    return net
