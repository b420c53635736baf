"""Numerically equivalent rewrites of trained networks for inference (|Δ| ~1e-5 relative).

`optimize_for_inference(model)` returns a copy with:
  * eval-mode batch norm folded into the preceding convolution;
  * instance norm run as group norm with one channel per group (the same statistic, a 6-8×
    faster kernel on CPU);
  * convolutions with ≤4 output channels split into a k×1 convolution plus shifted sums
    (_SplitConv: oneDNN computes output channels 16 at a time);
  * residual blocks of the style generator run in NCHW with Winograd convolutions on
    single-thread CPU workers (_WinogradConv, _ResidualRunNCHW);
  * channels_last memory everywhere else (oneDNN's fast layout).
The rewritten modules are for inference only: no training, and exports trace plain convolutions.
"""

from __future__ import annotations

import copy
import functools
import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from depthda.models.resnet_generator import ResidualBlock


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
    the split form computes the same sums in another order (|Δ| ~1e-6 relative), 2-3× faster."""

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
        # it to NCHW first (4.7 vs 5.8-9.7 ms for the style generator's last layer at 256×416).
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


@functools.lru_cache(maxsize=1)
def _nnpack_ready() -> bool:
    """NNPACK is compiled into x86 and ARM builds of PyTorch; its first use must initialise it."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):  # torch >= 2.3
        return compiler.is_compiling()
    return torch._dynamo.is_compiling()


def winograd_active(x: torch.Tensor) -> bool:
    """Whether _WinogradConv takes NNPACK's path for this input (checks cheapest-to-trace first,
    so that tracing and torch.compile see no thread-count query)."""
    if torch.jit.is_tracing() or _is_compiling():
        return False
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and torch.get_num_threads() == 1 and _nnpack_ready())


def warm_up_winograd() -> None:
    """One tiny NNPACK convolution on this thread. NNPACK creates its thread pool at its first
    call, sized by torch's thread count, through an unguarded static: made here, on one thread,
    before FrameParallel's workers start, the pool has one thread and runs inline on each caller."""
    if _nnpack_ready() and torch.get_num_threads() == 1:
        torch._nnpack_spatial_convolution(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), torch.zeros(1),
                                          [0, 0], [1, 1])


class _WinogradConv(nn.Module):
    """A 3×3 stride-1 convolution through NNPACK when run on one CPU thread.

    NNPACK's Winograd F(6×6, 3×3) kernel (its choice for a single 3×3 image) needs ~1/3 of the
    direct method's multiplications; for the style generator's 64-channel residual convolutions
    at 64×104 it took 1.3 vs 1.8 ms here (PyTorch asks oneDNN for direct convolution only).
    Only on one thread: NNPACK's pool is sized once (warm_up_winograd), and FrameParallel's
    single-thread workers must not queue behind each other on it; with more threads, oneDNN's
    parallel kernel. NNPACK reads and writes NCHW: _ResidualRunNCHW converts once per run.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.padding = list(conv.padding)
        self.register_buffer("weight", conv.weight.detach().contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.register_buffer("bias", bias.clone())

    @staticmethod
    def applies(conv: nn.Module) -> bool:
        # NNPACK refuses padding as large as the kernel.
        return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
                and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
                and not isinstance(conv.padding, str) and max(conv.padding) < 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if winograd_active(x):
            return torch._nnpack_spatial_convolution(x.contiguous(), self.weight.contiguous(), self.bias,
                                                     self.padding, [1, 1])
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class _ResidualRunNCHW(nn.Module):
    """Consecutive residual blocks run in NCHW (NNPACK's layout) when their convolutions take
    NNPACK's path, channels_last around them: two layout conversions per run, not per convolution.
    Otherwise the blocks run in the input's layout (oneDNN is faster in channels_last)."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not winograd_active(x):
            return self.blocks(x)
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        y = self.blocks(x.contiguous())
        return y.contiguous(memory_format=torch.channels_last) if channels_last else y


def _winograd_residual_blocks(module: nn.Module) -> None:
    """Give every run of consecutive residual blocks Winograd convolutions and an NCHW layout."""
    for child in module.children():
        _winograd_residual_blocks(child)
    if not isinstance(module, nn.Sequential):
        return
    children = list(module._modules.items())
    module._modules.clear()
    for is_block, group in itertools.groupby(children, key=lambda item: isinstance(item[1], ResidualBlock)):
        group = list(group)
        if not is_block:
            module._modules.update(group)
            continue
        blocks = [block for _, block in group]
        for block in blocks:
            for seq in block.modules():
                for key, conv in list(seq._modules.items()):
                    if _WinogradConv.applies(conv):
                        seq._modules[key] = _WinogradConv(conv)
        module._modules[group[0][0]] = _ResidualRunNCHW(blocks)  # the run keeps its first block's name


def optimize_for_inference(model: nn.Module, winograd: bool = True) -> nn.Module:
    """A copy of an eval-mode model with the numerically equivalent rewrites described above
    (`winograd=False` leaves residual blocks to oneDNN: the bench's ablation)."""
    model = copy.deepcopy(model).eval()
    _fold_batch_norm(model)
    _instance_to_group_norm(model)
    _split_thin_convs(model)
    model = model.to(memory_format=torch.channels_last)
    # After the layout change: Winograd weights stay NCHW, the layout NNPACK reads.
    if winograd:
        _winograd_residual_blocks(model)
    return model
