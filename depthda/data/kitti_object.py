"""Lay out a KITTI *object* frame (image_2/, velodyne/, calib/) as a one-frame KITTI *raw* drive.

The object benchmark's calibration holds the raw matrices under other names: P2 = P_rect_02,
R0_rect = R_rect_00, Tr_velo_to_cam = [R|T]. Converting lets such frames, which come with their
velodyne scan, be evaluated by the same velodyne ground-truth code as the Eigen split.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from depthda.data.kitti import read_calib_file
from depthda.errors import DepthdaError


def _numbers(values: np.ndarray) -> str:
    return " ".join(f"{v:.12e}" for v in np.ravel(values))


def object_frame_as_raw(object_root: str | Path, frame_id: str, out_root: str | Path,
                        folder: str = "2011_09_26/2011_09_26_drive_9000_sync") -> str:
    """Write `<out_root>/<folder>/{image_02,velodyne_points}/data/0000000000.*` and the date's
    calibration; return the split line for the frame. `folder` is a made-up drive name."""
    object_root, out_root = Path(object_root), Path(out_root)
    image = object_root / "image_2" / f"{frame_id}.png"
    scan = object_root / "velodyne" / f"{frame_id}.bin"
    calib_path = object_root / "calib" / f"{frame_id}.txt"
    missing = [p for p in (image, scan, calib_path) if not p.is_file()]
    if missing:
        raise DepthdaError(f"{len(missing)} KITTI object file(s) missing, first: {missing[0]}")
    calib = read_calib_file(calib_path)
    for key, size in (("P2", 12), ("R0_rect", 9), ("Tr_velo_to_cam", 12)):
        if calib.get(key, np.zeros(0)).size != size:
            raise DepthdaError(f"{calib_path}: missing or malformed {key}")
    height, width = cv2.imread(str(image), cv2.IMREAD_UNCHANGED).shape[:2]
    date_dir = out_root / folder.split("/")[0]
    drive = out_root / folder
    (drive / "image_02" / "data").mkdir(parents=True, exist_ok=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(image, drive / "image_02" / "data" / "0000000000.png")
    shutil.copy(scan, drive / "velodyne_points" / "data" / "0000000000.bin")
    tr = calib["Tr_velo_to_cam"].reshape(3, 4)
    (date_dir / "calib_cam_to_cam.txt").write_text(
        f"S_rect_02: {width:.6e} {height:.6e}\n"
        f"R_rect_00: {_numbers(calib['R0_rect'])}\n"
        f"P_rect_02: {_numbers(calib['P2'])}\n")
    (date_dir / "calib_velo_to_cam.txt").write_text(f"R: {_numbers(tr[:, :3])}\nT: {_numbers(tr[:, 3])}\n")
    return f"{folder} 0000000000 l"
