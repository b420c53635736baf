"""Reference depth predictors that use no learning, to put a model's numbers in context.

- constant: the same depth everywhere. With median scaling it measures how much the ground
  truth's own spread costs; any model must beat it.
- ground plane: the depth a flat road would have under the camera, h·f/(v − c_y) below the
  horizon row c_y, capped at the constant depth (above the horizon and far down the road the
  scene is mostly facades and cars, not 80 m of road; the cap makes this the stronger baseline).
  It captures the strongest geometric cue in driving scenes; a useful depth network must beat it.
"""

from __future__ import annotations

import numpy as np

from depthda.data.kitti import KITTI_CY_PX, KITTI_FOCAL_PX, KITTI_HEIGHT_PX

# Height of KITTI's cameras above the road (KITTI setup page).
KITTI_CAMERA_HEIGHT_M = 1.65
# Roughly the mean velodyne depth of KITTI driving scenes; only matters without median scaling.
CONSTANT_DEPTH_M = 20.0


def constant_depth(shape: tuple[int, int], depth_m: float = CONSTANT_DEPTH_M) -> np.ndarray:
    return np.full(shape, depth_m, dtype=np.float32)


def ground_plane_depth(shape: tuple[int, int], focal_px: float = KITTI_FOCAL_PX, cy_px: float = KITTI_CY_PX,
                       calib_height: int = KITTI_HEIGHT_PX, camera_height_m: float = KITTI_CAMERA_HEIGHT_M,
                       cap_m: float = CONSTANT_DEPTH_M) -> np.ndarray:
    """Flat-road depth for an image of `shape`, given intrinsics measured at `calib_height` rows."""
    h, w = shape
    scale = h / calib_height
    f, cy = focal_px * scale, cy_px * scale
    v = np.arange(h, dtype=np.float64) + 0.5  # pixel centres
    below = v - cy
    with np.errstate(divide="ignore"):
        rows = np.where(below > 0, camera_height_m * f / below, cap_m)
    rows = np.minimum(rows, cap_m)
    return np.repeat(rows[:, None], w, axis=1).astype(np.float32)


BASELINES = {"constant": constant_depth, "ground-plane": ground_plane_depth}
