"""`depthda synth`: render a procedural street dataset with exact depth in SYNTHIA's format."""

from __future__ import annotations

from pathlib import Path

import typer


def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to create (SYNTHIA-RAND-CITYSCAPES layout)."),
    count: int = typer.Option(1000, help="Number of images."),
    size: str = typer.Option("192x640", help="Image size HEIGHTxWIDTH (KITTI's aspect ratio by default)."),
    seed: int = typer.Option(0, help="Dataset seed; image i uses seed * 1000003 + i."),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing non-empty --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    profile: str = typer.Option("street", help="street; obstacles: the same streets plus cars 3-30 m ahead and "
                                               "beside, far tree lines and hills, JPEG compression; traffic: "
                                               "obstacles plus a queue of cars and trucks 0.5-10 m away, "
                                               "overpasses, walls and a camera 1.2-2.4 m high, pitched ±6°, "
                                               "rolled ±4°."),
) -> None:
    """Render random streets seen from a car, with exact depth, for training on synthetic data."""
    from depthda.synth.writer import synthesize
    from depthda.utils.size import parse_size

    summary = synthesize(out, count, parse_size(size), seed=seed, overwrite=overwrite, device=device,
                         progress=progress, profile=profile)
    typer.echo(f"wrote {summary['count']} images of {size} to {out} in {summary['seconds']:.1f} s "
               f"({summary['images_per_s']:.2f} images/s on {summary['device']})")


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
