"""What a `depthda predict` run will read and write, checked without a model: the options
(PredictOptions), the input's kind, the planned outputs and their guard (depthda.utils.outputs);
and the same for `depthda export` (check_export).

Nothing here imports torch, so a bad run is refused in one line before the seconds torch takes to
import (depthda.infer.predict runs these checks first, then loads depthda.infer.local_predict).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from depthda.data.kitti import rectified_camera
from depthda.errors import DepthdaError
from depthda.infer.colorize import DEFAULT_CMAP, check_range, colormap_lut
from depthda.infer.pointcloud import CLOUD_SUFFIXES, CloudOptions
from depthda.paths import default_checkpoint
from depthda.utils.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image_file, is_video_file, list_images
from depthda.utils.memory import check_fits
from depthda.utils.outputs import check_outputs, check_replaceable, files_under
from depthda.utils.size import parse_size

DEPTH_FORMATS = ("png16", "npy")
ENGINES = ("auto", "torch", "onnxruntime")  # depthda.infer.engine runs them
MAX_BATCH = 1024  # frames per call: more only multiplies the memory held

# Focal lengths a camera can have, in pixels: below one pixel or above a million (a 0.1° field of
# view over 2000 px is 1.1e6) is a typo, and would scale depth to zero or past float range.
FOCAL_PX_RANGE = (1.0, 1e6)


def check_focal(focal_px: float) -> float:
    lo, hi = FOCAL_PX_RANGE
    if not (math.isfinite(focal_px) and lo <= focal_px <= hi):
        raise DepthdaError(f"focal length must be a positive, finite number of pixels from {lo:g} to {hi:g}, "
                           f"got {focal_px}")
    return float(focal_px)


def model_folders(checkpoint: str | Path | None, style: str | Path | None, depth: str | Path | None,
                  use_style: bool) -> tuple[Path | None, Path | None, Path]:
    """(checkpoint, style run, depth run) a pipeline loads from: a checkpoint folder (default: the
    shipped one) or two training runs; refuses a missing folder or a half-given pair."""
    if checkpoint is not None and (style is not None or depth is not None):
        raise DepthdaError("give either a checkpoint folder or --style/--depth runs, not both")
    if checkpoint is None and style is None and depth is None:
        checkpoint = default_checkpoint()
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_dir():
            raise DepthdaError(f"checkpoint folder not found: {checkpoint}")
        return checkpoint, checkpoint / "style", checkpoint / "depth"
    if depth is None:
        raise DepthdaError("--style RUN needs --depth RUN too")
    if style is None and use_style:
        raise DepthdaError("--depth RUN without --style RUN: add --style RUN, or --no-style")
    return None, Path(style) if style is not None else None, Path(depth)


def depth_suffix(fmt: str) -> str:
    return ".png" if fmt == "png16" else ".npy"


def folder_output_names(inp: Path, image: Path, depth_format: str | None, cloud_format: str | None = None) -> list[Path]:
    """Where a folder run writes `image`, relative to each of planned_outputs("folder", ...)'s
    folders: the colour PNG (or point cloud) in OUTPUT, and the lossless depth in OUTPUT_depth."""
    colour = image.relative_to(inp).with_suffix("." + cloud_format if cloud_format else ".png")
    return [colour] + ([colour.with_suffix(depth_suffix(depth_format))] if depth_format else [])


def focal_from_calib(path: str | Path, camera: int = 2) -> float:
    """P_rect_0c[0, 0] of a KITTI calib_cam_to_cam.txt (camera 2 = left colour)."""
    return rectified_camera(path, camera)[0]


def input_kind(path: Path) -> str:
    if not path.exists():
        raise DepthdaError(f"input not found: {path}")
    if path.is_dir():
        return "folder"
    if not path.is_file():  # opening a pipe would wait for a writer
        raise DepthdaError(f"input is not a regular file (a pipe, socket or device): {path}")
    if path.stat().st_size == 0:
        raise DepthdaError(f"input file is empty: {path}")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:  # e.g. no read permission: a decoder would only say "cannot decode"
        raise DepthdaError(f"cannot read {path}: {exc.strerror}") from None
    if is_video_file(path):
        return "video"
    if is_image_file(path):
        return "image"
    raise DepthdaError(f"unsupported input {path}: expected an image ({', '.join(IMAGE_SUFFIXES)}), "
                       f"a folder of images or a video ({', '.join(VIDEO_SUFFIXES)})")


def cloud_suffix(kind: str, out: Path, cloud: CloudOptions | None) -> str | None:
    """".ply" or ".glb" when a run writes point clouds instead of colour images, else None."""
    if kind == "image" and out.suffix.lower() in CLOUD_SUFFIXES:
        return out.suffix.lower()
    return "." + cloud.format if cloud is not None and cloud.format else None


def planned_outputs(kind: str, inp: Path, out: Path, depth_format: str | None) -> tuple[list[Path], list[Path]]:
    """(files, folders) a run will replace: the main output and the lossless-depth side output."""
    ext = depth_suffix(depth_format) if depth_format else None
    if kind == "video":
        return [out], [out.with_name(out.stem + "_depth")] if ext else []
    if kind == "folder":
        return [], [out] + ([out.with_name(out.name + "_depth")] if ext else [])
    target = out if out.suffix else out / (inp.stem + ".png")
    return [target] + ([target.with_name(target.stem + "_depth" + ext)] if ext else []), []


def _check_no_alias(kind: str, inp: Path, out: Path, depth_format: str | None) -> None:
    """No output may be the input, hold it (a replaced folder would delete it) or, for a folder
    input, lie inside it (depthda.utils.outputs); a replaced folder holds only depthda's files."""
    files, folders = planned_outputs(kind, inp, out, depth_format)
    check_outputs(reads=[inp] if kind != "folder" else [], trees=[inp] if kind == "folder" else [],
                  files=files, folders=folders)
    for folder in folders:
        check_replaceable(folder, lambda rel: rel.suffix.lower() in (".png", ".npy", *CLOUD_SUFFIXES), "depthda")


def _check_output(kind: str, inp: Path, out: Path, depth_format: str | None = None) -> None:
    _check_no_alias(kind, inp, out, depth_format)
    if kind == "video" and out.suffix.lower() not in VIDEO_SUFFIXES:
        raise DepthdaError(f"video output must end in one of {', '.join(VIDEO_SUFFIXES)}: {out}")
    if kind == "folder":
        if out.exists() and not out.is_dir():
            raise DepthdaError(f"output for a folder must be a folder, but {out} is a file")
    if kind == "image" and out.suffix and out.suffix.lower() not in IMAGE_SUFFIXES + CLOUD_SUFFIXES:
        raise DepthdaError(f"image output must end in one of {', '.join(IMAGE_SUFFIXES + CLOUD_SUFFIXES)} "
                           f"(or have no suffix to name a folder): {out}")


@dataclass(frozen=True)
class PredictOptions:
    """Everything predict_path takes besides the input and the output, as one value.

    `engine`: what runs the networks (auto, torch or onnxruntime; depthda.infer.engine).
    `cloud`: how point clouds are made, and for a folder which kind to write (local_predict's docstring).
    `smooth`: videos go through the motion-compensated temporal filter (depthda.infer.temporal);
    False gives every frame's own depth, as for images. The rest are `depthda predict`'s options.
    """
    pipeline: object = None  # a loaded DepthPipeline, used instead of loading one
    checkpoint: str | Path | None = None
    style: str | Path | None = None
    depth: str | Path | None = None
    use_style: bool = True
    device: str = "auto"
    engine: str = "auto"
    batch_size: int | None = None
    cmap: str = DEFAULT_CMAP
    depth_range: tuple[float, float] | None = None
    side_by_side: bool = False
    depth_format: str | None = None
    focal_px: float | None = None
    calib: str | Path | None = None
    compile: bool = False
    max_frames: int | None = None
    progress: bool = True
    smooth: bool = True
    cloud: CloudOptions | None = None


@dataclass
class Request:
    """A checked run: what the input is, and every option that can be checked without a model."""
    kind: str                     # "image", "folder" or "video"
    input: Path
    output: Path
    focal_px: float | None        # --focal, or P_rect_02's from --calib
    images: list[Path] = field(default_factory=list)  # a folder's images, sorted (list_images)
    skipped: int = 0              # a folder's other files


def check_request(inp: Path, out: Path, o: PredictOptions) -> Request:
    """Every check that needs no model, so that a bad run fails before one loads; lists a folder."""
    kind = input_kind(inp)
    if o.depth_format is not None and o.depth_format not in DEPTH_FORMATS:
        raise DepthdaError(f"unknown depth format {o.depth_format!r} (use png16 or npy)")
    _check_output(kind, inp, out, o.depth_format)
    if o.focal_px is not None and o.calib is not None:
        raise DepthdaError("give --focal or --calib, not both")
    focal_px = focal_from_calib(o.calib) if o.calib is not None else o.focal_px
    if focal_px is not None:
        check_focal(focal_px)
    if o.batch_size is not None and not 1 <= o.batch_size <= MAX_BATCH:
        raise DepthdaError(f"--batch-size must be from 1 to {MAX_BATCH}, got {o.batch_size}")
    if o.max_frames is not None and o.max_frames < 1:
        raise DepthdaError("--frames must be at least 1")
    if cloud_suffix(kind, out, o.cloud) and (kind == "video" or o.side_by_side):
        raise DepthdaError("point clouds are made from images and folders of images, without --side-by-side")
    if kind == "image" and o.cloud is not None and o.cloud.format and cloud_suffix(kind, out, None) != "." + o.cloud.format:
        raise DepthdaError(f"--cloud {o.cloud.format} for one image: name the output .{o.cloud.format}")
    colormap_lut(o.cmap)  # an unknown colormap fails before any model loads
    if o.pipeline is None:
        model_folders(o.checkpoint, o.style, o.depth, o.use_style)
    if o.depth_range is not None:
        check_range(*o.depth_range)
    request = Request(kind, inp, out, focal_px)
    if kind == "folder":
        images, skipped = list_images(inp)
        if not images:
            raise DepthdaError(f"no images in {inp} ({len(skipped)} other files; images end in "
                               f"{', '.join(IMAGE_SUFFIXES)})")
        _check_distinct_names(inp, out, images)
        request.images, request.skipped = images, len(skipped)
    return request


def _check_distinct_names(inp: Path, out: Path, images: list[Path]) -> None:
    # Outputs are named after the input without its suffix: a.jpg and a.png would share a.png.
    seen: dict[Path, Path] = {}
    for image in images:
        name = folder_output_names(inp, image, None)[0]
        if name in seen:
            raise DepthdaError(f"{seen[name]} and {image} would both be written to {out / name}; "
                               "rename one of them")
        seen[name] = image


def check_staged(roots: list[Path], count: int) -> None:
    # A staging folder removed mid-run is re-created by the writers with only the later files.
    for root in roots:
        found = sum(1 for p in root.rglob("*") if p.is_file())
        if found != count:
            raise DepthdaError(f"the staging folder {root} holds {found} of the {count} files written: it was "
                               "changed during the run; nothing was replaced")


EXPORT_FORMATS = ("onnx", "torchscript")
EXPORT_INPUT_TYPES = ("uint8", "float")
# Held per pixel of the export size while tracing and checking: the uint8 sample, its float copy,
# the resize intermediates and the depth, each in PyTorch and in the exported runtime: 16 floats.
EXPORT_BYTES_PER_PIXEL = 64


def check_export_size(size: tuple[int, int]) -> None:
    check_fits(size[0] * size[1] * EXPORT_BYTES_PER_PIXEL, f"exporting at {size[0]}x{size[1]}")


def check_export(fmt: str, output: str | Path, *, checkpoint: str | Path | None, style: str | Path | None,
                 depth: str | Path | None, size: tuple[int, int] | str | None,
                 input_type: str) -> tuple[int, int] | None:
    """What export_pipeline checks before the model loads; returns the size (None: the model's)."""
    if fmt not in EXPORT_FORMATS:
        raise DepthdaError(f"unknown export format {fmt!r} (use {' or '.join(EXPORT_FORMATS)})")
    if input_type not in EXPORT_INPUT_TYPES:
        raise DepthdaError(f"unknown input type {input_type!r} (use {' or '.join(EXPORT_INPUT_TYPES)})")
    check_outputs(reads=files_under(*model_folders(checkpoint, style, depth, use_style=False)), files=[output])
    if isinstance(size, str):
        size = parse_size(size, min_side=1)  # the pipeline fits any size to the networks (its resize policy)
    if size is None:
        return None
    size = (int(size[0]), int(size[1]))
    check_export_size(size)
    return size
