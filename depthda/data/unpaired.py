"""Unpaired image sources for stage 2 (CycleGAN style transfer, real A → synthetic B).

Domain A (real) is a list of sources, each one of:

* a KITTI raw root (`<root>/<date>/<drive>_sync/image_02/data/*.png`; a date folder or a single
  drive folder works too): every left colour frame of every drive, minus the Eigen test drives so
  no test scene is ever seen in training, not even unlabelled;
* a video file (.mp4 .avi .mkv .mov .webm): decoded once, at most `max_video_frames` evenly spaced
  frames kept in memory, downscaled to what the training crop can use;
* any folder: its images (recursive, sorted) and its videos.

Domain B (synthetic) is a SYNTHIA root (RAND-CITYSCAPES or SEQS layout, or a folder of SEQS
sequences) or any folder of images.

Unreadable files are skipped and counted, never fatal unless nothing is left. At construction
every file is checked for a non-empty body, a known image signature and (PNG) an intact end
chunk; sets of up to `decode_check_limit` files are also fully decoded. Larger sets (full KITTI is
~40k frames, too many to decode before training starts) are decoded lazily: a file that fails then
is replaced by the next readable index and counted in `ImageSet.runtime_failures` (per process —
DataLoader workers each keep their own count).
"""

from __future__ import annotations

import copy
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from depthda.data.augment import resize_crop, to_tensor
from depthda.data.kitti import read_split
from depthda.data.synthia import list_rgb
from depthda.errors import DepthdaError
from depthda.paths import split_file
from depthda.utils.images import is_image_file, is_video_file, list_images, read_rgb

MAX_VIDEO_FRAMES = 300
DECODE_CHECK_LIMIT = 5000
# Random zoom on top of the cover scale, like CycleGAN's load 286 → crop 256 (×1.12).
MAX_ZOOM = 1.2
# Without a training size, cached video frames keep a shorter side of at most this.
DEFAULT_CACHE_SHORT_SIDE = 720


def eigen_test_drives() -> frozenset[str]:
    """The 28 drives (`2011_09_26_drive_0002_sync`, ...) of the Eigen test split."""
    return frozenset(f.drive for f in read_split(split_file("eigen")))


_KITTI_PATTERNS = ("*/*_sync/image_02/data", "*_sync/image_02/data", "image_02/data")
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*",
               b"P2", b"P3", b"P5", b"P6")
_PNG_END = b"IEND\xaeB`\x82"


@dataclass
class ImageSet:
    """One domain's images: file paths (read on demand) or cached RGB uint8 video frames."""

    domain: str
    items: list = field(default_factory=list)  # Path | np.ndarray (H×W×3 uint8 RGB)
    sources: list[str] = field(default_factory=list)
    unreadable: int = 0
    excluded_drives: list[str] = field(default_factory=list)
    excluded_frames: int = 0
    runtime_failures: int = 0
    bad: set[int] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def cached_bytes(self) -> int:
        return sum(x.nbytes for x in self.items if isinstance(x, np.ndarray))

    def read(self, index: int) -> np.ndarray:
        """The image at `index` as H×W×3 uint8 RGB; an unreadable file is replaced by the next one."""
        n = len(self.items)
        for step in range(n):
            i = (index + step) % n
            if i in self.bad:
                continue
            item = self.items[i]
            if isinstance(item, np.ndarray):
                return item
            try:
                return read_rgb(item)
            except DepthdaError:
                self.bad.add(i)
                self.runtime_failures += 1
        raise DepthdaError(f"no readable {self.domain} images left ({self.runtime_failures} failed to decode)")

    def describe(self) -> str:
        notes = []
        if self.unreadable:
            notes.append(f"{self.unreadable} unreadable skipped")
        if self.excluded_drives:
            notes.append(f"{self.excluded_frames} frames of {len(self.excluded_drives)} test drive(s) excluded")
        if self.runtime_failures:
            notes.append(f"{self.runtime_failures} failed while training")
        cached = self.cached_bytes
        if cached:
            notes.append(f"video frames cached: {cached / 2**20:.0f} MiB")
        text = f"{len(self)} images from {len(self.sources)} source{'s' if len(self.sources) != 1 else ''}"
        return text + (f" ({', '.join(notes)})" if notes else "")


def excluded_drive_names(exclude_split: str | Path | None = None, exclude_eigen_test: bool = True) -> set[str]:
    """Drive folder names (`2011_09_26_drive_0002_sync`) whose frames must not be trained on."""
    drives: set[str] = set()
    if exclude_eigen_test:
        drives |= eigen_test_drives()
    if exclude_split is not None:
        drives |= {f.drive for f in read_split(exclude_split)}
    return drives


def kitti_image_dirs(root: Path) -> list[Path]:
    """Left colour frame folders if `root` is a KITTI raw root, date folder or drive folder."""
    for pattern in _KITTI_PATTERNS:
        dirs = sorted(p for p in root.glob(pattern) if p.is_dir())
        if dirs:
            return dirs
    return []


def synthetic_image_paths(root: str | Path) -> list[Path]:
    """RGB image paths of a SYNTHIA root (RAND-CITYSCAPES or SEQS), of a folder of SEQS
    sequences, or of any folder of images."""
    root = Path(root)
    if not root.is_dir():
        raise DepthdaError(f"synthetic data folder not found: {root}")
    # Both SYNTHIA layouts keep their images under <root>/RGB/.
    roots = [root] if (root / "RGB").is_dir() else sorted(p.parent for p in root.glob("*/RGB") if p.is_dir())
    if not roots:
        images, _ = list_images(root)
        return images
    return [p for r in roots for p in list_rgb(r)]


def _quick_check(path: Path) -> bool:
    """Non-empty, a known image signature, and for PNG an intact end chunk (catches truncation)."""
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        with open(path, "rb") as f:
            head = f.read(16)
            if head.startswith(_SIGNATURES[0]):
                f.seek(max(0, size - 12))
                return _PNG_END in f.read()
    except OSError:
        return False
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _decodes(path: Path) -> bool:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return False
    # Reduced decoding is enough to prove the file is intact and is faster for JPEG.
    return data.size > 0 and cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8) is not None


def _readable(paths: list[Path], decode_check_limit: int) -> list[bool]:
    ok = [_quick_check(p) for p in paths]
    if len(paths) <= decode_check_limit:
        todo = [i for i, good in enumerate(ok) if good]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for i, good in zip(todo, pool.map(_decodes, [paths[i] for i in todo])):
                ok[i] = good
    return ok


def _cache_scale(h: int, w: int, size: tuple[int, int] | None) -> float:
    if size is None:
        return min(1.0, DEFAULT_CACHE_SHORT_SIDE / min(h, w))
    # Twice the resolution the crop needs: the random zoom never has to upsample a cached frame.
    return min(1.0, 2.0 * max(size[0] / h, size[1] / w))


def read_video_frames(path: str | Path, stride: int | None = None, max_frames: int = MAX_VIDEO_FRAMES,
                      size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Evenly spaced RGB uint8 frames of a video, at most `max_frames`, downscaled for `size`.

    Without `stride`, it is chosen from the frame count so about `max_frames` remain. When the
    container does not report a count (or `stride` is too small) every other kept frame is
    dropped whenever the list overflows, so memory stays bounded and sampling stays even.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        return []
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if stride is None:
        stride = max(1, math.ceil(count / max_frames)) if count > 0 else 1
    stride = max(1, int(stride))
    frames: list[np.ndarray] = []
    index = 0
    try:
        while True:
            if index % stride:
                if not capture.grab():
                    break
            else:
                ok, bgr = capture.read()
                if not ok or bgr is None:
                    break
                scale = _cache_scale(bgr.shape[0], bgr.shape[1], size)
                if scale < 1.0:
                    new = (max(1, round(bgr.shape[1] * scale)), max(1, round(bgr.shape[0] * scale)))
                    bgr = cv2.resize(bgr, new, interpolation=cv2.INTER_AREA)
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                if len(frames) > max_frames:
                    frames = frames[::2]
                    stride *= 2
            index += 1
    finally:
        capture.release()
    return frames


def _add_paths(out: ImageSet, paths: list[Path], excluded: set[str], decode_check_limit: int) -> int:
    kept = []
    for p in paths:
        drive = next((part for part in p.parts if part in excluded), None)
        if drive is None:
            kept.append(p)
        else:
            out.excluded_frames += 1
            if drive not in out.excluded_drives:
                out.excluded_drives.append(drive)
    ok = _readable(kept, decode_check_limit)
    out.items += [p for p, good in zip(kept, ok) if good]
    out.unreadable += ok.count(False)
    return ok.count(True)


def _add_video(out: ImageSet, path: Path, stride: int | None, max_frames: int,
               size: tuple[int, int] | None) -> int:
    frames = read_video_frames(path, stride, max_frames, size)
    if not frames:
        out.unreadable += 1
    out.items += frames
    return len(frames)


def collect_images(sources, *, domain: str = "real", size: tuple[int, int] | None = None,
                   video_stride: int | None = None, max_video_frames: int = MAX_VIDEO_FRAMES,
                   exclude_split: str | Path | None = None, exclude_eigen_test: bool = True,
                   decode_check_limit: int = DECODE_CHECK_LIMIT) -> ImageSet:
    """Gather the real-domain images of every source (see the module docstring).

    `size` = (H, W) of the training crop only bounds the memory of cached video frames.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    sources = [Path(s) for s in sources]
    if not sources:
        raise DepthdaError(f"no {domain} image sources given")
    excluded = excluded_drive_names(exclude_split, exclude_eigen_test)
    out = ImageSet(domain=domain)
    for src in sources:
        out.sources.append(str(src))
        before_unreadable, before_excluded = out.unreadable, out.excluded_frames
        if src.is_file() and is_video_file(src):
            readable = _add_video(out, src, video_stride, max_video_frames, size)
        elif src.is_dir():
            kitti_dirs = kitti_image_dirs(src)
            if kitti_dirs:
                paths = [p for d in kitti_dirs for p in sorted(d.iterdir()) if p.is_file() and is_image_file(p)]
                videos = []
            else:
                images, others = list_images(src)
                paths, videos = images, [p for p in others if is_video_file(p)]
            readable = _add_paths(out, paths, excluded, decode_check_limit)
            for video in videos:
                readable += _add_video(out, video, video_stride, max_video_frames, size)
            if not paths and not videos:
                raise DepthdaError(f"no images or videos found in {src}")
        elif src.is_file():
            readable = _add_paths(out, [src], excluded, decode_check_limit)
        else:
            raise DepthdaError(f"{domain} image source not found: {src}")
        if not readable:
            unreadable = out.unreadable - before_unreadable
            excluded_here = out.excluded_frames - before_excluded
            if excluded_here:
                raise DepthdaError(
                    f"no images left in {src}: {excluded_here} frames belong to test drives "
                    f"({', '.join(out.excluded_drives)}) and are left out so test scenes never reach "
                    f"training ({unreadable} unreadable skipped)")
            raise DepthdaError(f"no readable images in {src} ({unreadable} unreadable skipped)")
    _require_two(out)
    return out


def collect_synthetic(root: str | Path, *, decode_check_limit: int = DECODE_CHECK_LIMIT) -> ImageSet:
    """The synthetic-domain images of a SYNTHIA root or image folder."""
    root = Path(root)
    paths = synthetic_image_paths(root)
    if not paths:
        raise DepthdaError(f"no images found in {root}")
    out = ImageSet(domain="synthetic", sources=[str(root)])
    if not _add_paths(out, paths, set(), decode_check_limit):
        raise DepthdaError(f"no readable images in {root} ({out.unreadable} unreadable skipped)")
    _require_two(out)
    return out


def _require_two(images: ImageSet) -> None:
    if len(images) < 2:
        raise DepthdaError(f"the {images.domain} domain has {len(images)} image; style transfer "
                           "needs at least 2 images per domain")


def random_resize_crop(rgb: np.ndarray, size: tuple[int, int], rng: np.random.Generator | None,
                       augment: bool = True) -> np.ndarray:
    """CycleGAN's resize_and_crop for any aspect ratio: scale to cover `size` × U[1, 1.2], random
    crop, random horizontal flip. Without `augment`: cover scale, centre crop, no flip."""
    rgb, _, _ = resize_crop(rgb, size, rng, train=augment, max_zoom=MAX_ZOOM)
    if augment and rng.random() < 0.5:
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb)


class UnpairedDataset(torch.utils.data.Dataset):
    """Items {"A": real, "B": synthetic}, each 3×H×W float32 in [-1, 1].

    Length is that of the larger domain; A walks the real set in order (wrapping), B is drawn at
    random — both like CycleGAN's unaligned dataset. Randomness comes from
    default_rng([seed, epoch, index]), so an item depends only on those three numbers (workers,
    resume and reruns agree); call `set_epoch` at the start of each epoch.
    """

    def __init__(self, real_sources, synthetic_root: str | Path, size: tuple[int, int], seed: int = 0,
                 augment: bool = True, *, video_stride: int | None = None,
                 max_video_frames: int = MAX_VIDEO_FRAMES, exclude_split: str | Path | None = None,
                 exclude_eigen_test: bool = True, decode_check_limit: int = DECODE_CHECK_LIMIT):
        size = (int(size[0]), int(size[1]))
        if min(size) <= 0:
            raise DepthdaError(f"training size must be positive, got {size}")
        self.size, self.seed, self.augment, self.epoch = size, int(seed), bool(augment), 0
        self.real = collect_images(real_sources, size=size, video_stride=video_stride,
                                   max_video_frames=max_video_frames, exclude_split=exclude_split,
                                   exclude_eigen_test=exclude_eigen_test, decode_check_limit=decode_check_limit)
        self.synthetic = collect_synthetic(synthetic_root, decode_check_limit=decode_check_limit)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def variant(self, *, seed: int | None = None, augment: bool | None = None) -> "UnpairedDataset":
        """The same images with another seed or augmentation (e.g. for validation), without
        scanning the sources and decoding the videos again."""
        other = copy.copy(self)
        other.seed = self.seed if seed is None else int(seed)
        other.augment = self.augment if augment is None else bool(augment)
        other.epoch = 0
        return other

    def __len__(self) -> int:
        return max(len(self.real), len(self.synthetic))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        b_index = int(rng.integers(len(self.synthetic)))
        a = random_resize_crop(self.real.read(index % len(self.real)), self.size, rng, self.augment)
        b = random_resize_crop(self.synthetic.read(b_index), self.size, rng, self.augment)
        return {"A": to_tensor(a), "B": to_tensor(b)}

    def summary(self) -> str:
        return f"real: {self.real.describe()}; synthetic: {self.synthetic.describe()}"
