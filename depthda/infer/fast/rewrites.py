"""Numerically equivalent rewrites of trained networks for inference (|Δ| ~1e-5 relative).

`rewrite_for_inference(model)` returns a copy with:
  * eval-mode batch norm folded into the preceding convolution;
  * instance norm run as group norm with one channel per group (the same statistic, a faster
    kernel on CPU);
  * convolutions with ≤4 output channels split into a k×1 convolution plus shifted sums
    (_SplitConv: oneDNN computes output channels 16 at a time);
  * channels_last memory (oneDNN's fast layout).
The Winograd residual blocks (depthda.infer.fast.winograd) come on top of these; use
depthda.infer.fast.speed_up for the whole set. The rewritten modules are for inference only: no
training, and exports trace plain convolutions.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _commutes_with_affine(module: nn.Module) -> bool:
    """Ops that commute with a per-channel affine map: identities, and upsampling whose output
    pixels are convex combinations of input pixels (nearest, bilinear)."""
    if isinstance(module, (nn.Identity, nn.Dropout)):
        return True
    return isinstance(module, nn.Upsample) and module.mode in ("nearest", "bilinear")


def _fold_batch_norm(module: nn.Module) -> None:
    """Fold every eval-mode BatchNorm into the convolution before it in the same Sequential
    (possibly across an upsampling, which commutes with BN's per-channel affine map)."""
    for seq in module.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for i, name in enumerate(names):
            bn = seq._modules[name]
            if not (isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats and bn.running_mean is not None):
                continue
            j = i - 1
            while j >= 0 and _commutes_with_affine(seq._modules[names[j]]):
                j -= 1
            conv = seq._modules[names[j]] if j >= 0 else None
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                seq._modules[names[j]] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                seq._modules[name] = nn.Identity()


def _instance_to_group_norm(module: nn.Module) -> None:
    """InstanceNorm2d (batch statistics) == GroupNorm with one channel per group, a faster kernel."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.InstanceNorm2d) and not child.track_running_stats:
            g = nn.GroupNorm(child.num_features, child.num_features, eps=child.eps, affine=child.affine)
            if child.affine:
                g.weight.data.copy_(child.weight.data)
                g.bias.data.copy_(child.bias.data)
            setattr(module, name, g)
        else:
            _instance_to_group_norm(child)


class _SplitConv(nn.Module):
    """A k×k convolution with few output channels as a k×1 convolution to k·C channels followed by
    k shifted additions. oneDNN computes output channels 16 at a time, so a 3-channel output (the
    style generator's last 7×7 layer) or a 1-channel one (the U-Net head) wastes most of the work;
    the split form computes the same sums in another order (|Δ| ~1e-6 relative), in less time."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        cout, cin, kh, kw = conv.weight.shape
        self.cout, self.kw = cout, kw
        self.ph, self.pw = conv.padding
        # Rows ordered (dx, c): the k×1 output for column offset dx is one contiguous channel block.
        self.register_buffer("weight", conv.weight.detach().permute(3, 0, 1, 2).reshape(kw * cout, cin, kh, 1).contiguous())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().reshape(1, cout, 1, 1).clone())

    @staticmethod
    def applies(conv: nn.Module) -> bool:
        return (type(conv) is nn.Conv2d and conv.out_channels <= 4 and conv.kernel_size[1] > 1
                and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        # The convolution in the input's layout (channels_last is oneDNN's fast one). Its k·C-channel
        # result stays in that layout: the strided shifted sums below cost less than transposing
        # it to NCHW first.
        z = F.conv2d(x, self.weight, None, padding=(self.ph, 0))
        if self.pw:
            z = F.pad(z, (self.pw, self.pw))
        c, wo = self.cout, z.shape[-1] - self.kw + 1
        y = z[:, :c, :, :wo] + z[:, c:2 * c, :, 1:1 + wo]
        for dx in range(2, self.kw):
            y = y + z[:, dx * c:(dx + 1) * c, :, dx:dx + wo]
        if self.bias is not None:
            y = y + self.bias
        return y.contiguous(memory_format=torch.channels_last) if channels_last else y


def _split_thin_convs(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if _SplitConv.applies(child):
            setattr(module, name, _SplitConv(child))
        else:
            _split_thin_convs(child)


def rewrite_for_inference(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode model with the numerically equivalent rewrites described above."""
    model = copy.deepcopy(model).eval()
    _fold_batch_norm(model)
    _instance_to_group_norm(model)
    _split_thin_convs(model)
    return model.to(memory_format=torch.channels_last)
