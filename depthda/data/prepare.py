"""`depthda data prepare`: copies of a SYNTHIA root that a loader worker reads several times faster,
giving the same training samples.

Where the time goes (`depthda bench data` measures it per stage; numbers in docs/speed.md):
inflating the RGB and the 16-bit 3-channel depth PNG is most of a sample, the resize (and, on half
the samples, the colour jitter) most of the rest. OpenCV's reduced decoding (IMREAD_REDUCED_*)
does not help: for PNG it decodes the whole image and then shrinks it (by 2 gives 640 columns,
too few for a 1024-wide view), bilinearly, which would also invent depths. Nor do OpenCV threads in a worker (`depthda bench data`'s
originals-cv2-threads): workers already fill the cores. The copies made here keep SYNTHIA's
layout, file names and encodings, so SynthiaDataset reads them unchanged:

  RGB    8-bit RGB PNG stored without compression (zlib level 0): decoding is a copy.
  Depth  16-bit PNG, centimetres as in SYNTHIA, one grey channel instead of three equal ones
         (SynthiaDataset reads both), zlib level 1 with the "up" filter: a fifth of the
         3-channel file's decoding time.

Sizes, chosen by (`size`, `view`), the training size and view the copies are for:
  size None        every frame at its own resolution: samples identical for any size and view.
  view "whole"     every frame resized to `size` exactly as the "whole" view does it
                   (augment.whole_view): the loader then has nothing left to resize, and samples
                   are identical (bit for bit) to those of the originals at that size and view.
  view "crop"      every frame shrunk, aspect ratio exactly kept, to the smallest size that still
                   covers `size` at the largest random zoom (augment.MAX_ZOOM), plus rounding,
                   if that saves at least a quarter of the pixels (e.g. 760×1280 -> 285×480 for
                   128×416; for 256×1024 it would be 703×1184, too few pixels saved to load
                   faster, so frames keep their resolution and the samples stay identical).
                   The random draws, crop windows, flips and focal lengths are those of the
                   originals (the resized size is computed from the same ratio, so it agrees
                   unless a float product lands within ~1e-13 of a rounding tie); pixels are resampled twice (source -> copy -> view) instead of once,
                   so RGB differs by about one grey level on average (at most the local contrast,
                   at edges) and each depth pixel is the original depth of a source pixel at most
                   one pixel away from the one the originals give. If no small enough size keeps
                   the aspect ratio exactly, frames keep their resolution (samples identical).
A `prepared.json` manifest records what the copies are for; SynthiaDataset refuses to train on
them at another size or view (copies made without `size` serve any).

The output folder is built beside `out` and renamed into place when every file has been written
and read back equal to what was meant (depthda.utils.fsio.atomic_dir): an interrupted run leaves
no partial output.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path

import cv2
import numpy as np

from depthda.data.augment import MAX_ZOOM, VIEWS, cover_scale, whole_view
from depthda.data.synthia import (INTRINSICS_FILE, LAYOUT_DIRS, PREPARED_MANIFEST, check_depth_files,
                                  detect_layout, list_pairs, read_depth_cm, read_intrinsics, read_synthia_rgb)
from depthda.errors import DepthdaError
from depthda.utils.fsio import atomic_dir
from depthda.utils.outputs import check_outputs, check_overwrite

FORMAT = "depthda-prepared-synthia"
FORMAT_VERSION = 1
RGB_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 0]
DEPTH_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11; older ones pick libpng's default filters
    DEPTH_PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
DEFAULT_VIEW = "whole"  # the view both training presets use
# Crop view: frames are shrunk only to at most this fraction of their pixels, else kept whole.
MIN_SAVING = 0.75


def frame_size_for(source: tuple[int, int], size: tuple[int, int] | None, view: str = DEFAULT_VIEW,
                   max_zoom: float = MAX_ZOOM) -> tuple[int, int]:
    """(H, W) of the copy of a `source`-sized frame prepared for training at `size` in `view`."""
    height, width = int(source[0]), int(source[1])
    if size is None:
        return height, width
    out_h, out_w = int(size[0]), int(size[1])
    if view == "whole":
        return out_h, out_w
    if view != "crop":
        raise DepthdaError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    # The largest resized frame the crop view draws is round(side × cover × zoom), zoom < max_zoom.
    scale = cover_scale(height, width, (out_h, out_w)) * max_zoom
    need_h, need_w = math.ceil(height * scale), math.ceil(width * scale)
    # Exactly the source's aspect ratio, so the cover scale, the resized size and with them every
    # random draw of the view come out as with the originals: multiples of the reduced ratio.
    g = math.gcd(height, width)
    unit_h, unit_w = height // g, width // g
    k = max(-(-need_h // unit_h), -(-need_w // unit_w))
    if (k * unit_h) * (k * unit_w) > MIN_SAVING * height * width:
        # Too few pixels saved to load faster (docs/speed.md) for giving up identical samples.
        return height, width
    return k * unit_h, k * unit_w


def _check_args(size, view, workers) -> tuple[tuple[int, int] | None, str | None]:
    if size is not None:
        if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
            raise DepthdaError(f"size must be (height, width) in pixels, got {size}")
        size = (int(size[0]), int(size[1]))
        view = DEFAULT_VIEW if view is None else view
        if view not in VIEWS:
            raise DepthdaError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    elif view is not None:
        raise DepthdaError("--view says which training view the copies are resized for; it needs --size "
                           "(without --size frames keep their resolution and serve every view)")
    if int(workers) < 1:
        raise DepthdaError(f"--workers must be at least 1, got {workers}")
    return size, view


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    check_outputs(trees=[src], folders=[out])
    dirs = {d for pair in LAYOUT_DIRS.values() for d in pair}
    check_overwrite(out, overwrite, "depthda data prepare", PREPARED_MANIFEST, _is_prepared,
                    lambda rel: str(rel) in (PREPARED_MANIFEST, INTRINSICS_FILE)
                    or (rel.suffix == ".png" and rel.parent in dirs))


def _is_prepared(folder: Path) -> bool:
    try:
        return json.loads((folder / PREPARED_MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _write_png(path: Path, img: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), img, params):
        raise OSError(f"could not write {path}")


def prepare_pair(rgb_path: Path, depth_path: Path, rgb_out: Path, depth_out: Path,
                 size: tuple[int, int] | None, view: str | None) -> dict:
    """Read one pair as SynthiaDataset does, resize it for (size, view), write and verify the copy."""
    rgb = read_synthia_rgb(rgb_path)
    cm = read_depth_cm(depth_path)
    if rgb.shape[:2] != cm.shape:
        raise DepthdaError(f"RGB {rgb_path} is {rgb.shape[1]}×{rgb.shape[0]} but its depth "
                           f"{depth_path} is {cm.shape[1]}×{cm.shape[0]}")
    source = cm.shape
    target = frame_size_for(source, size, view or DEFAULT_VIEW)
    if target != source:
        # The whole view's own resize: area to shrink, bilinear to enlarge, per axis; depth by
        # centre-aligned nearest neighbour, so every depth value is one of the file's.
        rgb, cm, _ = whole_view(rgb, cm, target)
    _write_png(rgb_out, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), RGB_PNG_PARAMS)
    _write_png(depth_out, np.ascontiguousarray(cm), DEPTH_PNG_PARAMS)
    # Read back through the reader training uses: what it will see is exactly what was meant.
    if not (np.array_equal(read_synthia_rgb(rgb_out), rgb) and np.array_equal(read_depth_cm(depth_out), cm)):
        raise DepthdaError(f"{rgb_out.name}: the copy read back differs from what was written (faulty disk?)")
    return {"source": [int(source[0]), int(source[1])], "frame": [int(target[0]), int(target[1])],
            "bytes": rgb_out.stat().st_size + depth_out.stat().st_size}


def _worker_init() -> None:
    # Ctrl-C is the parent's to handle: it stops handing out frames and waits for these.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(0)


def _run_jobs(jobs: list[tuple], workers: int, done: Callable[[dict], None]) -> None:
    if workers == 1:
        for job in jobs:
            done(prepare_pair(*job))
        return
    import multiprocessing

    # spawn: the parent may hold torch's and OpenCV's thread pools, which fork does not copy safely.
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init)
    try:
        futures = [executor.submit(prepare_pair, *job) for job in jobs]
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in finished:
                done(future.result())  # re-raises a worker's error here
    finally:
        # Nothing may still be writing into the folder when atomic_dir removes it.
        executor.shutdown(wait=True, cancel_futures=True)


def prepare_synthia(src: str | Path, out: str | Path, size: tuple[int, int] | None = None, view: str | None = None,
                    overwrite: bool = False, workers: int = 1, progress: bool = False) -> dict:
    """Write fast-loading copies of the SYNTHIA root `src` into `out`; see the module docstring.

    Returns a summary: counts, frame sizes, bytes, seconds, whether samples are identical.
    """
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    size, view = _check_args(size, view, workers)
    layout = detect_layout(src)
    pairs = list_pairs(src)
    check_depth_files([depth for _, depth in pairs])
    read_intrinsics(src)  # a broken intrinsics.json stops here, not in training
    _check_out(src, out, overwrite)
    rgb_dir, depth_dir = LAYOUT_DIRS[layout]
    workers = min(int(workers), len(pairs))

    start = time.perf_counter()
    frames: dict[str, str] = {}
    total_bytes = 0
    with atomic_dir(out) as tmp:
        (tmp / rgb_dir).mkdir(parents=True)
        (tmp / depth_dir).mkdir(parents=True)
        jobs = [(rgb, depth, tmp / rgb_dir / rgb.name, tmp / depth_dir / depth.name, size, view)
                for rgb, depth in pairs]
        bar = tqdm(total=len(jobs), desc="prepare", unit="frame", disable=None if progress else True,
                   dynamic_ncols=True)

        def done(result: dict) -> None:
            nonlocal total_bytes
            frames["x".join(map(str, result["source"]))] = "x".join(map(str, result["frame"]))
            total_bytes += result["bytes"]
            bar.update(1)

        try:
            _run_jobs(jobs, workers, done)
        finally:
            bar.close()
        if (src / INTRINSICS_FILE).is_file():
            # fx is given at a reference width, which stays right for any resize of the whole frame.
            (tmp / INTRINSICS_FILE).write_bytes((src / INTRINSICS_FILE).read_bytes())
        identical = size is None or view == "whole" or all(a == b for a, b in frames.items())
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION,
            "source": str(src.resolve()), "layout": layout, "pairs": len(pairs),
            # The training size and view these copies are for; null: any (frames at full resolution).
            "size": list(size) if size is not None else None, "view": view,
            "max_zoom": MAX_ZOOM if view == "crop" else None,
            "frame_sizes": frames,
            "samples": "identical to the originals'" if identical else
                       "same geometry and random draws as the originals'; pixels resampled twice "
                       "(RGB about 1 grey level apart on average; depth from source pixels at most 1 px away)",
            "rgb_png": "8-bit RGB, stored without compression (zlib level 0)",
            "depth_png": "16-bit grey, centimetres (SYNTHIA's unit, one channel), zlib level 1",
        }
        (tmp / PREPARED_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    seconds = time.perf_counter() - start
    return {"out": str(out), "pairs": len(pairs), "layout": layout, "size": list(size) if size else None,
            "view": view, "frame_sizes": frames, "identical": identical, "bytes": total_bytes,
            "seconds": seconds, "frames_per_s": len(pairs) / seconds if seconds > 0 else float("inf"),
            "workers": workers}
