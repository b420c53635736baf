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


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
