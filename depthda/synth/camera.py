"""The synthetic camera: KITTI's left colour camera by default.

Conventions (shared with raycast.py and the intrinsics.json the writer saves):
- camera frame is OpenCV's: x right, y down, z forward; depth is the camera-frame z in metres;
- square pixels (fy = fx), principal point at the image centre (cx = W/2, cy = H/2);
- pixel (u, v) is the ray through its centre, image coordinates (u + 0.5, v + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from depthda.data.kitti import KITTI_FOCAL_PX, KITTI_WIDTH_PX

# KITTI's left colour camera's horizontal field of view (≈ 81.4°).
KITTI_HFOV_DEG = math.degrees(2.0 * math.atan(KITTI_WIDTH_PX / 2 / KITTI_FOCAL_PX))
# Pose spread of random scenes: car-mounted rigs and dash-cams sit 1.4-1.8 m high and are
# never perfectly level; the yaw stands in for streets that are not exactly straight ahead.
HEIGHT_RANGE_M = (1.4, 1.8)
ANGLE_JITTER_DEG = 2.0
YAW_JITTER_DEG = 3.0


@dataclass(frozen=True)
class Camera:
    """Pinhole camera mounted on a car; angles in degrees, lengths in metres.

    The world frame is x right, y up, z along the street; the road surface is y = 0.
    Positive pitch tilts the optical axis up, positive roll lowers the camera's right side,
    positive yaw turns the camera to the left.
    """

    height_m: float = 1.65  # KITTI camera height above the road
    hfov_deg: float = KITTI_HFOV_DEG
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    yaw_deg: float = 0.0
    x_m: float = 0.0  # lateral position; the street centre line is x = 0

    def intrinsics(self, height: int, width: int) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels for an image of height×width."""
        fx = (width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)
        return fx, fx, width / 2.0, height / 2.0

    def rotation(self) -> np.ndarray:
        """3×3 matrix taking camera-frame directions (x right, y down, z forward) to the world frame."""
        p, r, y = (math.radians(a) for a in (self.pitch_deg, self.roll_deg, self.yaw_deg))
        flip = np.diag([1.0, -1.0, 1.0])  # camera y down -> world y up
        # Rx(-p): a positive pitch lifts the forward axis towards +y (up).
        rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
        # Rotation about +y by +yaw turns +z towards +x (right); negate so positive yaw looks left.
        ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
        return ry @ rx @ flip @ rz_cam(r)

    def origin(self) -> np.ndarray:
        return np.array([self.x_m, self.height_m, 0.0])

    def jittered(self, rng: np.random.Generator, *, height_range=HEIGHT_RANGE_M, angle_deg: float = ANGLE_JITTER_DEG,
                 yaw_deg: float = YAW_JITTER_DEG) -> "Camera":
        """A random pose around this camera: the spread of real car-mounted and dash-cam rigs."""
        shift = self.height_m - 1.65  # keep the range centred on a non-default nominal height
        return replace(
            self,
            height_m=float(rng.uniform(height_range[0] + shift, height_range[1] + shift)),
            pitch_deg=self.pitch_deg + float(rng.uniform(-angle_deg, angle_deg)),
            roll_deg=self.roll_deg + float(rng.uniform(-angle_deg, angle_deg)),
            yaw_deg=self.yaw_deg + float(rng.uniform(-yaw_deg, yaw_deg)),
        )


def rz_cam(roll: float) -> np.ndarray:
    """Roll about the optical axis in the camera frame (y down); roll > 0 lowers the right side."""
    c, s = math.cos(roll), math.sin(roll)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
