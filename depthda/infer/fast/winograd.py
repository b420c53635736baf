"""Winograd convolutions through NNPACK for the style generator's residual blocks, on one CPU thread.

PyTorch asks oneDNN for direct convolution only. NNPACK, compiled into x86 and ARM builds of
PyTorch, has a Winograd F(6×6, 3×3) kernel (its choice for a single 3×3 image) that needs ~1/3 of
the direct method's multiplications; the bench's model ablation shows what it buys. PyTorch
reaches NNPACK only through private operators, so this is the one module of depthda that calls
torch's private API (`torch._nnpack_*`); everything else goes through depthda.infer.fast.

Only on one thread: NNPACK's thread pool is sized once (warm_up_winograd), and FrameParallel's
single-thread workers must not queue behind each other on it; with more threads the blocks run on
oneDNN's parallel kernel. NNPACK reads and writes NCHW: ResidualRunNCHW converts once per run of
blocks. Tracing and torch.compile always see plain convolutions.
"""

from __future__ import annotations

import functools
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from depthda.models.resnet_generator import ResidualBlock


@functools.lru_cache(maxsize=1)
def nnpack_ready() -> bool:
    """NNPACK is compiled into x86 and ARM builds of PyTorch; its first use must initialise it."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


def winograd_active(x: torch.Tensor) -> bool:
    """Whether WinogradConv takes NNPACK's path for this input (checks cheapest-to-trace first,
    so that tracing and torch.compile see no thread-count query)."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and torch.get_num_threads() == 1 and nnpack_ready())


def warm_up_winograd() -> None:
    """One tiny NNPACK convolution on this thread. NNPACK creates its thread pool at its first
    call, sized by torch's thread count, through an unguarded static: made here, on one thread,
    before FrameParallel's workers start, the pool has one thread and runs inline on each caller."""
    if nnpack_ready() and torch.get_num_threads() == 1:
        torch._nnpack_spatial_convolution(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), torch.zeros(1),
                                          [0, 0], [1, 1])


class WinogradConv(nn.Module):
    """A 3×3 stride-1 convolution through NNPACK when run on one CPU thread, oneDNN otherwise."""

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


class ResidualRunNCHW(nn.Module):
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


def winograd_residual_blocks(module: nn.Module) -> None:
    """Give every run of consecutive residual blocks Winograd convolutions and an NCHW layout (in place).

    Run after the model's move to channels_last: the Winograd weights stay NCHW, the layout NNPACK reads.
    """
    for child in module.children():
        winograd_residual_blocks(child)
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
                    if WinogradConv.applies(conv):
                        seq._modules[key] = WinogradConv(conv)
        module._modules[group[0][0]] = ResidualRunNCHW(blocks)  # the run keeps its first block's name
