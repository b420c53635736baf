"""`depthda eval kitti`: the standard KITTI depth metrics on the Eigen split.
`depthda eval video`: how steady a depth video is (temporal consistency)."""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from depthda.data.kitti import GT_KINDS
from depthda.cli.predict import ENGINE_HELP, Engine
from depthda.eval.baselines import BASELINES
from depthda.eval.protocol import CROPS, PROTOCOLS, SCALINGS, named_protocol
from depthda.eval.row_prior import DEFAULT_SHIFT
from depthda.paths import SPLIT_NAMES

eval_app = typer.Typer(help="Evaluate depth predictions against published protocols.", no_args_is_help=True,
                       rich_markup_mode=None)


def _choices(name: str, values) -> type[Enum]:
    """An Enum of `values` for typer to offer as an option's choices (names: "-" as "_")."""
    return Enum(name, {value.replace("-", "_"): value for value in values}, type=str)


# Each option's choices come from the module that acts on them, so the two cannot drift apart.
Split = _choices("Split", SPLIT_NAMES)
GroundTruth = _choices("GroundTruth", GT_KINDS)
Baseline = _choices("Baseline", BASELINES)
Crop = _choices("Crop", CROPS)
Protocol = _choices("Protocol", PROTOCOLS)
Scaling = _choices("Scaling", SCALINGS)


@eval_app.command("kitti")
def kitti(
    data_root: Optional[Path] = typer.Option(None, help="KITTI raw root (<root>/<date>/<drive>_sync/...)."),
    split: Split = typer.Option(Split.eigen, help="Shipped split: eigen (697) or eigen_benchmark (652)."),
    split_file: Optional[Path] = typer.Option(None, help="Split file in Eigen format; overrides --split."),
    gt: Optional[GroundTruth] = typer.Option(
        None, help="Velodyne projection or KITTI annotated depth (default: velodyne, or the kind --gt-file holds)."),
    gt_file: Optional[Path] = typer.Option(None, help="Ground truth exported by `depthda data export-gt`."),
    predictions: Optional[Path] = typer.Option(None, help="N×H×W float .npy of depth in metres, split order."),
    checkpoint: Optional[Path] = typer.Option(None, help="Run this pipeline checkpoint on the images instead."),
    baseline: Optional[Baseline] = typer.Option(None, help="Evaluate a reference predictor instead of a model."),
    no_style: bool = typer.Option(False, "--no-style", help="With --checkpoint: skip the style stage."),
    focal: Optional[float] = typer.Option(None, help="With --checkpoint: scale depth by focal length (px)."),
    device: str = typer.Option("auto", help="With --checkpoint: auto, cpu, cuda or cuda:N."),
    engine: Engine = typer.Option(Engine.auto, help=f"With --checkpoint: {ENGINE_HELP}"),
    protocol_name: Protocol = typer.Option(
        Protocol.garg, "--protocol",
        help="garg: Eigen-split tables (Garg crop, ground truth in range); eigen-benchmark: improved-ground-truth "
             "tables (no crop, all ground truth > 0, predictions still clamped)."),
    crop: Optional[Crop] = typer.Option(None, help="Evaluation crop (default: the protocol's)."),
    min_depth: float = typer.Option(1e-3, help="Predictions clamped to at least this; with garg, ground truth at or below is ignored."),
    max_depth: float = typer.Option(80.0, help="Predictions clamped to at most this; with garg, ground truth at or above is ignored."),
    scaling: Scaling = typer.Option(Scaling.none, help="median: scale each prediction by median(gt)/median(pred)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write metrics, protocol and frame count."),
    per_frame_csv: Optional[Path] = typer.Option(None, help="Write per-frame metrics as CSV."),
    plots: Optional[Path] = typer.Option(None, help="Folder for error-by-distance and worst-frame plots."),
    smooth: bool = typer.Option(False, "--smooth", help="With --checkpoint: consecutive frames go through predict's temporal filter."),
    breakdown: bool = typer.Option(
        False, "--breakdown", help="Also the metrics over road-like and obstacle pixels (truth nearer than 0.8x "
                                   "a flat road's depth at the pixel, for the frame's calibration)."),
    camera_height: float = typer.Option(1.65, help="With --breakdown: camera height above the flat road (m)."),
) -> None:
    """Evaluate depth on KITTI with the protocol of the published Eigen-split tables."""
    from depthda.eval.kitti import check_eval_outputs, evaluate_kitti, write_reports

    check_eval_outputs(data_root=data_root, split_file=split_file, gt_file=gt_file, predictions=predictions,
                       checkpoint=checkpoint, json_path=json_out, csv_path=per_frame_csv, plots=plots)
    protocol = named_protocol(protocol_name.value, crop=crop.value if crop else None, min_depth=min_depth,
                              max_depth=max_depth, scaling=scaling.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_kitti(
            data_root=data_root, split=split.value, split_file=split_file, gt=gt.value if gt else None, gt_file=gt_file,
            predictions=predictions, checkpoint=checkpoint,
            baseline=baseline.value if baseline else None, protocol=protocol, use_style=not no_style,
            device=device, engine=engine.value, focal_px=focal, plots=plots, smooth=smooth, breakdown=breakdown,
            camera_height_m=camera_height)
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    typer.echo(result.table())
    write_reports(result, json_out, per_frame_csv)


@eval_app.command("video")
def video(
    clip: Path = typer.Argument(..., help="A video (mp4, avi, mkv, mov, webm)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Pipeline folder (default: the shipped model)."),
    no_style: bool = typer.Option(False, "--no-style", help="Skip the style stage."),
    frames: Optional[int] = typer.Option(None, help="Only the first N frames."),
    focal: Optional[float] = typer.Option(None, help="Scale depth by the camera's focal length (px)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write both figures, per pair, and the settings."),
    plot: Optional[Path] = typer.Option(None, help="PNG of the error of every frame pair, per-frame vs smoothed."),
) -> None:
    """Temporal error of depth video: per-frame vs the temporal filter `predict` applies."""
    import json

    from depthda.errors import DepthdaError
    from depthda.infer.checks import check_focal, input_kind, model_folders
    from depthda.paths import default_checkpoint
    from depthda.utils.fsio import write_text_atomic
    from depthda.utils.outputs import check_outputs, files_under

    check_outputs(reads=[clip, *files_under(checkpoint or default_checkpoint())], files=[json_out, plot])
    if input_kind(clip) != "video":
        raise DepthdaError(f"not a video: {clip}")
    if frames is not None and frames < 2:
        raise DepthdaError("--frames must be at least 2")
    if plot is not None and plot.suffix.lower() != ".png":
        raise DepthdaError(f"--plot writes a PNG: name it .png, not {plot.name}")
    if focal is not None:
        check_focal(focal)
    model_folders(checkpoint, None, None, use_style=not no_style)
    from depthda.eval.video import evaluate_video, plot_over_time  # torch: after the checks
    from depthda.infer import DepthPipeline

    pipe = DepthPipeline.from_checkpoint(checkpoint, device=device, use_style=not no_style)
    if focal is not None:
        pipe.focal_scale(focal, 1)  # fails early if the model cannot be rescaled
    result = evaluate_video(clip, pipe, max_frames=frames, focal_px=focal)
    typer.echo(result.table())
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result.to_json(), indent=2) + "\n")
        typer.echo(f"wrote {json_out}")
    if plot is not None:
        plot_over_time(result, plot)
        typer.echo(f"wrote {plot}")


@eval_app.command("row-prior")
def row_prior_command(
    inputs: list[Path] = typer.Argument(..., help="Images, or folders of them (searched recursively)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Pipeline folder (default: the shipped model)."),
    no_style: bool = typer.Option(False, "--no-style", help="Skip the style stage."),
    shift: float = typer.Option(DEFAULT_SHIFT, help="Vertical shift between the two crops, as a fraction of the height."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """How much of the predicted depth follows the image row instead of the scene (0: the scene, 1: the row)."""
    from depthda.errors import DepthdaError
    from depthda.eval.row_prior import check_shift, row_prior
    from depthda.infer.checks import model_folders
    from depthda.utils.images import list_images, read_rgb

    try:
        check_shift(shift)  # before the model loads
    except ValueError as exc:
        raise DepthdaError(f"--{exc}") from None
    files = [f for p in inputs for f in (list_images(p)[0] if p.is_dir() else [p])]
    if not files:
        raise DepthdaError("no images found in " + ", ".join(map(str, inputs)))
    model_folders(checkpoint, None, None, use_style=not no_style)
    from depthda.infer import DepthPipeline  # torch: after the checks

    pipe = DepthPipeline.from_checkpoint(checkpoint, device=device, use_style=not no_style)
    result = row_prior(pipe, (read_rgb(f) for f in files), shift=shift)
    typer.echo(f"row prior: {result.mean:.3f} over {len(files)} frames (0: depth follows the scene, "
               f"1: it follows the image row; shift {shift:g} of the height)")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
