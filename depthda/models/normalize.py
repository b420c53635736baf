"""The networks' image convention: RGB in [-1, 1] (the tanh range, as in pix2pix and CycleGAN)."""

from __future__ import annotations

import numpy as np
import torch


def to_signed_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 (any shape, or float holding 0..255 values) → float32 in [-1, 1]."""
    return x.float() * (1 / 127.5) - 1


def rgb_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 RGB → 3×H×W float32 in [-1, 1]."""
    return to_signed_unit(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1))

