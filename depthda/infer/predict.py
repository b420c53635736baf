"""`depthda predict` as a function, `predict_path`: an image, a folder of images or a video → coloured
depth, in this process (depthda.infer.local_predict, where the outputs are described) or, under
torchrun (WORLD_SIZE > 1), a folder split across the launch's processes with the same files, byte
for byte, as a result (depthda.infer.distributed_predict).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from depthda.infer.checks import PredictOptions, check_request
from depthda.infer.colorize import DEFAULT_CMAP
from depthda.infer.pointcloud import CloudOptions
from depthda.utils.distributed import launched_by_torchrun

if TYPE_CHECKING:
    from depthda.infer.local_predict import PredictResult


def predict_path(input: str | Path, output: str | Path, *, pipeline=None, checkpoint: str | Path | None = None,
            style: str | Path | None = None, depth: str | Path | None = None, use_style: bool = True,
            device: str = "auto", engine: str = "auto", batch_size: int | None = None, cmap: str = DEFAULT_CMAP,
            depth_range: tuple[float, float] | None = None, side_by_side: bool = False,
            depth_format: str | None = None, focal_px: float | None = None, calib: str | Path | None = None,
            compile: bool = False, max_frames: int | None = None, progress: bool = True,
            smooth: bool = True, cloud: CloudOptions | None = None, distributed: bool = True) -> PredictResult:
    """Predict depth for an image, a folder of images or a video; see the module docstring.

    `engine`: what runs the networks (auto, torch or onnxruntime; depthda.infer.engine).
    `cloud`: how point clouds are made, and for a folder which kind to write (local_predict's docstring).
    `smooth`: videos go through the motion-compensated temporal filter (depthda.infer.temporal);
    False gives every frame's own depth, as for images.
    `distributed`: in a process launched by torchrun (WORLD_SIZE > 1), split a folder across the
    launch's processes (depthda.infer.distributed_predict); False: this process does the whole run.
    """
    options = PredictOptions(pipeline=pipeline, checkpoint=checkpoint, style=style, depth=depth, use_style=use_style,
                             device=device, engine=engine, batch_size=batch_size, cmap=cmap, depth_range=depth_range,
                             side_by_side=side_by_side, depth_format=depth_format, focal_px=focal_px, calib=calib,
                             compile=compile, max_frames=max_frames, progress=progress, smooth=smooth, cloud=cloud)
    input, output = Path(input), Path(output)
    if distributed and launched_by_torchrun():
        from depthda.infer.distributed_predict import predict_distributed  # rank 0 checks, for one error line

        return predict_distributed(input, output, options)
    request = check_request(input, output, options)  # before torch's import: a bad run is refused at once
    from depthda.infer.local_predict import predict_local

    return predict_local(input, output, options, request)
