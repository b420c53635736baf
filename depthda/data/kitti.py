"""KITTI raw data: split files, calibration, and ground-truth depth for evaluation.

Raw layout (as downloaded from the KITTI raw-data page)::

    <root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <root>/<date>/<date>_drive_<nnnn>_sync/image_02/data/<frame:010d>.png   (left colour camera)
    <root>/<date>/<date>_drive_<nnnn>_sync/velodyne_points/data/<frame:010d>.bin
    <root>/<date>/<date>_drive_<nnnn>_sync/proj_depth/groundtruth/image_02/<frame:010d>.png
                                                    (KITTI annotated depth, the eigen_benchmark layout)

Velodyne ground truth follows the convention behind the published Eigen-split tables
(monodepth2's export_gt_depth.py): project with P_rect_0c · R_rect_00 · [R|T]velo→cam, keep
points with velodyne x ≥ 0, pixel = round(u) − 1, round(v) − 1, the closest point wins a pixel,
and the stored depth is the velodyne x coordinate (forward distance from the scanner), not
camera z.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depthda.errors import DepthdaError

CAMERA_OF_SIDE = {"l": 2, "r": 3}
# KITTI's left colour camera, from calib_cam_to_cam.txt of 2011_09_26 (P_rect_02, S_rect_02): the
# reference camera for defaults elsewhere (baselines, the synthetic camera, random checkpoints).
KITTI_FOCAL_PX = 721.5377
KITTI_CY_PX = 172.854
KITTI_WIDTH_PX, KITTI_HEIGHT_PX = 1242, 375
# Frame files, in the order they are looked for: the raw release's PNGs, then JPEG copies
# (monodepth2's data preparation converts the frames to JPEG).
FRAME_SUFFIXES = (".png", ".jpg")
GT_KINDS = ("velodyne", "annotated")


@dataclass(frozen=True)
class KittiFrame:
    """One line of a split file: `2011_09_26/2011_09_26_drive_0002_sync 0000000069 l`."""

    folder: str  # "<date>/<drive>_sync"
    index: int
    camera: int  # 2 (left colour) or 3 (right colour)

    @property
    def date(self) -> str:
        return self.folder.split("/")[0]

    @property
    def drive(self) -> str:
        return self.folder.split("/")[-1]

    def __str__(self) -> str:
        return f"{self.folder} {self.index:010d} {'l' if self.camera == 2 else 'r'}"

    def image_path(self, root: Path) -> Path:
        base = Path(root) / self.folder / f"image_{self.camera:02d}" / "data" / f"{self.index:010d}"
        for suffix in FRAME_SUFFIXES:
            if base.with_suffix(suffix).exists():
                return base.with_suffix(suffix)
        return base.with_suffix(".png")

    def velodyne_path(self, root: Path) -> Path:
        return Path(root) / self.folder / "velodyne_points" / "data" / f"{self.index:010d}.bin"

    def annotated_path(self, root: Path) -> Path:
        return (Path(root) / self.folder / "proj_depth" / "groundtruth" / f"image_{self.camera:02d}"
                / f"{self.index:010d}.png")

    def calib_dir(self, root: Path) -> Path:
        return Path(root) / self.date


# A split file larger than this is not a split (about 100 000 frames; Eigen's is 40 kB).
MAX_SPLIT_BYTES = 5 * 10**6
_SPLIT_LINE = re.compile(r"^(\S+)\s+(\d+)\s+([lr])$")


def read_split(path: str | Path) -> list[KittiFrame]:
    """Parse an Eigen-format split file; frame numbers may or may not be zero-padded."""
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"split file not found: {path}")
    if path.stat().st_size > MAX_SPLIT_BYTES:
        raise DepthdaError(f"split file {path} is over {MAX_SPLIT_BYTES // 10**6} MB; a split lists frames, "
                           "one a line (Eigen's has 697)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DepthdaError(f"split file is not UTF-8 text: {path}") from None
    frames = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = _SPLIT_LINE.match(line)
        if not match:
            raise DepthdaError(
                f"{path}:{number}: expected '<date>/<drive>_sync <frame> l|r', got {line!r}")
        folder, index, side = match.groups()
        frames.append(KittiFrame(folder.strip("/"), int(index), CAMERA_OF_SIDE[side]))
    if not frames:
        raise DepthdaError(f"split file is empty: {path}")
    return frames


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read a KITTI calibration text file (`key: numbers...`); non-numeric entries are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"calibration file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DepthdaError(f"calibration file is not text (KITTI's calib_cam_to_cam.txt format): {path}") from None
    data = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            data[key.strip()] = np.array([float(x) for x in value.split()], dtype=np.float64)
        except ValueError:
            pass  # e.g. calib_time
    return data


@dataclass(frozen=True)
class KittiCalib:
    """What projection needs from a drive date's calibration, for one colour camera."""

    p_rect: np.ndarray  # 3×4, P_rect_0c
    r_rect: np.ndarray  # 4×4, R_rect_00 padded
    velo_to_cam: np.ndarray  # 4×4, [R|T] velodyne → reference camera
    image_size: tuple[int, int]  # (h, w) from S_rect_0c

    @property
    def velo_to_image(self) -> np.ndarray:
        return self.p_rect @ self.r_rect @ self.velo_to_cam

    @property
    def focal_px(self) -> float:
        return float(self.p_rect[0, 0])


def _matrix(calib: dict[str, np.ndarray], key: str, shape: tuple[int, int], path: Path) -> np.ndarray:
    if key not in calib or calib[key].size != shape[0] * shape[1]:
        raise DepthdaError(f"{path}: missing or malformed {key}")
    return calib[key].reshape(shape)


def rectified_camera(path: str | Path, camera: int = 2) -> tuple[float, float]:
    """(focal length, principal row) in pixels, P_rect_0c[0, 0] and [1, 2] of a KITTI
    calib_cam_to_cam.txt (camera 2 = left colour)."""
    calib = read_calib_file(path)
    key = f"P_rect_{camera:02d}"
    if key not in calib or calib[key].size != 12:
        raise DepthdaError(f"{path}: missing or malformed {key} (expected a KITTI calib_cam_to_cam.txt)")
    return float(calib[key][0]), float(calib[key][6])


def load_calib(calib_dir: str | Path, camera: int = 2) -> KittiCalib:
    calib_dir = Path(calib_dir)
    cam_path, velo_path = calib_dir / "calib_cam_to_cam.txt", calib_dir / "calib_velo_to_cam.txt"
    cam, velo = read_calib_file(cam_path), read_calib_file(velo_path)
    r_rect = np.eye(4)
    r_rect[:3, :3] = _matrix(cam, "R_rect_00", (3, 3), cam_path)
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = _matrix(velo, "R", (3, 3), velo_path)
    velo_to_cam[:3, 3] = _matrix(velo, "T", (3, 1), velo_path)[:, 0]
    width, height = _matrix(cam, f"S_rect_{camera:02d}", (1, 2), cam_path)[0]
    return KittiCalib(
        p_rect=_matrix(cam, f"P_rect_{camera:02d}", (3, 4), cam_path),
        r_rect=r_rect,
        velo_to_cam=velo_to_cam,
        image_size=(int(height), int(width)),
    )


def load_velodyne(path: str | Path) -> np.ndarray:
    """N×4 float32 (x, y, z, reflectance) from a KITTI .bin scan."""
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"velodyne scan not found: {path}")
    if path.stat().st_size % 16:  # four float32 a point; fromfile would drop a partial one silently
        raise DepthdaError(f"velodyne scan is truncated or not float32 x,y,z,r (size not a multiple of 16 bytes): {path}")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise DepthdaError(f"velodyne scan is truncated or not float32 x,y,z,r: {path}")
    return raw.reshape(-1, 4)


def project_velodyne(points: np.ndarray, calib: KittiCalib, use_velodyne_x: bool = True) -> np.ndarray:
    """Sparse H×W float32 depth map (0 = no point) from a scan, monodepth2's convention.

    `use_velodyne_x=False` stores camera z instead of the scanner's forward distance.
    """
    height, width = calib.image_size
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    pts = pts[pts[:, 0] >= 0]
    homogeneous = np.hstack([pts, np.ones((len(pts), 1))])
    projected = homogeneous @ calib.velo_to_image.T
    with np.errstate(divide="ignore", invalid="ignore"):
        u = projected[:, 0] / projected[:, 2]
        v = projected[:, 1] / projected[:, 2]
    depth = pts[:, 0] if use_velodyne_x else projected[:, 2]
    finite = np.isfinite(u) & np.isfinite(v)
    # KITTI's devkit indexes pixels from 1; the published tables inherit round() - 1.
    col = np.round(u[finite]) - 1
    row = np.round(v[finite]) - 1
    depth = depth[finite]
    keep = (col >= 0) & (row >= 0) & (col < width) & (row < height)
    col, row, depth = col[keep].astype(np.int64), row[keep].astype(np.int64), depth[keep]
    out = np.full(height * width, np.inf)
    np.minimum.at(out, row * width + col, depth)  # the closest point wins a shared pixel
    out[~np.isfinite(out)] = 0
    out[out < 0] = 0
    return out.reshape(height, width).astype(np.float32)


def read_annotated_depth(path: str | Path) -> np.ndarray:
    """KITTI annotated depth PNG: uint16, metres × 256, 0 = invalid."""
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"annotated depth not found: {path}")
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise DepthdaError(f"cannot read annotated depth: {path}")
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise DepthdaError(f"annotated depth must be a 1-channel 16-bit PNG: {path}")
    return depth.astype(np.float32) / 256.0


def check_gt_kind(gt: str) -> str:
    if gt not in GT_KINDS:
        raise DepthdaError(f"unknown ground truth {gt!r} (use {' or '.join(GT_KINDS)})")
    return gt


def required_files(frame: KittiFrame, root: Path, gt: str) -> list[Path]:
    if check_gt_kind(gt) == "velodyne":
        calib = frame.calib_dir(root)
        return [frame.velodyne_path(root), calib / "calib_cam_to_cam.txt", calib / "calib_velo_to_cam.txt"]
    return [frame.annotated_path(root)]


def check_files(paths_per_frame: list[list[Path]], what: str) -> None:
    """Fail once, listing how many files are missing and the first one."""
    missing = [p for paths in paths_per_frame for p in dict.fromkeys(paths) if not p.is_file()]
    if missing:
        raise DepthdaError(f"{len(missing)} {what} file(s) missing, first: {missing[0]}")


def load_ground_truth(frame: KittiFrame, root: str | Path, gt: str = "velodyne") -> np.ndarray:
    root = Path(root)
    if check_gt_kind(gt) == "velodyne":
        calib = load_calib(frame.calib_dir(root), frame.camera)
        return project_velodyne(load_velodyne(frame.velodyne_path(root)), calib)
    return read_annotated_depth(frame.annotated_path(root))
