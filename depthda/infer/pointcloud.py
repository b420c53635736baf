"""Depth maps → coloured 3D points in metres, and PLY / GLB files of them.

Camera frame (OpenCV's convention): x right, y down, z forward (along the optical axis), origin
at the camera centre, metres. A pixel (u, v) — column, row, pixel centres at integers — with depth
z (distance along the optical axis, as KITTI's depth and depthda's predictions are) goes to

    X = (u - cx) · z / fx,   Y = (v - cy) · z / fy,   Z = z.

Intrinsics: the camera's focal length (`--focal`, or P_rect_02 of `--calib`), otherwise the depth
model's training field of view (its config's focal_px, scaled from the network's width to the
image's: DepthPipeline.intrinsics); the principal point is the image centre ((w-1)/2, (h-1)/2)
unless a KITTI calibration gives it.

Files: PLY (binary little-endian; x, y, z float32 and red, green, blue uint8 per vertex) keeps the
OpenCV frame. GLB (glTF 2.0 POINTS) is written in glTF's own frame, y up and the camera looking
down -z (the OpenCV frame turned 180° about x), so that glTF viewers (three.js, Blender, Gradio's
Model3D) show the scene upright. trimesh writes both (pyproject says why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthda.data.kitti import read_calib_file
from depthda.errors import DepthdaError
from depthda.utils.fsio import write_bytes_atomic

CLOUD_FORMATS = ("ply", "glb")
CLOUD_SUFFIXES = tuple("." + f for f in CLOUD_FORMATS)

# A pixel whose depth is within this fraction of the model's far limit is sky (or beyond the range
# the model can tell apart), left out by default: it would be a wall of points at max_depth.
SKY_FRACTION = 0.98


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels of the image they belong to."""
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self):
        for name in ("fx", "fy", "cx", "cy"):
            if not math.isfinite(getattr(self, name)):
                raise DepthdaError(f"intrinsics: {name} must be finite")
        if self.fx <= 0 or self.fy <= 0:
            raise DepthdaError("intrinsics: the focal length must be positive")

    @classmethod
    def centred(cls, focal_px: float, height: int, width: int) -> "Intrinsics":
        """Square pixels, principal point at the image centre."""
        return cls(focal_px, focal_px, (width - 1) / 2, (height - 1) / 2)

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)


def principal_from_calib(path: str | Path, camera: int = 2) -> tuple[float, float]:
    """(cx, cy) of P_rect_0c in a KITTI calib_cam_to_cam.txt (camera 2 = left colour)."""
    p = read_calib_file(path).get(f"P_rect_{camera:02d}")
    if p is None or p.size != 12:
        raise DepthdaError(f"{path}: missing or malformed P_rect_{camera:02d} (expected a KITTI calib_cam_to_cam.txt)")
    return float(p[2]), float(p[6])


MAX_STRIDE = 1000  # a 100-megapixel photo keeps about 100 points at this stride: larger is a typo


@dataclass(frozen=True)
class CloudOptions:
    """How a depth map becomes points: `stride` keeps every Nth pixel along both axes; points
    farther than `max_depth` metres go; sky (SKY_FRACTION of the far limit) goes unless `keep_sky`.
    `format` (ply or glb) names the file type of a folder's clouds; `principal` (cx, cy) overrides
    the image centre."""
    format: str | None = None
    stride: int = 1
    max_depth: float | None = None
    keep_sky: bool = False
    principal: tuple[float, float] | None = None

    def __post_init__(self):
        if self.format is not None and self.format not in CLOUD_FORMATS:
            raise DepthdaError(f"unknown point cloud format {self.format!r} (use ply or glb)")
        if not (isinstance(self.stride, int) and 1 <= self.stride <= MAX_STRIDE):
            raise DepthdaError(f"--stride must be a whole number from 1 to {MAX_STRIDE}, got {self.stride}")
        if self.max_depth is not None and not (math.isfinite(self.max_depth) and self.max_depth > 0):
            raise DepthdaError("--max-depth must be a positive number of metres")


@dataclass
class PointCloud:
    """N×3 float32 points (metres, OpenCV camera frame), N×3 uint8 RGB colours, and the N×2
    integer (row, column) pixel each came from."""
    points: np.ndarray
    colors: np.ndarray
    pixels: np.ndarray
    intrinsics: Intrinsics

    def __len__(self) -> int:
        return len(self.points)


def back_project(depth: np.ndarray, intrinsics: Intrinsics, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Points (N×3 float64, camera frame) of the pixels (rows[i], cols[i]) of an H×W z-depth map."""
    z = depth[rows, cols].astype(np.float64)
    x = (cols - intrinsics.cx) * z / intrinsics.fx
    y = (rows - intrinsics.cy) * z / intrinsics.fy
    return np.stack([x, y, z], axis=1)


def project(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Camera-frame points (N×3) → their (column, row) pixel coordinates (N×2 float64)."""
    p = np.asarray(points, np.float64)
    return np.stack([p[:, 0] * intrinsics.fx / p[:, 2] + intrinsics.cx,
                     p[:, 1] * intrinsics.fy / p[:, 2] + intrinsics.cy], axis=1)


def depth_to_cloud(depth: np.ndarray, rgb: np.ndarray | None, intrinsics: Intrinsics,
                   options: CloudOptions = CloudOptions(), sky_depth: float | None = None) -> PointCloud:
    """The points of an H×W depth map (metres; ≤ 0 or non-finite = no depth) with the colours of
    the H×W×3 uint8 `rgb` (grey without one). `sky_depth`: the model's far limit in metres, if
    pixels there are sky (dropped unless options.keep_sky)."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise DepthdaError(f"expected an H×W depth map, got shape {depth.shape}")
    if rgb is not None and rgb.shape[:2] != depth.shape:
        raise DepthdaError(f"image {rgb.shape[:2]} and depth {depth.shape} differ in size")
    s = options.stride
    sub = depth[::s, ::s]
    keep = np.isfinite(sub) & (sub > 0)
    if options.max_depth is not None:
        keep &= sub <= options.max_depth
    if sky_depth is not None and not options.keep_sky:
        keep &= sub < SKY_FRACTION * sky_depth
    r, c = np.nonzero(keep)
    rows, cols = r * s, c * s
    points = back_project(depth, intrinsics, rows, cols).astype(np.float32)
    colors = (rgb[rows, cols] if rgb is not None else np.full((len(rows), 3), 200)).astype(np.uint8)
    return PointCloud(points, colors, np.stack([rows, cols], axis=1), intrinsics)


# glTF: +y up and the camera looking down -z, i.e. OpenCV's frame turned 180° about x.
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0])


def _trimesh_cloud(cloud: PointCloud, gltf: bool):
    import trimesh  # imported on use: only point-cloud outputs need it

    points = cloud.points @ OPENCV_TO_GLTF.T if gltf else cloud.points
    alpha = np.full((len(cloud), 1), 255, np.uint8)
    return trimesh.PointCloud(points.astype(np.float32), colors=np.hstack([cloud.colors, alpha]))


def cloud_bytes(cloud: PointCloud, fmt: str) -> bytes:
    """The cloud as a binary little-endian PLY ("ply") or a GLB ("glb") file."""
    if fmt not in CLOUD_FORMATS:
        raise DepthdaError(f"unknown point cloud format {fmt!r} (use ply or glb)")
    if len(cloud) == 0:
        raise DepthdaError("no points left to write (all pixels were sky, beyond --max-depth or without depth)")
    if fmt == "ply":
        return _trimesh_cloud(cloud, gltf=False).export(file_type="ply", encoding="binary")
    import trimesh

    return trimesh.Scene(_trimesh_cloud(cloud, gltf=True)).export(file_type="glb")


def write_cloud(path: str | Path, cloud: PointCloud) -> None:
    """Write a PLY or GLB by the suffix of `path`, atomically."""
    write_bytes_atomic(path, cloud_bytes(cloud, Path(path).suffix.lower().lstrip(".")))
