"""`depthda eval kitti` as a Python function: the split's frames, their ground truth (KITTI raw data
or a file from `depthda data export-gt`), the predictions to score (an .npy file, a checkpoint run
on the images, or a baseline), the protocol's metrics and the reports."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from depthda import paths
from depthda.data.gt_file import GroundTruthFile
from depthda.data.kitti import (KittiFrame, check_files, check_gt_kind, load_ground_truth, read_split,
                                rectified_camera, required_files)
from depthda.errors import DepthdaError
from depthda.eval.baselines import BASELINES
from depthda.eval.breakdown import CAMERA_HEIGHT_M, FlatRoad, describe, region_masks
from depthda.eval.metrics import METRIC_NAMES
from depthda.eval.protocol import EvalProtocol, EvalResult, check_predictions, evaluate
from depthda.infer.temporal import TemporalSettings
from depthda.utils.fsio import write_text_atomic
from depthda.utils.images import read_rgb
from depthda.utils.outputs import check_outputs, files_under


MAX_CAMERA_HEIGHT_M = 100.0  # a camera on a car, a truck or a mast; more is a typo


def resolve_split(split: str | None, split_file: str | Path | None) -> list[KittiFrame]:
    if split_file is not None:
        return read_split(split_file)
    return read_split(paths.split_file(split or "eigen"))


def ground_truth_source(frames: list[KittiFrame], data_root: str | Path | None, gt: str | None,
                        gt_file: str | Path | None = None) -> Callable[[int], np.ndarray]:
    """Ground truth of each frame; `gt` None means velodyne, or whatever kind `gt_file` holds."""
    if gt is not None:
        check_gt_kind(gt)
    if gt_file is not None:
        exported = GroundTruthFile(gt_file)
        exported.check_matches(frames, gt)
        return exported.__getitem__
    if data_root is None:
        raise DepthdaError("give --data-root (KITTI raw root) or --gt-file (from `depthda data export-gt`)")
    root = Path(data_root)
    if not root.is_dir():
        raise DepthdaError(f"KITTI data root not found: {root}")
    gt = gt or "velodyne"
    try:
        check_files([required_files(f, root, gt) for f in frames], f"{gt} ground-truth")
    except DepthdaError as exc:
        has_annotated = all(f.annotated_path(root).is_file() for f in frames)
        if gt == "velodyne" and has_annotated:
            raise DepthdaError(f"{exc}; this data has KITTI's annotated depth instead: add --gt annotated") from None
        raise
    return lambda i: load_ground_truth(frames[i], root, gt)


def image_source(frames: list[KittiFrame], data_root: str | Path | None) -> Callable[[int], np.ndarray]:
    if data_root is None:
        raise DepthdaError("--data-root is needed to read the KITTI images")
    root = Path(data_root)
    check_files([[f.image_path(root)] for f in frames], "image")
    return lambda i: read_rgb(frames[i].image_path(root))


def load_predictions(path: str | Path, count: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DepthdaError(f"predictions file not found: {path}")
    try:
        preds = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DepthdaError(f"cannot read predictions (expected an N×H×W float .npy): {path}") from exc
    if not isinstance(preds, np.ndarray):  # an .npz archive, which np.load opens as a dict of arrays
        preds.close()
        raise DepthdaError(f"predictions must be one N×H×W float array in a .npy file, not an .npz archive: {path}")
    check_predictions(preds, count)
    return preds


def consecutive_runs(frames: list[KittiFrame]) -> list[range]:
    """Index ranges of the split whose frames follow each other in one drive and camera."""
    runs, start = [], 0
    for i in range(1, len(frames) + 1):
        prev = frames[i - 1]
        if i == len(frames) or (frames[i].folder, frames[i].camera, frames[i].index) != (
                prev.folder, prev.camera, prev.index + 1):
            runs.append(range(start, i))
            start = i
    return runs


def calibrated_cameras(frames: list[KittiFrame], data_root: str | Path | None) -> list[tuple[float, float] | None]:
    """Each frame's (focal length, principal row) in pixels, P_rect_0c[0, 0] and [1, 2] of its
    drive's calib_cam_to_cam.txt (None where there is no such file)."""
    root, cache, cameras = Path(data_root) if data_root is not None else None, {}, []
    for frame in frames:
        key = (frame.calib_dir(root) / "calib_cam_to_cam.txt", frame.camera) if root is not None else None
        if key not in cache:
            cache[key] = None
            if key is not None and key[0].is_file():
                cache[key] = rectified_camera(*key)
        cameras.append(cache[key])
    return cameras


def calibrated_focals(frames: list[KittiFrame], data_root: str | Path) -> list[float | None]:
    """Each frame's focal length in pixels (P_rect_0c[0, 0]), None where the calibration is missing."""
    return [camera and camera[0] for camera in calibrated_cameras(frames, data_root)]


def flat_roads(frames: list[KittiFrame], data_root: str | Path | None,
               camera_height_m: float = CAMERA_HEIGHT_M) -> list[FlatRoad]:
    """The flat road each frame's obstacle breakdown compares with: its calibrated camera, else
    KITTI's left colour camera (e.g. ground truth from a file without the raw data beside it)."""
    return [FlatRoad(*camera, camera_height_m) if camera else FlatRoad(camera_height_m=camera_height_m)
            for camera in calibrated_cameras(frames, data_root)]


def model_predictions(checkpoint: str | Path, get_image: Callable[[int], np.ndarray], device: str = "auto",
                      use_style: bool = True, engine: str = "auto", focal_px: float | None = None,
                      smooth_runs: list[range] | None = None, temporal: TemporalSettings = TemporalSettings(),
                      focals: list[float | None] | None = None) -> Callable[[int], np.ndarray]:
    """Depth of frame i by the pipeline, in metres for frame i's camera: `focal_px` for every
    frame, else `focals[i]` (from the calibration), else the training camera's field of view.
    With `smooth_runs`, each run of consecutive frames goes through the temporal filter as a
    video would (all computed up front, in order), with `temporal`'s settings."""
    from depthda.infer.pipeline import DepthPipeline  # torch models load only when a model is evaluated

    pipe = DepthPipeline.from_checkpoint(checkpoint, device=device, use_style=use_style, engine=engine)
    if focal_px is None and pipe.train_focal_px is None:
        focals = None  # a model that records no training focal cannot be rescaled: metric as it is

    def focal(i: int) -> float | None:
        return focal_px if focal_px is not None else (focals[i] if focals else None)

    if smooth_runs is None:
        return lambda i: pipe(get_image(i), focal_px=focal(i))
    smoothed = {}
    for run in smooth_runs:
        # one camera per run: consecutive frames of one drive and camera share a calibration
        smoothed.update(zip(run, pipe.predict_sequence((get_image(i) for i in run), focal_px=focal(run[0]),
                                                          temporal=temporal)))
    return smoothed.__getitem__


def plot_files(plots: str | Path | None) -> list[Path]:
    """The files `plots` (a folder) receives: error by distance and the worst frames."""
    return [] if plots is None else [Path(plots) / "error_by_distance.png", Path(plots) / "worst_frames.png"]


def check_eval_outputs(*, data_root=None, split_file=None, gt_file=None, predictions=None, checkpoint=None,
                       json_path=None, csv_path=None, plots=None) -> None:
    """No report may overwrite an input of the evaluation or another report (depthda.utils.outputs)."""
    check_outputs(reads=[split_file, gt_file, predictions, *files_under(checkpoint)], trees=[data_root],
                  files=[json_path, csv_path, *plot_files(plots)])


def write_reports(result: EvalResult, json_path: str | Path | None = None,
                  csv_path: str | Path | None = None) -> None:
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(result.to_json(), indent=2) + "\n")
    if csv_path is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["frame", "status", "valid_pixels", "scale", *METRIC_NAMES])
        for name, frame in zip(result.frames, result.per_frame):
            if frame is None:
                writer.writerow([name, "skipped", 0, "", *[""] * len(METRIC_NAMES)])
            else:
                writer.writerow([name, "ok", frame.valid_pixels, f"{frame.scale:.6g}",
                                 *[f"{frame.metrics[m]:.6g}" for m in METRIC_NAMES]])
        write_text_atomic(csv_path, buffer.getvalue())


def evaluate_kitti(*, data_root: str | Path | None = None, split: str | None = "eigen",
                   split_file: str | Path | None = None, gt: str | None = None, gt_file: str | Path | None = None,
                   predictions: str | Path | None = None, checkpoint: str | Path | None = None,
                   baseline: str | None = None,
                   protocol: EvalProtocol = EvalProtocol(), use_style: bool = True, device: str = "auto",
                   engine: str = "auto", focal_px: float | None = None, plots: str | Path | None = None, smooth: bool = False,
                   temporal: TemporalSettings = TemporalSettings(),
                   breakdown: bool = False, camera_height_m: float = CAMERA_HEIGHT_M,
                   progress: bool = True) -> EvalResult:
    """Evaluate predictions (an .npy file), a model checkpoint or a baseline on a KITTI split.

    `breakdown`: the metrics also over road-like and obstacle pixels (depthda.eval.breakdown),
    the flat road seen from `camera_height_m`.

    `smooth` (with a checkpoint): runs of consecutive frames in the split go through predict's
    temporal filter (`temporal`: its settings), to check what it does to accuracy; a split with no
    consecutive frames is refused.
    """
    if sum(x is not None for x in (predictions, checkpoint, baseline)) != 1:
        raise DepthdaError("give exactly one of --predictions FILE, --checkpoint DIR or --baseline NAME")
    check_eval_outputs(data_root=data_root, split_file=split_file, gt_file=gt_file, predictions=predictions,
                       checkpoint=checkpoint, plots=plots)
    frames = resolve_split(split, split_file)
    runs = None
    if smooth:
        if checkpoint is None:
            raise DepthdaError("--smooth needs --checkpoint: it filters the model's depth over time")
        runs = consecutive_runs(frames)
        if all(len(r) == 1 for r in runs):
            raise DepthdaError("--smooth needs consecutive frames of a drive in the split; this split has none")
    get_gt = ground_truth_source(frames, data_root, gt, gt_file)
    get_image = image_source(frames, data_root) if (checkpoint is not None or plots is not None) else None
    if predictions is not None:
        preds = load_predictions(predictions, len(frames))
        get_pred = preds.__getitem__
    elif baseline is not None:
        if baseline not in BASELINES:
            raise DepthdaError(f"unknown baseline {baseline!r} (use {', '.join(BASELINES)})")
        get_pred = lambda i: BASELINES[baseline](get_gt(i).shape)  # noqa: E731
    else:
        get_pred = model_predictions(checkpoint, get_image, device, use_style, engine, focal_px, smooth_runs=runs,
                                     temporal=temporal,
                                     focals=calibrated_focals(frames, data_root) if focal_px is None else None)
    bar = (lambda it: tqdm(it, desc="eval", unit="frame", leave=False, disable=None)) if progress else None
    names = [str(f) for f in frames]
    regions = roads = None
    if breakdown:
        if not 0 < camera_height_m <= MAX_CAMERA_HEIGHT_M:
            raise DepthdaError(f"--camera-height must be above 0 and at most {MAX_CAMERA_HEIGHT_M:g} m, got {camera_height_m}")
        roads = flat_roads(frames, data_root, camera_height_m)
        regions = lambda i, gt: region_masks(gt, roads[i])  # noqa: E731
    result = evaluate(names, get_gt, get_pred, protocol, progress=bar, keep_pixels=plots is not None,
                      regions=regions)
    if roads is not None:
        result.breakdown_info = describe(roads)
    if plots is not None:
        from depthda.eval.plots import plot_error_by_distance, plot_worst_frames

        by_distance, worst = plot_files(plots)
        plot_error_by_distance(result, by_distance)
        plot_worst_frames(result, get_image, get_gt, get_pred, worst)
    return result
