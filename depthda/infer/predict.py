"""`depthda predict` as a function, `predict_path`: an image, a folder of images or a video → coloured
depth, in this process (depthda.infer.local_predict, where the outputs are described) or, under
torchrun (WORLD_SIZE > 1), a folder split across the launch's processes with the same files, byte
for byte, as a result (depthda.infer.distributed_predict).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from depthda.infer.checks import PredictOptions, check_request
from depthda.utils.distributed import launched_by_torchrun

if TYPE_CHECKING:
    from depthda.infer.local_predict import PredictResult


def predict_path(input: str | Path, output: str | Path, options: PredictOptions | None = None, *,
                 distributed: bool = False, **settings) -> PredictResult:
    """Predict depth for an image, a folder of images or a video; see the module docstring.

    `options`: one PredictOptions (depthda.infer.checks, where every setting is described), or its
    fields as keywords: predict_path("clip.mp4", "depth.mp4", engine="torch", smooth=False).
    `distributed`: split a folder across the processes of the torchrun launch this process belongs
    to (depthda.infer.distributed_predict). The CLI sets it when torchrun started it; a library call
    inside a torchrun job stays a call of this process unless it asks, so no rank waits on another.
    """
    if options is None:
        options = PredictOptions(**settings)
    elif settings:
        raise TypeError(f"predict_path takes options or keyword settings, not both (got {sorted(settings)})")
    input, output = Path(input), Path(output)
    if distributed and launched_by_torchrun():
        from depthda.infer.distributed_predict import predict_distributed  # rank 0 checks, for one error line

        return predict_distributed(input, output, options)
    request = check_request(input, output, options)  # before torch's import: a bad run is refused at once
    from depthda.infer.local_predict import predict_local

    return predict_local(input, output, options, request)
