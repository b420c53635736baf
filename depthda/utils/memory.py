"""Refuse work the machine cannot hold, before allocating any of it."""

from __future__ import annotations

import os

from depthda.errors import DepthdaError


def available_bytes() -> int:
    """Memory a new allocation can get now: MemAvailable of /proc/meminfo, else the physical total."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 1 << 62  # unknown: do not refuse


def check_fits(need_bytes: float, what: str) -> None:
    """One line if `what` needs more than the memory available now."""
    have = available_bytes()
    if need_bytes > have:
        raise DepthdaError(f"{what} needs about {need_bytes / 1e9:.3g} GB of memory; {have / 1e9:.3g} GB is "
                           "available: choose a smaller size")


def check_disk_space(folder, need_bytes: float, what: str) -> None:
    """One line if the file system of `folder` (or its nearest existing parent) has less free
    space than `what` will write: some writers (TorchScript's) abort the process on a full disk."""
    import shutil
    from pathlib import Path

    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if need_bytes > free:
        raise DepthdaError(f"{what} needs about {need_bytes / 1e6:.3g} MB; {folder} has {free / 1e6:.3g} MB free")
