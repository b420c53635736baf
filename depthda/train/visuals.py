"""Image grids for TensorBoard, with fixed colour scales so grids are comparable across steps."""

from __future__ import annotations

import torch
from torchvision.utils import make_grid

from depthda.infer.colorize import DEFAULT_CMAP, colormap_lut

_LUT = torch.from_numpy(colormap_lut(DEFAULT_CMAP)).float() / 255


def colour_encoded_depth(encoded: torch.Tensor) -> torch.Tensor:
    """B×1×H×W depth in the network's [-1, 1] space -> B×3×H×W colours; near is bright, a fixed scale."""
    idx = ((1 - (encoded.detach().float().clamp(-1, 1) + 1) / 2) * 255).round().long().cpu()
    return _LUT[idx[:, 0]].permute(0, 3, 1, 2)


def rgb01(x: torch.Tensor) -> torch.Tensor:
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def rows_grid(columns: list[torch.Tensor], max_rows: int = 4) -> torch.Tensor:
    """Columns of B×3×H×W images in [0, 1] -> one 3×(rows·H)×(cols·W) grid, a sample per row."""
    rows = min(max_rows, columns[0].shape[0])
    images = [column[i] for i in range(rows) for column in columns]  # row by row
    return make_grid(images, nrow=len(columns), padding=0)
