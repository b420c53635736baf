"""The config.json written beside every exported model, built in one place.

Training writes these and inference reads them, so the keys below are the contract between the
two: the architecture to rebuild, the size it was trained at, how its output maps to metres
(depth), the focal length of the camera it learned metric scale from and how inference fits a
frame to the network (`resize`, see depthda.infer.pipeline).
"""

from __future__ import annotations

import depthda
from depthda.models import preset_args
from depthda.models.depth_param import DepthParam

# How inference fits a frame to the depth network (config.json "resize", required in a depth
# model's config; depthda.infer.pipeline): "stretch" resizes straight to the training size H×W;
# "keep_aspect" resizes to the training width at the frame's aspect ratio and pads to the stride.
RESIZE_POLICIES = ("keep_aspect", "stretch")
PRESET_RESIZE = {
    # As the authors; kept at its aspect a KITTI frame is 309x1024, padded to 512 rows (stride 256).
    "paper": "stretch",
    # Not the authors' stretch: at 416 wide a KITTI frame is 126 rows, padded to 128 (1.6 %), and keeps its shape.
    "small": "keep_aspect",
}


def _model_config(kind: str, arch: str, preset: str, size: tuple[int, int], **fields) -> dict:
    return {"kind": kind, "arch": arch, "arch_args": preset_args(arch, preset), "preset": preset,
            "size": [int(size[0]), int(size[1])], "input_range": [-1.0, 1.0],
            "code_version": depthda.__version__, **fields}


def resize_policy(depth_config: dict) -> str:
    """A depth model's inference resize policy, its config.json's "resize" (no default: a guess would
    silently change every depth the model gives)."""
    if "resize" not in depth_config:
        raise ValueError('"resize" is missing; add "resize": "keep_aspect" (the small preset\'s) or '
                         '"stretch" (the paper preset\'s) to its config.json')
    policy = depth_config["resize"]
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_POLICIES)}, got {policy!r}")
    return policy


def depth_model_config(preset: str = "small", size: tuple[int, int] = (128, 416),
                       depth_param: DepthParam | None = None, focal_px: float | None = None,
                       resize: str | None = None, arch: str = "unet", **extra) -> dict:
    """`focal_px`: horizontal focal length, in pixels at the training width, of the training camera;
    `resize`: the inference resize policy (None: the preset's, PRESET_RESIZE); `arch`: the network."""
    depth_param = depth_param or DepthParam()
    config = _model_config("depth", arch, preset, size, depth_param=depth_param.to_dict(),
                           focal_px=None if focal_px is None else float(focal_px),
                           resize=resize or PRESET_RESIZE.get(preset), **extra)
    resize_policy(config)
    return config


def style_model_config(preset: str = "small", size: tuple[int, int] = (128, 416), **extra) -> dict:
    return _model_config("style", "resnet_generator", preset, size, direction="real->synthetic",
                         output_range=[-1.0, 1.0], **extra)
