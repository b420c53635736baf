"""The config.json written beside every exported model, built in one place.

Training writes these and inference reads them, so the keys below are the contract between the
two: the architecture to rebuild, the size it was trained at, how its output maps to metres
(depth) and the focal length of the camera it learned metric scale from.
"""

from __future__ import annotations

import depthda
from depthda.models import preset_args
from depthda.models.depth_param import DepthParam


def _model_config(kind: str, arch: str, preset: str, size: tuple[int, int], **fields) -> dict:
    return {"kind": kind, "arch": arch, "arch_args": preset_args(arch, preset), "preset": preset,
            "size": [int(size[0]), int(size[1])], "input_range": [-1.0, 1.0],
            "code_version": depthda.__version__, **fields}


def depth_model_config(preset: str = "small", size: tuple[int, int] = (128, 416),
                       depth_param: DepthParam | None = None, focal_px: float | None = None,
                       **extra) -> dict:
    """`focal_px`: horizontal focal length, in pixels at the training width, of the training camera."""
    depth_param = depth_param or DepthParam()
    return _model_config("depth", "unet", preset, size, depth_param=depth_param.to_dict(),
                         focal_px=None if focal_px is None else float(focal_px), **extra)


def style_model_config(preset: str = "small", size: tuple[int, int] = (128, 416), **extra) -> dict:
    return _model_config("style", "resnet_generator", preset, size, direction="real->synthetic",
                         output_range=[-1.0, 1.0], **extra)
