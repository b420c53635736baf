"""Device choice: CUDA when present, CPU otherwise."""

from __future__ import annotations

import torch

from depthda.errors import DepthdaError


def pick_device(name: str | None = "auto") -> torch.device:
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DepthdaError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DepthdaError(f"device {name!r} requested but CUDA is not available on this machine")
    return device


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """Mixed precision on CUDA only: bf16 where supported (no loss scaling needed), else fp16.
    CPUs stay fp32: bf16 convolutions are slower than fp32 on CPUs without AMX."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype`, or a no-op context when `dtype` is None."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
