"""How much arithmetic the networks do per frame, and how much this machine can do per second."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def peak_matmul_flops(n: int = 2048, repeats: int = 5, threads: int | None = None) -> dict[str, float]:
    """Best fp32 FLOP/s of an n×n×n matrix product on `threads` threads (default: torch's count),
    through MKL (torch.mm) and through oneDNN (the same product as a 1×1 convolution, the library
    torch's convolutions use; MKL picks slower code paths on some non-Intel CPUs). "peak" is the
    larger of the two."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads or saved)
    try:
        return _peak(n, repeats)
    finally:
        torch.set_num_threads(saved)


def _peak(n: int, repeats: int) -> dict[str, float]:
    a, b = torch.randn(n, n), torch.randn(n, n)
    x = torch.randn(1, n, 32, n // 32).contiguous(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1)
    out = {}
    for name, fn in (("mkl_mm", lambda: torch.mm(a, b)), ("onednn_conv1x1", lambda: F.conv2d(x, w))):
        fn()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        out[name] = 2 * n ** 3 / best
    out["peak"] = max(out.values())
    return out


def count_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())
