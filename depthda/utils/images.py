"""Reading user images into one convention: H×W×3 uint8 in RGB order.

Users hand us grayscale, RGBA, palette and 16-bit files; every reader converts them here so the
networks only ever see 8-bit RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from depthda.errors import DepthdaError
from depthda.utils.fsio import atomic_path, write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


# Here rather than in depthda.infer.video_io: the training data (depthda.data) recognises videos too.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def is_video_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def to_rgb_uint8(img: np.ndarray, *, bgr: bool = True) -> np.ndarray:
    """Convert a decoded image (gray, gray+alpha, BGR/RGB, BGRA/RGBA; uint8/uint16/float) to RGB uint8."""
    img = np.asarray(img)
    if img.dtype == np.uint16:
        # 16-bit photos use the full range; a plain >> 8 keeps their appearance.
        img = (img >> 8).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        scale = 255.0 if img.size and float(np.nanmax(img)) <= 1.0 else 1.0
        img = np.clip(np.nan_to_num(img) * scale, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DepthdaError(f"unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim != 3:
        raise DepthdaError(f"unsupported image shape {img.shape}")
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:  # gray + alpha
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(img)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB) if bgr else np.ascontiguousarray(img[:, :, :3])
    raise DepthdaError(f"unsupported number of channels {channels}")


def read_unchanged(path: str | Path, what: str = "image") -> np.ndarray:
    """Decode a file with every bit depth and channel kept (OpenCV's IMREAD_UNCHANGED), or fail in one line."""
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"{what} not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DepthdaError(f"cannot decode {what} (corrupt or not an image): {path}")
    return img


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB; one clear error if it is missing or unreadable."""
    return to_rgb_uint8(read_unchanged(path), bgr=True)


def write_image(path: str | Path, image: np.ndarray, suffix: str | None = None) -> None:
    """cv2.imwrite's file (format from `suffix`, default the path's), encoded in memory and written
    by Python: a full disk is then an OSError naming the file, not libpng's "Write Error" line."""
    path = Path(path)
    ok, encoded = cv2.imencode(suffix or path.suffix, image)
    if not ok:
        raise DepthdaError(f"could not encode {path}")
    write_bytes(path, encoded.tobytes())


def write_rgb(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image atomically (format from the suffix)."""
    with atomic_path(path) as tmp:
        write_image(tmp, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), Path(path).suffix)


def list_images(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """Image files under `folder`, recursive and sorted (hidden files and folders left out, links
    to folders not followed); also returns the non-image files skipped. A subfolder that cannot be
    read, or a name that is not UTF-8 (OpenCV crashes on it), is refused rather than skipped."""
    folder = Path(folder)

    def unreadable(err: OSError):
        raise DepthdaError(f"cannot read the folder {err.filename}: {err.strerror}")

    images, skipped = [], []
    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(root) / name
            if name.startswith(".") or not path.is_file():
                continue
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(path).decode("utf-8", "replace")
                raise DepthdaError(f"{shown!r} is not valid UTF-8; rename the file") from None
            (images if is_image_file(path) else skipped).append(path)
    return sorted(images), sorted(skipped)


def resize_interpolation(width_in: int, width_out: int) -> int:
    """The one resize rule of training loaders and inference: area averaging to shrink, bilinear
    to enlarge (cv2 filters)."""
    return cv2.INTER_AREA if width_out < width_in else cv2.INTER_LINEAR
