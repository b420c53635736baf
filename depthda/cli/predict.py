"""`depthda predict`: coloured depth (and optionally lossless depth) for images, folders and videos."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional, Tuple

import typer

# Both modules are torch-free: `depthda --help` and the argument checks do not wait for torch.
from depthda.infer.checks import DEPTH_FORMATS, ENGINES
from depthda.infer.pointcloud import CLOUD_FORMATS

DepthFormat = Enum("DepthFormat", {name: name for name in DEPTH_FORMATS}, type=str)
Engine = Enum("Engine", {name: name for name in ENGINES}, type=str)
ENGINE_HELP = "What runs the networks: auto (onnxruntime on a CPU, torch on CUDA), torch or onnxruntime."
CloudFormat = Enum("CloudFormat", {name: name for name in CLOUD_FORMATS}, type=str)


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        input: Path = typer.Argument(..., help="An image, a folder of images (recursive) or a video (mp4, avi, mkv, mov, webm)."),
        output: Path = typer.Option(..., "--output", "-o", help="Image file (or folder), folder, or video file; "
                                    "an image's .ply or .glb is its point cloud."),
        checkpoint: Optional[Path] = typer.Option(None, help="Pipeline folder with style/ and depth/ (default: checkpoints/default)."),
        style: Optional[Path] = typer.Option(None, help="Style training run (model.safetensors + config.json); with --depth."),
        depth: Optional[Path] = typer.Option(None, help="Depth training run (model.safetensors + config.json)."),
        no_style: bool = typer.Option(False, "--no-style", help="Skip the style-transfer stage (real images straight into the depth net)."),
        device: str = typer.Option("auto", help="auto (cuda if available), cpu, cuda or cuda:N (under torchrun: auto, cuda or cpu; each process uses cuda:LOCAL_RANK)."),
        engine: Engine = typer.Option(Engine.auto, help=ENGINE_HELP),
        batch_size: Optional[int] = typer.Option(None, help="Frames per network call (default 1 on CPU, 8 on CUDA)."),
        cmap: str = typer.Option("magma", help="Matplotlib colormap; near is drawn with its bright end."),
        depth_range: Optional[Tuple[float, float]] = typer.Option(
            None, "--range", help="MIN MAX metres of the log colour scale, fixed for all frames (default: the model's output range)."),
        side_by_side: bool = typer.Option(False, "--side-by-side", help="Write input | depth (twice the width)."),
        depth_format: Optional[DepthFormat] = typer.Option(
            None, help="Also write lossless depth: png16 (metres×256, KITTI) or npy (float32 metres)."),
        focal: Optional[float] = typer.Option(None, help="Input camera's focal length in pixels (input resolution); scales depth."),
        calib: Optional[Path] = typer.Option(None, help="KITTI calib_cam_to_cam.txt: focal from P_rect_02."),
        frames: Optional[int] = typer.Option(None, help="Video: only the first N frames."),
        compile: bool = typer.Option(False, "--compile", help="torch.compile the networks (torch engine; pays off on GPU for long videos)."),
        no_smooth: bool = typer.Option(False, "--no-smooth", help="Video: every frame's own depth, without the motion-compensated temporal filter."),
        cloud: Optional[CloudFormat] = typer.Option(
            None, help="Folder: write point clouds (ply or glb) instead of colour images (docs/pointclouds.md)."),
        stride: int = typer.Option(1, help="Point clouds: every Nth pixel along both axes."),
        max_depth: Optional[float] = typer.Option(None, help="Point clouds: leave out points farther than this (metres)."),
        keep_sky: bool = typer.Option(False, "--keep-sky", help="Point clouds: keep pixels at the model's far limit (sky)."),
    ) -> None:
        """Predict depth and write it as colour images or video.

        A folder can be split across processes, one per GPU, writing the same files byte for
        byte as one process: torchrun --nproc_per_node N -m depthda predict FOLDER -o OUT.
        Under torchrun a single image is predicted by rank 0 alone, and a video is refused (the
        temporal filter takes its frames in order): run a video without torchrun.
        """
        # Imported when the command runs: `depthda --help` does not wait for torch. OpenCV's own
        # log lines are silenced for every command in depthda.cli (unless --verbose).
        from depthda.infer.checks import PredictOptions
        from depthda.infer.pointcloud import CloudOptions
        from depthda.infer.predict import predict_path
        from depthda.utils.distributed import ReportedByRankZero, launched_by_torchrun

        options = PredictOptions(
            checkpoint=checkpoint, style=style, depth=depth, use_style=not no_style, device=device,
            engine=engine.value, batch_size=batch_size, cmap=cmap, depth_range=depth_range, side_by_side=side_by_side,
            depth_format=depth_format.value if depth_format else None, focal_px=focal, calib=calib,
            compile=compile, max_frames=frames, smooth=not no_smooth,
            cloud=CloudOptions(format=cloud.value if cloud else None, stride=stride, max_depth=max_depth,
                               keep_sky=keep_sky))
        try:
            # The command, not the library, decides that a torchrun launch splits the folder.
            result = predict_path(input, output, options, distributed=launched_by_torchrun())
        except ReportedByRankZero:
            # Under torchrun rank 0 prints the error and exits 1. Exiting 1 here as well would make
            # torchrun kill rank 0 at once, perhaps before it has cleaned up and said why.
            return
        if result.rank != 0:  # under torchrun rank 0 reports the whole run
            return
        if result.kind == "folder":
            typer.echo(f"skipped {result.skipped} non-image file{'' if result.skipped == 1 else 's'}")
        what = "frame" if result.kind == "video" else "image"
        typer.echo(f"wrote {result.frames} {what}{'' if result.frames == 1 else 's'} to {result.output} ({result.fps:.1f} frames/s)")
        if result.depth_output is not None:
            typer.echo(f"wrote depth ({depth_format.value}) to {result.depth_output}")
