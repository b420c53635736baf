"""A pipeline checkpoint of randomly initialised networks, for everything that needs one before
trained weights exist: tests, `depthda bench --random-weights` (speed does not depend on the
weights' values), trying the CLI out."""

from __future__ import annotations

from pathlib import Path

import torch

from depthda.data.kitti import KITTI_FOCAL_PX, KITTI_WIDTH_PX
from depthda.models import build_model
from depthda.models.configs import depth_model_config, style_model_config
from depthda.models.weights import save_exported


def init_checkpoint(folder: str | Path, depth_preset: str = "small", style_preset: str = "small",
                    size: tuple[int, int] = (128, 416), seed: int = 0) -> Path:
    """Write a pipeline checkpoint of randomly initialised networks (style/ and depth/).

    Everything that loads a checkpoint works before trained weights exist; the depth config gets a
    KITTI-like focal length (KITTI's 721.5377 px at 1242 px, scaled to the training width).
    """
    folder = Path(folder)
    torch.manual_seed(seed)
    # KITTI's camera: random stages then behave like a model trained for KITTI-like footage.
    focal = KITTI_FOCAL_PX * size[1] / KITTI_WIDTH_PX
    depth_config = depth_model_config(depth_preset, size=size, focal_px=focal, random_init=True, seed=seed)
    style_config = style_model_config(style_preset, size=size, random_init=True, seed=seed)
    save_exported(folder / "depth", build_model(depth_config).eval(), depth_config)
    save_exported(folder / "style", build_model(style_config).eval(), style_config)
    return folder
