"""Where a model is wrong: the metrics split into road-like pixels and obstacle pixels.

A depth network that has learned only the layout of a street (road below, far things at the
horizon) scores well over all pixels, because most ground-truth pixels lie on the road. The
obstacle breakdown asks what a flat-road guess cannot answer:

    obstacle pixel   ground truth nearer than OBSTACLE_RATIO × the depth a flat road would have
                     at that pixel, seen from the frame's calibrated camera (focal length and
                     principal point of P_rect_0c) at the training camera's height above the road;
                     above the horizon a flat road has no depth, so everything seen there counts
                     (cars, walls, trees, people);
    road-like pixel  every other evaluated pixel (the road itself and what lies on it flat).

The split uses only ground truth and geometry, never the prediction, so every model is scored
on the same pixels. It is computed after the protocol's crop and range mask and after median
scaling, which stay exactly those of the standard metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from depthda.data.kitti import KITTI_CY_PX, KITTI_FOCAL_PX

OBSTACLE_RATIO = 0.8
# The synthetic training camera's height, which is KITTI's (KITTI setup page).
CAMERA_HEIGHT_M = 1.65
REGIONS = ("road", "obstacle")


@dataclass(frozen=True)
class FlatRoad:
    """The camera a flat road is seen from: focal length and principal row in ground-truth pixels."""

    focal_px: float = KITTI_FOCAL_PX
    cy_px: float = KITTI_CY_PX
    camera_height_m: float = CAMERA_HEIGHT_M

    def depth(self, height: int) -> np.ndarray:
        """Flat-road depth of each image row (pixel centres), inf at and above the horizon."""
        below = np.arange(height, dtype=np.float64) + 0.5 - self.cy_px
        with np.errstate(divide="ignore"):
            return np.where(below > 0, self.camera_height_m * self.focal_px / below, np.inf)


def obstacle_mask(gt: np.ndarray, road: FlatRoad) -> np.ndarray:
    """True where the ground truth is nearer than OBSTACLE_RATIO × the flat road's depth."""
    return gt < OBSTACLE_RATIO * road.depth(gt.shape[0])[:, None]


def region_masks(gt: np.ndarray, road: FlatRoad) -> dict[str, np.ndarray]:
    obstacle = obstacle_mask(gt, road)
    return {"road": ~obstacle, "obstacle": obstacle}


def describe(roads: list[FlatRoad]) -> dict:
    """What the JSON says about how pixels were split (the cameras used, once each)."""
    return {"definition": f"obstacle: ground truth < {OBSTACLE_RATIO} x flat-road depth at the pixel "
                          f"(everything above the horizon); road: the other evaluated pixels",
            "obstacle_ratio": OBSTACLE_RATIO,
            "cameras": [asdict(r) for r in dict.fromkeys(roads)]}
