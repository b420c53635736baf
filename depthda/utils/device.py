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
