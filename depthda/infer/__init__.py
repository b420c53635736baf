"""Inference: a real frame → style generator → depth network → metres, for images, folders and video.

    from depthda.infer import DepthPipeline
    depth_m = DepthPipeline.from_checkpoint()(rgb_uint8_hxwx3)

    pipeline.py    DepthPipeline: the networks as one module, working size, metric scale
    engine.py      ONNX Runtime for the networks on a CPU: the graph exported once, checked and cached
    scheduling.py  threaded stages (run_overlapped) and whole frames per CPU core (FrameParallel)
    predict.py     `depthda predict` as predict_path(): an image, a folder or a video → coloured depth
    checks.py      what a predict run reads and writes, checked without a model (and without torch)
    local_predict.py  the runs in one process (images, folders, video)
    distributed_predict.py  a folder split across the processes of a torchrun launch
    temporal.py    the motion-compensated filter that steadies video depth
    video_io.py    video reading and writing
    colorize.py    depth in metres → colour, one fixed mapping for every frame
    export.py      `depthda export`: the whole chain as one ONNX or TorchScript graph
"""

__all__ = ["DepthPipeline"]


def __getattr__(name: str):
    # Loaded on first use, so importing a light module of this package (checks, temporal,
    # colorize) does not import torch: commands refuse bad arguments before paying for it.
    if name == "DepthPipeline":
        from depthda.infer.pipeline import DepthPipeline

        return DepthPipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
