"""`depthda predict` in this process (predict_local) and the pieces a torchrun launch shares with it
(depthda.infer.distributed_predict); depthda.infer.predict.predict_path chooses between the two.
An image, a folder of images or a video → coloured depth.

Outputs
    image in   → OUTPUT image file (format from its suffix), or OUTPUT/<stem>.png if OUTPUT has
                 no suffix;
    folder in  → OUTPUT folder mirroring the input's relative paths, each as .png;
    video in   → OUTPUT video: same frame count, frame rate and size as the input (H.264, see
                 depthda.infer.video_io); with --side-by-side every output is input | depth, twice as wide.
Lossless depth (`depth_format`): "png16" = uint16 PNG, metres × 256 rounded, clipped to 65535
(KITTI's convention), or "npy" = float32 metres, at the input's resolution, beside the output:
`<out stem>_depth.png|npy` for an image, `<OUTPUT>_depth/<relative path>` for a folder and
`<out stem>_depth/000000.png|npy ...` (one per frame) for a video.
Point clouds (depthda.infer.pointcloud) instead of colour: an image's OUTPUT ending in .ply or
.glb, or a folder's with `cloud=CloudOptions(format="ply"|"glb")` (OUTPUT/<relative path>.ply|glb).

Colours: one fixed log-scale range for every image and frame (no per-frame normalisation), by
default the depth model's own output range (DepthParam min..max, 0.5–80 m for the shipped
configs), near = bright; see depthda.infer.colorize.

Nothing is half-written: a video goes to a temporary file renamed when complete; image outputs
are written to a staging folder and moved into place only after the whole run succeeded, so a
failing run leaves existing outputs byte-identical.

Under torchrun (WORLD_SIZE > 1) predict_path splits a folder across the launch's processes and the
result is the same files, byte for byte: see depthda.infer.distributed_predict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from depthda.errors import DepthdaError
from depthda.infer.checks import (PredictOptions, Request, check_request, check_staged, depth_suffix, folder_output_names,
                                  planned_outputs)
from depthda.infer.colorize import DepthColorizer, side_by_side
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.pointcloud import CLOUD_SUFFIXES, CloudOptions, principal_from_calib, write_cloud
from depthda.infer.scheduling import FrameParallel, run_overlapped
from depthda.infer.temporal import TemporalFilter
from depthda.infer.video_io import CPU_DECODER, CPU_ENCODER, VideoReader, VideoWriter
from depthda.utils.device import pick_device
from depthda.utils.fsio import atomic_dir, atomic_path, signals_deferred, write_bytes
from depthda.utils.images import read_rgb, write_image, write_rgb


@dataclass
class PredictResult:
    kind: str                     # "image", "folder" or "video"
    output: Path
    frames: int                   # images or video frames written
    skipped: int = 0              # non-image files skipped in a folder
    depth_output: Path | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Under torchrun, the process that made this result; rank 0's reports the whole run (its
    # totals, which the other ranks' results repeat), and only rank 0 prints it.
    rank: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------- depth files

def depth_png16(depth_m: np.ndarray) -> np.ndarray:
    """Metres → KITTI's uint16 PNG values (metres × 256, rounded, clipped to 0..65535)."""
    return np.clip(np.rint(np.asarray(depth_m, np.float32) * 256.0), 0, 65535).astype(np.uint16)


def write_depth(path: Path, depth_m: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "png16":
        write_image(path, depth_png16(depth_m))
    else:
        # Through Python's own write: np.save to a file path reports a full disk without an errno.
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(depth_m, np.float32))
        write_bytes(path, buffer.getvalue())


def _progress(total: int | None, desc: str, enabled: bool):
    # disable=None: only on a terminal, so logs and captured stderr hold just the result or the error.
    return tqdm(total=total, desc=desc, unit="frame", disable=None if enabled else True, leave=False,
                dynamic_ncols=True)


# ---------------------------------------------------------------------------- the runs

def predict_local(inp: Path, out: Path, o: PredictOptions, request: Request | None = None) -> PredictResult:
    """predict_path in this process alone; `request`: check_request's for these arguments, if made already."""
    request = request or check_request(inp, out, o)
    on_cpu = (o.pipeline.device if o.pipeline is not None else pick_device(o.device)).type == "cpu"
    reader = (VideoReader(inp, max_frames=o.max_frames, **(CPU_DECODER if on_cpu else {}))
              if request.kind == "video" else None)
    try:
        with open_runner(o, request.focal_px) as opts:
            t0 = time.perf_counter()
            if request.kind == "video":
                result = _predict_video(reader, out, temporal=TemporalFilter() if o.smooth else None, **opts)
            elif request.kind == "folder":
                result = _predict_images(inp, request.images, out, folder=True, **opts)
                result.skipped = request.skipped
            else:
                result = _predict_images(inp, [inp], out, folder=False, **opts)
            result.seconds = time.perf_counter() - t0
        return result
    finally:
        if reader is not None:
            reader.close()


GPU_BATCH = 8  # frames per network call on CUDA unless --batch-size says otherwise


@contextlib.contextmanager
def open_runner(o: PredictOptions, focal_px: float | None):
    """Load the pipeline (unless `o` carries one) and yield the keyword arguments of the runs
    (_predict_images, predict_into_folders, _predict_video): the model stage, colorizer and options.

    On CPU the model stage is a FrameParallel, running while the block lasts.
    """
    pipeline = o.pipeline
    if pipeline is None:
        pipeline = DepthPipeline.from_checkpoint(o.checkpoint, style=o.style, depth=o.depth, device=o.device,
                                                 use_style=o.use_style, engine=o.engine, compile=o.compile)
    if focal_px is not None:
        pipeline.focal_scale(focal_px, 1)  # fails early if the model cannot be rescaled
    near, far = o.depth_range or (pipeline.depth_param.min_depth, pipeline.depth_param.max_depth)
    colorizer = DepthColorizer(near, far, o.cmap)
    with contextlib.ExitStack() as stack:
        if pipeline.device.type == "cpu":
            run = stack.enter_context(FrameParallel(pipeline))
            # One frame per worker per call: bigger CPU batches bought nothing (bench).
            batch_size = o.batch_size or run.workers
        else:
            run = pipeline.run_prepared
            batch_size = o.batch_size or GPU_BATCH
        cloud = o.cloud or CloudOptions()
        if o.calib is not None:
            cloud = dataclasses.replace(cloud, principal=principal_from_calib(o.calib))
        yield dict(pipeline=pipeline, run=run, colorizer=colorizer, batch_size=batch_size, sbs=o.side_by_side,
                   depth_format=o.depth_format, focal_px=focal_px, progress=o.progress, cloud=cloud)


def _image_batches(images: list[Path], pipeline, batch_size: int):
    """Read and prepare images, batching consecutive images of one size."""
    batch: list = []
    for path in images:
        rgb = read_rgb(path)
        if batch and (len(batch) == batch_size or batch[0][1].shape != rgb.shape):
            yield _pack(batch, pipeline)
            batch = []
        batch.append((path, rgb))
    if batch:
        yield _pack(batch, pipeline)


def _pack(batch, pipeline):
    return [p for p, _ in batch], [im for _, im in batch], np.stack([pipeline.prepare(im) for _, im in batch])


def _predict_images(inp: Path, images: list[Path], out: Path, *, folder: bool, depth_format: str | None,
                    **opts) -> PredictResult:
    files, folders = planned_outputs("folder" if folder else "image", inp, out, depth_format)
    with contextlib.ExitStack() as stack:
        # Everything is written to temporaries beside its target; they replace the old outputs
        # (a folder as a whole) only when every image succeeded.
        if folder:
            roots = [stack.enter_context(atomic_dir(target)) for target in folders]
            busy = predict_into_folders(inp, images, roots, depth_format=depth_format, **opts)
            check_staged(roots, len(images))
        else:
            targets = [stack.enter_context(atomic_path(target)) for target in files]
            busy = _write_images(images, {images[0]: targets}, depth_format=depth_format, **opts)
    written = folders if folder else files  # [colour] or [colour, depth]
    return PredictResult("folder" if folder else "image", written[0], len(images),
                         depth_output=written[1] if depth_format else None, stage_seconds=busy)


def predict_into_folders(inp: Path, images: list[Path], roots: list[Path], *, depth_format: str | None,
                         cloud: CloudOptions, **opts) -> dict[str, float]:
    """A folder run's files for `images` (under `inp`), written under `roots` (folders the caller
    stages, in planned_outputs' order) at folder_output_names; returns the seconds each stage was busy."""
    targets = {p: [root / name for root, name in zip(roots, folder_output_names(inp, p, depth_format, cloud.format))]
               for p in images}
    return _write_images(images, targets, depth_format=depth_format, cloud=cloud, **opts)


def _write_images(images: list[Path], targets: dict[Path, list[Path]], *, pipeline, run, colorizer,
                  batch_size: int, sbs: bool, depth_format: str | None, focal_px: float | None,
                  progress: bool, cloud: CloudOptions) -> dict[str, float]:
    """Colour (and, with `depth_format`, lossless depth) of each image, written to its targets:
    [colour file] or [colour file, depth file]; a colour file named .ply or .glb gets the point cloud."""
    bar = _progress(len(images), "predict", progress)

    def model(item):
        paths, frames, prepared = item
        h, w = frames[0].shape[:2]
        return paths, frames, run(prepared, h, w)

    def finish(item):
        paths, frames, working = item
        h, w = frames[0].shape[:2]
        for path, rgb, depth in zip(paths, frames, pipeline.finish(working, h, w, focal_px)):
            if targets[path][0].suffix.lower() in CLOUD_SUFFIXES:
                write_cloud(targets[path][0], pipeline.cloud_of(rgb, depth, focal_px, cloud))
            else:
                colour = colorizer(depth)
                write_rgb(targets[path][0], side_by_side(rgb, colour) if sbs else colour)
            if depth_format:
                write_depth(targets[path][1], depth, depth_format)
            bar.update(1)

    try:
        return run_overlapped(_image_batches(images, pipeline, batch_size), model, [("write", finish)],
                              source_name="read")
    finally:
        bar.close()


def run_video(reader: VideoReader, write_frame: Callable[[np.ndarray], None], *, pipeline: DepthPipeline, run,
              colorizer: DepthColorizer, batch_size: int, sbs: bool = False, focal_px: float | None = None,
              on_depth: Callable[[int, np.ndarray], None] | None = None,
              temporal: TemporalFilter | None = None) -> dict[str, float]:
    """Coloured depth for every frame of `reader` (input | depth with `sbs`), handed to `write_frame` in order.

    Decoding and resizing, the networks (`run`: a FrameParallel or pipeline.run_prepared), colour
    mapping and writing run overlapped on their own threads (run_overlapped); `on_depth(i, metres)`
    sees frame i's depth at the input's resolution. `temporal` filters the working-size depth in
    frame order on the colour stage's thread, so it adds work but no latency beyond the frame.
    Returns the seconds each stage was busy.
    """
    info = reader.info
    h, w = info.height, info.width
    hn, wn, _, _ = pipeline.working_size(h, w)

    def source():
        batch = []
        for frame in reader:
            if frame.shape[:2] != (h, w):
                raise DepthdaError(f"frame {reader.frames_read - 1} of {reader.path} changes size "
                                   f"({frame.shape[1]}x{frame.shape[0]} vs {w}x{h})")
            batch.append(frame)
            if len(batch) == batch_size:
                yield batch, np.stack([pipeline.prepare(f) for f in batch])
                batch = []
        if batch:
            yield batch, np.stack([pipeline.prepare(f) for f in batch])

    # A frame-parallel CPU run hands back pending results: the model stage only queues work, and a
    # stage of its own waits for each batch in order (so colour-mapping's busy time is its own).
    submit = getattr(run, "submit", None)

    def model(item):
        frames, prepared = item
        return frames, prepared, (submit(prepared, h, w) if submit else run(prepared, h, w))

    def model_wait(item):
        frames, prepared, pending = item
        return frames, prepared, pending.result()

    index = 0

    def colour(item):
        nonlocal index
        frames, prepared, working = item
        if temporal is not None:
            working = np.stack([temporal(p[:hn, :wn], d) for p, d in zip(prepared, working)])
        outs = []
        for rgb, depth in zip(frames, pipeline.finish(working, h, w, focal_px)):
            if on_depth is not None:
                on_depth(index, depth)
            index += 1
            c = colorizer(depth)
            outs.append(side_by_side(rgb, c) if sbs else c)
        return outs

    def encode(outs):
        for o in outs:
            write_frame(o)

    waits = [("model_wait", model_wait)] if submit else []
    return run_overlapped(source(), model, [*waits, ("colorize", colour), ("encode", encode)])


def _predict_video(reader: VideoReader, out: Path, *, pipeline, run, colorizer, batch_size: int, sbs: bool,
                   depth_format: str | None, focal_px: float | None, progress: bool,
                   temporal: TemporalFilter | None, cloud: CloudOptions) -> PredictResult:
    info = reader.info
    total = min(info.frame_count, reader.max_frames or info.frame_count) or None
    depth_dir = out.with_name(out.stem + "_depth") if depth_format else None
    bar = _progress(total, "predict", progress)
    with contextlib.ExitStack() as stack:
        # The side folder is entered first so it is swapped last, after the video's own rename
        # (the step more likely to fail) has succeeded.
        tmp_depth = stack.enter_context(atomic_dir(depth_dir)) if depth_dir else None
        tmp_video = stack.enter_context(atomic_path(out))
        # Entered last, left first: on any failure the encoder is stopped before its file is deleted.
        with signals_deferred():  # no Ctrl-C between starting the encoder and registering its stop
            writer = stack.enter_context(VideoWriter(tmp_video, info.width * (2 if sbs else 1), info.height,
                                                     info.fps, **(CPU_ENCODER if pipeline.device.type == "cpu" else {})))
        ext = depth_suffix(depth_format) if depth_format else None

        def write_frame(frame):
            writer.write(frame)
            bar.update(1)

        write_depth_frame = (lambda i, d: write_depth(tmp_depth / f"{i:06d}{ext}", d, depth_format)) if tmp_depth else None
        try:
            busy = run_video(reader, write_frame, pipeline=pipeline, run=run, colorizer=colorizer,
                             batch_size=batch_size, sbs=sbs, focal_px=focal_px, on_depth=write_depth_frame,
                             temporal=temporal)
        finally:
            bar.close()
        writer.close()  # finished and checked before the output replaces anything
        if writer.frames_written != reader.frames_read:
            raise DepthdaError(f"wrote {writer.frames_written} frames but read {reader.frames_read}")
        if tmp_depth is not None:
            check_staged([tmp_depth], writer.frames_written)
    return PredictResult("video", out, writer.frames_written, depth_output=depth_dir, stage_seconds=busy)
