"""`depthda data ...`: dataset preparation commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from depthda.cli.evaluate import GroundTruth, Split

data_app = typer.Typer(help="Dataset preparation.", no_args_is_help=True, rich_markup_mode=None)


@data_app.command("export-gt")
def export_gt(
    data_root: Path = typer.Option(..., help="KITTI raw root."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npz file."),
    split: Split = typer.Option(Split.eigen, help="Shipped split: eigen (697) or eigen_benchmark (652)."),
    split_file: Optional[Path] = typer.Option(None, help="Split file in Eigen format; overrides --split."),
    gt: GroundTruth = typer.Option(GroundTruth.velodyne, help="Velodyne projection or KITTI annotated depth."),
) -> None:
    """Write the ground truth of every frame of a split into one compressed file for `eval --gt-file`."""
    from depthda.data.gt_file import export_ground_truth
    from depthda.eval.kitti import resolve_split

    from depthda.utils.outputs import check_outputs

    check_outputs(reads=[split_file], trees=[data_root], files=[out])
    frames = resolve_split(split.value, split_file)
    path = export_ground_truth(frames, data_root, gt.value, out)
    typer.echo(f"wrote {gt.value} ground truth of {len(frames)} frames to {path}")


@data_app.command("object-as-raw")
def object_as_raw(
    object_root: Path = typer.Option(..., help="KITTI object folder with image_2/, velodyne/, calib/."),
    frame: str = typer.Option(..., help="Frame id, e.g. 000008."),
    out: Path = typer.Option(..., "--out", "-o", help="KITTI raw root to write into."),
    drive: str = typer.Option("2011_09_26/2011_09_26_drive_9000_sync", help="Made-up <date>/<drive>_sync folder."),
) -> None:
    """Lay out one KITTI object frame (with its velodyne scan) as a raw drive, for `eval kitti --gt velodyne`."""
    from depthda.data.kitti_object import object_frame_as_raw

    line = object_frame_as_raw(object_root, frame, out, drive)
    typer.echo(line)


@data_app.command("prepare")
def prepare(
    src: Path = typer.Argument(..., help="SYNTHIA root (RAND-CITYSCAPES or one SEQS sequence)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the copies to (same layout)."),
    size: Optional[str] = typer.Option(None, help="Training size HEIGHTxWIDTH the copies are for (default: keep "
                                                  "each frame's resolution, for any size)."),
    view: Optional[str] = typer.Option(None, help="Training view the copies are for, with --size: whole (default, "
                                                  "as both presets) or crop."),
    workers: int = typer.Option(1, help="Frames prepared in parallel (processes)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing non-empty --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Write copies of a SYNTHIA root that train with the same samples and load several times faster."""
    from depthda.data.prepare import prepare_synthia
    from depthda.utils.size import parse_size

    summary = prepare_synthia(src, out, size=parse_size(size) if size is not None else None, view=view,
                              overwrite=overwrite, workers=workers, progress=progress)
    frames = ", ".join(f"{a} -> {b}" for a, b in summary["frame_sizes"].items())
    samples = ("samples identical to the originals'" if summary["identical"] else
               "same geometry as the originals', pixels within the tolerance in depthda/data/prepare.py")
    typer.echo(f"wrote {summary['pairs']} pairs to {out} ({frames}; {summary['bytes'] / 1e6:.0f} MB) in "
               f"{summary['seconds']:.1f} s; {samples}")


@data_app.command("round-trip")
def round_trip(
    src: Path = typer.Argument(..., help="SYNTHIA root (e.g. a `depthda synth` set)."),
    style: Path = typer.Option(..., help="train-stage2 run folder (its checkpoint.pt holds both generators)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the round-tripped copy to (same layout)."),
    every: int = typer.Option(1, help="Take every Nth frame of SRC."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier round trip in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Copy a SYNTHIA root with its RGB sent through a style run's two generators and back, depth
    unchanged: depth training frames that carry the style network's artefacts (docs/training.md)."""
    from depthda.train.round_trip import round_trip_synthia

    summary = round_trip_synthia(src, style, out, every=every, overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {summary['frames']} round-tripped frames to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
