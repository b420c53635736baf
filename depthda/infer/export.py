"""`depthda export`: the whole inference chain as one graph file (ONNX or TorchScript).

The graph takes `image`: B×3×H×W at the fixed size given at export (batch size free), either
uint8 RGB 0..255 (default) or float32 RGB 0..1 (`input_type="float"`), and returns `depth`:
B×H×W float32 metres at the same size. Inside: normalisation, the resize to the working size (as
two matrix products equal to cv2's INTER_AREA/INTER_LINEAR, see depthda.infer.pipeline.resize_matrix),
border padding to the stride, style generator, depth U-Net, decoding to metres, crop and bilinear
resize back. Depth assumes the training camera's field of view: for another camera multiply by
DepthPipeline.focal_scale(focal_px, W) outside the graph.

The working size is the depth model's resize policy applied to the export size, as for every other
path (DepthPipeline.working_size). The export size defaults to the training size, where both
policies are the identity: the graph then runs the networks on the input as it is. Under
"stretch" any other `size` (e.g. KITTI's 375x1242 for a 256x1024 model) is resized inside the graph
straight to the training size and the depth back to `size`; under "keep_aspect" to the training
width at the export size's aspect ratio, padded to the stride.

Every export is run once on a sample frame and compared with the PyTorch pipeline; the largest
absolute difference (metres) is returned and printed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from depthda.errors import DepthdaError
from depthda.infer.checks import check_export, check_export_size
from depthda.infer.engine import trace_onnx
from depthda.infer.pipeline import DepthPipeline
from depthda.paths import sample_video
from depthda.utils.fsio import atomic_path
from depthda.utils.memory import check_disk_space



@dataclass
class ExportResult:
    path: Path
    format: str
    size: tuple[int, int]
    input_type: str
    max_abs_diff: float


class _Graph(nn.Module):
    """Tensor-only wrapper: the traced graph has no numpy branch and no focal argument."""

    def __init__(self, pipe):
        super().__init__()
        self.pipe = pipe

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.pipe(image)


def sample_input(size: tuple[int, int], input_type: str, batch: int = 1) -> torch.Tensor:
    """A real dash-cam frame (the shipped sample video) resized to `size`, else a fixed pattern."""
    h, w = size
    frame = None
    video = sample_video()
    if video.is_file():
        cap = cv2.VideoCapture(str(video))
        ok, bgr = cap.read()
        cap.release()
        if ok:
            frame = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
    if frame is None:
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].repeat(batch, 1, 1, 1)
    return x if input_type == "uint8" else x.float() / 255


def export_pipeline(fmt: str, output: str | Path, *, checkpoint: str | Path | None = None,
                    style: str | Path | None = None, depth: str | Path | None = None, use_style: bool = True,
                    size: tuple[int, int] | str | None = None, input_type: str = "uint8") -> ExportResult:
    output = Path(output)
    size = check_export(fmt, output, checkpoint=checkpoint, style=style, depth=depth, size=size, input_type=input_type)
    pipe = DepthPipeline.from_checkpoint(checkpoint, style=style, depth=depth, device="cpu", use_style=use_style,
                                         engine="torch")
    if size is None:
        size = tuple(int(v) for v in pipe.depth_config["size"])
        check_export_size(size)
    pipe.working_size(*size)  # refuses absurd sizes before tracing
    graph = _Graph(pipe).eval()
    x = sample_input(size, input_type)
    with torch.inference_mode():
        reference = graph(x).numpy()

    weights = sum(t.numel() * t.element_size() for t in graph.state_dict().values())
    check_disk_space(output.parent, 2 * weights + 10**6, f"writing {output}")  # the graph file, with room for its code
    with atomic_path(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints: the size is fixed by design
        if fmt == "onnx":
            trace_onnx(graph, x, tmp)
            import onnxruntime

            session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            got = session.run(None, {"image": x.numpy()})[0]
        else:
            with torch.no_grad():
                traced = torch.jit.trace(graph, (x,), check_trace=False)
            traced.save(str(tmp))
            with torch.inference_mode():
                got = torch.jit.load(str(tmp), map_location="cpu")(x).numpy()
        if got.shape != reference.shape:
            raise DepthdaError(f"exported graph returns shape {got.shape}, PyTorch {reference.shape}")
        diff = float(np.abs(got - reference).max())
    return ExportResult(output, fmt, size, input_type, diff)
