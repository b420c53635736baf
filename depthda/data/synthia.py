"""SYNTHIA reader and writer.

On-disk format (SYNTHIA-RAND-CITYSCAPES and SYNTHIA-SEQS README, "DESCRIPTION"): RGB images are
ordinary 8-bit PNGs; depth images are 16-bit-per-channel PNGs with the depth in centimetres
repeated in each of the 3 channels. Pillow opens such files as 8-bit RGB and silently destroys
the depth, so everything here goes through OpenCV with IMREAD_UNCHANGED, and an 8-bit depth file
(the trace of a Pillow round trip) is refused rather than misread.

Layouts, told apart by `detect_layout`:
  rand  SYNTHIA-RAND-CITYSCAPES  <root>/RGB/*.png            <root>/Depth/Depth/*.png
  seqs  SYNTHIA-SEQS (one sequence folder, left front camera)
                                 <root>/RGB/Stereo_Left/Omni_F/*.png   <root>/Depth/Stereo_Left/Omni_F/*.png
RGB and depth are paired by file name.

Depth range: `read_depth` caps depth at `max_depth` (default 80 m, the range of the KITTI
evaluation the model is scored on; SYNTHIA's sky reaches the format's 655.35 m). 0 stays 0 and
means "no depth".

Train/validation split (`split_pairs`): a pair is validation when crc32(file stem) mod 1000 <
round(val_fraction × 1000). The decision depends on the name alone, so it is the same on every
machine and does not change with listing order or when files are added or removed. If that
leaves no validation pair among ≥ 2 pairs (tiny datasets), the pair with the lowest hash bucket
(ties: smallest name) becomes validation, and symmetrically the highest moves back to training if
no training pair is left. SEQS frames are consecutive video frames, so a SEQS validation frame
has near-duplicate neighbours in training: it measures fitting, not generalisation.

Focal length: SYNTHIA's published camera has f = 532.740352 px at 1280×760 (cx 640, cy 380);
an `intrinsics.json` at the root ({"fx": ..., "width": ...}) overrides it. A resize by s scales
the focal length by s; a crop leaves it unchanged. So a sample resized to cover the training size
and then cropped has focal f × (resized width / reference width) = `focal_at(resized width)` —
not `focal_at(crop width)`. Each dataset item carries its own value in "focal_px".

Loading speed: `depthda data prepare` (depthda/data/prepare.py) writes copies in this format that
decode several times faster (uncompressed RGB, one-channel depth, frames at the training size)
and give the same samples; a root holding such copies carries a `prepared.json`, and
SynthiaDataset refuses it at a size or view it was not made for. `depthda bench data` measures
each stage of an item (`SynthiaDataset.item(index, lap)`).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import cv2
import numpy as np
from depthda.errors import DepthdaError
from depthda.utils.fsio import atomic_path
from depthda.utils.images import read_rgb, read_unchanged

# SYNTHIA-RAND-CITYSCAPES: <root>/RGB/0000000.png and <root>/Depth/Depth/0000000.png
RAND_RGB_DIR = Path("RGB")
RAND_DEPTH_DIR = Path("Depth") / "Depth"
# SYNTHIA-SEQS: <root>/RGB/Stereo_Left/Omni_F/000000.png and <root>/Depth/Stereo_Left/Omni_F/...
SEQS_RGB_DIR = Path("RGB") / "Stereo_Left" / "Omni_F"
SEQS_DEPTH_DIR = Path("Depth") / "Stereo_Left" / "Omni_F"

CM_PER_M = 100.0
MAX_ENCODABLE_M = 65535 / CM_PER_M


def encode_depth_png(depth_m: np.ndarray) -> np.ndarray:
    """Metres (H×W float) -> SYNTHIA's H×W×3 uint16 centimetres; 0 stays 0 (no depth)."""
    cm = np.clip(np.round(np.asarray(depth_m, dtype=np.float64) * CM_PER_M), 0, 65535).astype(np.uint16)
    return np.repeat(cm[:, :, None], 3, axis=2)


def write_synthia_sample(root: str | Path, index: int, rgb: np.ndarray, depth_m: np.ndarray,
                         layout: str = "rand") -> tuple[Path, Path]:
    """Write one RGB (H×W×3 uint8, RGB order) + depth (H×W metres) pair in SYNTHIA's format.

    `layout` is "rand" (RAND-CITYSCAPES, 7-digit names) or "seqs" (SEQS, 6-digit names).
    """
    root = Path(root)
    if layout == "rand":
        rgb_dir, depth_dir, name = RAND_RGB_DIR, RAND_DEPTH_DIR, f"{index:07d}.png"
    elif layout == "seqs":
        rgb_dir, depth_dir, name = SEQS_RGB_DIR, SEQS_DEPTH_DIR, f"{index:06d}.png"
    else:
        raise ValueError(f"unknown SYNTHIA layout {layout!r}")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("rgb must be an H×W×3 uint8 array")
    if rgb.shape[:2] != np.shape(depth_m):
        raise ValueError("rgb and depth sizes differ")
    rgb_path, depth_path = root / rgb_dir / name, root / depth_dir / name
    for path, img in ((rgb_path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), (depth_path, encode_depth_png(depth_m))):
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), img):
                raise OSError(f"could not write {path}")
    return rgb_path, depth_path


# ---------------------------------------------------------------------------------------------
# Reading

LAYOUT_DIRS = {"rand": (RAND_RGB_DIR, RAND_DEPTH_DIR), "seqs": (SEQS_RGB_DIR, SEQS_DEPTH_DIR)}
LAYOUT_NAMES = {"rand": "RAND-CITYSCAPES", "seqs": "SEQS"}
# SYNTHIA's camera as hard-coded in public SYNTHIA tools (no file of the release states it): 1280×760.
SYNTHIA_FOCAL_PX = 532.740352
SYNTHIA_WIDTH_PX = 1280
INTRINSICS_FILE = "intrinsics.json"
# Written by `depthda data prepare` (depthda/data/prepare.py) beside the copies it makes.
PREPARED_MANIFEST = "prepared.json"
# KITTI evaluation range (Eigen split tables cap at 80 m); SYNTHIA's sky would otherwise be 655 m.
DEFAULT_MAX_DEPTH = 80.0
VAL_BUCKETS = 1000
SPLITS = ("train", "val", "all")
# The authors' released inference code feeds the networks 256×1024 (H×W) images.
DEFAULT_SIZE = (256, 1024)


def _looked_for() -> str:
    return " and ".join(f"{rgb.as_posix()}/ + {depth.as_posix()}/ ({LAYOUT_NAMES[name]})"
                        for name, (rgb, depth) in LAYOUT_DIRS.items())


def _root_contents(root: Path, limit: int = 10) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not entries:
        return "nothing (empty folder)"
    more = f", … ({len(entries) - limit} more)" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _check_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DepthdaError(f"SYNTHIA root not found (or not a folder): {root}")
    return root


def detect_layout(root: str | Path) -> str:
    """"rand" (RAND-CITYSCAPES) or "seqs" (SEQS), from the folders present under `root`."""
    root = _check_root(root)
    found = [name for name, (rgb, depth) in LAYOUT_DIRS.items()
             if (root / rgb).is_dir() and (root / depth).is_dir()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DepthdaError(f"both SYNTHIA layouts under {root} ({_looked_for()}); point at one of them")
    raise DepthdaError(f"no SYNTHIA layout under {root}: looked for {_looked_for()}; "
                       f"found: {_root_contents(root)}")


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir()
            if p.suffix.lower() == ".png" and not p.name.startswith(".") and p.is_file()}


def list_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(RGB, depth) paths under a SYNTHIA root, matched by file name, sorted by name."""
    root = _check_root(root)
    layout = detect_layout(root)
    rgb_dir, depth_dir = (root / d for d in LAYOUT_DIRS[layout])
    rgbs, depths = _pngs(rgb_dir), _pngs(depth_dir)
    if not rgbs and not depths:
        raise DepthdaError(f"no PNG images in {rgb_dir} or {depth_dir}")
    if rgbs.keys() != depths.keys():
        no_depth = sorted(rgbs.keys() - depths.keys())
        if no_depth:
            example = f"{rgb_dir / no_depth[0]} has no {depth_dir / no_depth[0]}"
        else:
            name = sorted(depths.keys() - rgbs.keys())[0]
            example = f"{depth_dir / name} has no {rgb_dir / name}"
        raise DepthdaError(f"SYNTHIA RGB and depth do not match under {root}: {len(rgbs)} RGB and "
                           f"{len(depths)} depth images; e.g. {example}")
    return [(rgbs[name], depths[name]) for name in sorted(rgbs)]


def read_depth_cm(path: str | Path) -> np.ndarray:
    """A SYNTHIA depth PNG as stored: H×W uint16 centimetres (0 = no depth), after the checks
    `read_depth` makes (16-bit, 1 channel or 3 equal ones)."""
    path = Path(path)
    img = read_unchanged(path, "depth image")
    if img.dtype == np.uint8:
        raise DepthdaError(f"8-bit depth in {path}: SYNTHIA depth is 16-bit; "
                           "was it saved through Pillow? Use the original file")
    if img.dtype != np.uint16:
        raise DepthdaError(f"unexpected depth pixel type {img.dtype} in {path}: SYNTHIA depth is 16-bit")
    if img.ndim == 3:
        if img.shape[2] != 3:
            raise DepthdaError(f"depth {path} has {img.shape[2]} channels; SYNTHIA depth has 1 or 3")
        if not (np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 0], img[:, :, 2])):
            # SYNTHIA-AL/-SF spread one depth over R, G and B; that is a different encoding.
            raise DepthdaError(f"depth {path} has 3 different channels; SYNTHIA-RAND/SEQS depth repeats "
                               "centimetres in every channel (other SYNTHIA releases are not supported)")
        img = np.ascontiguousarray(img[:, :, 0])
    return img


def _check_max_depth(max_depth: float | None) -> None:
    if max_depth is not None and not max_depth > 0:
        raise DepthdaError(f"max_depth must be positive, got {max_depth}")


def depth_cm_to_m(cm: np.ndarray, max_depth: float | None = DEFAULT_MAX_DEPTH) -> np.ndarray:
    """uint16 centimetres -> float32 metres capped at `max_depth`: the arithmetic of `read_depth`.

    Element by element, so it gives the same result before or after any resampling that only
    picks pixels (nearest-neighbour resize, crop, flip): SynthiaDataset converts after cropping.
    """
    _check_max_depth(max_depth)
    depth = cm.astype(np.float32) / np.float32(CM_PER_M)
    if max_depth is not None:
        np.minimum(depth, np.float32(max_depth), out=depth)
    return depth


def read_depth(path: str | Path, max_depth: float | None = DEFAULT_MAX_DEPTH) -> np.ndarray:
    """A SYNTHIA depth PNG as H×W float32 metres; 0 = no depth; capped at `max_depth` (None: no cap)."""
    return depth_cm_to_m(read_depth_cm(path), max_depth)


# OpenCV >= 4.10 can hand out RGB order itself (libpng swaps while decoding), saving a pass.
_IMREAD_COLOR_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def read_synthia_rgb(path: str | Path) -> np.ndarray:
    """An RGB image as H×W×3 uint8 RGB, equal to `depthda.utils.images.read_rgb`'s result.

    8-bit RGB PNGs (SYNTHIA's, and `depthda data prepare`'s) are decoded straight to RGB order;
    anything else goes through `read_rgb`'s conversions.
    """
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    head = data[:26].tobytes()
    if (_IMREAD_COLOR_RGB is not None and len(head) == 26 and head.startswith(_PNG_SIGNATURE)
            and head[12:16] == b"IHDR" and head[24] == 8 and head[25] == 2):
        img = cv2.imdecode(data, _IMREAD_COLOR_RGB)
        if img is not None and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8:
            return img
    return read_rgb(path)


def read_intrinsics(root: str | Path) -> tuple[float, int]:
    """(focal length px, image width it refers to) from <root>/intrinsics.json, else SYNTHIA's."""
    path = Path(root) / INTRINSICS_FILE
    if not path.is_file():
        return SYNTHIA_FOCAL_PX, SYNTHIA_WIDTH_PX
    try:
        data = json.loads(path.read_text())
        fx, width = float(data["fx"]), int(data["width"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DepthdaError(f"{path} must be JSON with numbers \"fx\" and \"width\" ({exc})") from None
    if not (fx > 0 and width > 0):
        raise DepthdaError(f"{path}: fx and width must be positive")
    return fx, width


def check_prepared(root: str | Path, size: tuple[int, int], view: str) -> None:
    """Refuse copies made by `depthda data prepare` for another training size or view: they give
    the originals' samples only at the (size, view) they were made for (or at any, if made at
    full resolution). A root without the manifest is not checked."""
    path = Path(root) / PREPARED_MANIFEST
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text())
        made_size, made_view = data["size"], data["view"]
        if made_size is not None:
            made_size = (int(made_size[0]), int(made_size[1]))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DepthdaError(f"{path} is not a manifest of `depthda data prepare` ({exc}); "
                           "prepare the copies again") from None
    if made_size is None or (made_size, made_view) == (tuple(size), view):
        return
    source = data.get("source", "the original SYNTHIA root")
    raise DepthdaError(f"{root} holds copies prepared for the {made_view!r} view at {made_size[0]}x{made_size[1]}, "
                       f"not the {view!r} view at {size[0]}x{size[1]}: run `depthda data prepare {source} --out ... "
                       f"--size {size[0]}x{size[1]} --view {view}` (or without --size for any size), or use the originals")


def _bucket(name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) % VAL_BUCKETS


def split_pairs(pairs: list[tuple[Path, Path]], val_fraction: float = 0.05
                ) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(train, val) by a hash of each RGB file stem; see the module docstring. Both sorted by name."""
    if not 0.0 <= val_fraction < 1.0:
        raise DepthdaError(f"val_fraction must be in [0, 1), got {val_fraction}")
    pairs = list(pairs)
    threshold = round(val_fraction * VAL_BUCKETS)
    keys = [(Path(pair[0]).stem, str(pair)) for pair in pairs]
    by_name = sorted(range(len(pairs)), key=lambda i: keys[i])
    is_val = [_bucket(keys[i][0]) < threshold for i in range(len(pairs))]
    if val_fraction > 0 and len(pairs) >= 2:
        by_bucket = sorted(range(len(pairs)), key=lambda i: (_bucket(keys[i][0]), keys[i]))
        if not any(is_val):
            is_val[by_bucket[0]] = True
        if all(is_val):
            is_val[by_bucket[-1]] = False
    return ([pairs[i] for i in by_name if not is_val[i]], [pairs[i] for i in by_name if is_val[i]])


def list_rgb(root: str | Path) -> list[Path]:
    """The RGB images of a SYNTHIA root, sorted, without their depth (stage 2's synthetic domain):
    SEQS's left front camera if the root has that folder, else RAND-CITYSCAPES' RGB/."""
    root = Path(root)
    seqs = root / SEQS_RGB_DIR
    folder = seqs if seqs.is_dir() else root / RAND_RGB_DIR
    return sorted(p for p in folder.glob("*.png") if p.is_file())


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}


def depth_header_problem(path: Path) -> str | None:
    """What is wrong with a depth file, from its PNG header alone (33 bytes), or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(33)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if len(head) < 33 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return "not a PNG file"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    bits, colour = head[24], head[25]
    if width == 0 or height == 0:
        return "empty image"
    if colour not in (0, 2):
        return f"{_PNG_COLOUR_TYPES.get(colour, 'unknown')} PNG (SYNTHIA depth is 1 or 3 channels)"
    if bits != 16:
        return f"{bits}-bit PNG (SYNTHIA depth is 16-bit; was it saved through Pillow?)"
    return None


def check_depth_files(paths: list[Path]) -> None:
    """Scan every depth file's header before training starts, so a bad file stops the run at
    once with a count and the first path, not hours later in a loader worker."""
    bad = [(p, problem) for p in paths if (problem := depth_header_problem(p)) is not None]
    if bad:
        path, problem = bad[0]
        raise DepthdaError(f"{len(bad)} of {len(paths)} depth files are unusable; first: {path}: {problem}")
