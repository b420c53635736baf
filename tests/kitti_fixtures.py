"""KITTI raw-layout fixtures built from the real frames shipped in data/kitti."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from depthda.data.kitti import read_calib_file

OBJECT_DRIVE = "2011_09_26/2011_09_26_drive_9008_sync"  # a made-up drive name for object frame 000008
TINY_DRIVE = "2011_09_26/2011_09_26_drive_0023_sync"


def _fmt(values) -> str:
    return " ".join(f"{v:.12e}" for v in np.ravel(values))


def build_object_as_raw(object_dir: Path, root: Path) -> Path:
    """Lay out KITTI object frame 000008 as a one-frame raw drive (object calib holds the same
    matrices: P2 = P_rect_02, R0_rect = R_rect_00, Tr_velo_to_cam = [R|T])."""
    calib = read_calib_file(object_dir / "calib" / "000008.txt")
    date_dir = root / "2011_09_26"
    drive = root / OBJECT_DRIVE
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    shutil.copy(object_dir / "image_2" / "000008.png", drive / "image_02" / "data" / "0000000000.png")
    shutil.copy(object_dir / "velodyne" / "000008.bin", drive / "velodyne_points" / "data" / "0000000000.bin")
    tr = calib["Tr_velo_to_cam"].reshape(3, 4)
    (date_dir / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\n"
        f"S_rect_02: 1.242000e+03 3.750000e+02\n"
        f"R_rect_00: {_fmt(calib['R0_rect'])}\n"
        f"P_rect_02: {_fmt(calib['P2'])}\n")
    (date_dir / "calib_velo_to_cam.txt").write_text(
        f"calib_time: 15-Mar-2012 11:37:16\nR: {_fmt(tr[:, :3])}\nT: {_fmt(tr[:, 3])}\n")
    return root


def write_split(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_split_lines() -> list[str]:
    return [f"{TINY_DRIVE} {i:010d} l" for i in range(7)]
