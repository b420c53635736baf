"""The bench's pipeline side: `depthda predict`'s video path (depthda.infer.local_predict.run_video).

Decode+prepare thread (one decoder thread) → networks (the pipeline's engine, ONNX Runtime or
torch, normalisation in the graph; FrameParallel: frames queued one at a time to one worker per
core) fed from the calling thread → a thread awaiting the results in order → finish+colour-LUT
thread (+ the temporal filter) → H.264 encoding thread (x264 ultrafast, one thread), bounded
queues between them. The networks' own time is measured by wrapping the pipeline's run_prepared
for the run, so the pipeline carries no timing code.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from depthda.infer.colorize import DepthColorizer
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.local_predict import run_video
from depthda.infer.scheduling import FrameParallel
from depthda.infer.temporal import TemporalFilter
from depthda.infer.video_io import CPU_DECODER, CPU_ENCODER, VideoReader, VideoWriter


@contextlib.contextmanager
def network_times(pipe: DepthPipeline) -> Iterator[dict[str, float]]:
    """Seconds spent in the networks (pipe.run_prepared) while the block runs, summed over threads:
    FrameParallel's workers run frames concurrently, each adds its own time under a lock."""
    times = {"networks": 0.0}
    lock = threading.Lock()
    run_prepared = pipe.run_prepared

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return run_prepared(*args, **kwargs)
        finally:
            with lock:
                times["networks"] += time.perf_counter() - t

    pipe.run_prepared = timed  # an instance attribute, shadowing the method for this run only
    try:
        yield times
    finally:
        del pipe.run_prepared


def pipeline_run(video: Path, n_frames: int, pipe: DepthPipeline, out_path: Path, near: float, far: float, cmap: str,
                 batch_size: int | None, workers: int | None = None,
                 threads: int | None = None, smooth: bool = False) -> tuple[dict, list[np.ndarray], int]:
    """Returns stage seconds (with "networks", summed over the model workers), full-resolution depth per
    frame and the number of frames written. `smooth` adds predict's temporal filter."""
    reader = VideoReader(video, max_frames=n_frames, **CPU_DECODER)
    info = reader.info
    depths: list[np.ndarray] = []
    try:
        with VideoWriter(out_path, info.width, info.height, info.fps, **CPU_ENCODER) as writer, \
                FrameParallel(pipe, workers, threads) as run, network_times(pipe) as networks:
            busy = run_video(reader, writer.write, pipeline=pipe, run=run, colorizer=DepthColorizer(near, far, cmap),
                             batch_size=batch_size or run.workers, on_depth=lambda i, d: depths.append(d),
                             temporal=TemporalFilter() if smooth else None)
    finally:
        reader.close()
    busy.update(networks)
    # Frame-parallel workers compute while the calling thread only queues frames: the model stage's
    # busy time is its workers' compute time shared among them.
    busy["model"] = max(busy.get("model", 0.0), networks["networks"] / run.workers)
    return busy, depths, writer.frames_written
