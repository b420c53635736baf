"""SYNTHIA reader and writer.

On-disk format (SYNTHIA-RAND-CITYSCAPES and SYNTHIA-SEQS README, "DESCRIPTION"): RGB images are
ordinary 8-bit PNGs; depth images are 16-bit-per-channel PNGs with the depth in centimetres
repeated in each of the 3 channels. Pillow opens such files as 8-bit RGB and silently destroys
the depth, so everything here goes through OpenCV with IMREAD_UNCHANGED.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from depthda.utils.fsio import atomic_path

# SYNTHIA-RAND-CITYSCAPES: <root>/RGB/0000000.png and <root>/Depth/Depth/0000000.png
RAND_RGB_DIR = Path("RGB")
RAND_DEPTH_DIR = Path("Depth") / "Depth"
# SYNTHIA-SEQS: <root>/RGB/Stereo_Left/Omni_F/000000.png and <root>/Depth/Stereo_Left/Omni_F/...
SEQS_RGB_DIR = Path("RGB") / "Stereo_Left" / "Omni_F"
SEQS_DEPTH_DIR = Path("Depth") / "Stereo_Left" / "Omni_F"

CM_PER_M = 100.0
MAX_ENCODABLE_M = 65535 / CM_PER_M


def encode_depth_png(depth_m: np.ndarray) -> np.ndarray:
    """Metres (H×W float) -> SYNTHIA's H×W×3 uint16 centimetres; 0 stays 0 (no depth)."""
    cm = np.clip(np.round(np.asarray(depth_m, dtype=np.float64) * CM_PER_M), 0, 65535).astype(np.uint16)
    return np.repeat(cm[:, :, None], 3, axis=2)


def write_synthia_sample(root: str | Path, index: int, rgb: np.ndarray, depth_m: np.ndarray,
                         layout: str = "rand") -> tuple[Path, Path]:
    """Write one RGB (H×W×3 uint8, RGB order) + depth (H×W metres) pair in SYNTHIA's format.

    `layout` is "rand" (RAND-CITYSCAPES, 7-digit names) or "seqs" (SEQS, 6-digit names).
    """
    root = Path(root)
    if layout == "rand":
        rgb_dir, depth_dir, name = RAND_RGB_DIR, RAND_DEPTH_DIR, f"{index:07d}.png"
    elif layout == "seqs":
        rgb_dir, depth_dir, name = SEQS_RGB_DIR, SEQS_DEPTH_DIR, f"{index:06d}.png"
    else:
        raise ValueError(f"unknown SYNTHIA layout {layout!r}")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("rgb must be an H×W×3 uint8 array")
    if rgb.shape[:2] != np.shape(depth_m):
        raise ValueError("rgb and depth sizes differ")
    rgb_path, depth_path = root / rgb_dir / name, root / depth_dir / name
    for path, img in ((rgb_path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), (depth_path, encode_depth_png(depth_m))):
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), img):
                raise OSError(f"could not write {path}")
    return rgb_path, depth_path
