"""KITTI raw-layout fixtures built from the real frames shipped in data/kitti."""

from __future__ import annotations

from pathlib import Path

from depthda.data.kitti_object import object_frame_as_raw

OBJECT_DRIVE = "2011_09_26/2011_09_26_drive_9008_sync"  # a made-up drive name for object frame 000008
TINY_DRIVE = "2011_09_26/2011_09_26_drive_0023_sync"


def build_object_as_raw(object_dir: Path, root: Path) -> Path:
    object_frame_as_raw(object_dir, "000008", root, OBJECT_DRIVE)
    return root


def write_split(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_split_lines() -> list[str]:
    return [f"{TINY_DRIVE} {i:010d} l" for i in range(7)]
