"""The bench's pipeline side: `depthda predict`'s video path (depthda.infer.predict.run_video).

Decode+prepare thread (one decoder thread) → networks (depthda.infer.fast's rewrites, Winograd
residual blocks on the single-thread workers, normalisation in the module; FrameParallel: frames
queued one at a time to one worker per core) fed from the calling thread → a thread awaiting the
results in order → finish+colour-LUT thread → H.264 encoding thread (x264 ultrafast, one thread),
bounded queues between them. The style and depth networks' own time is measured by forward hooks
the bench installs for the run, so the model carries no timing code.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from torch import nn

from depthda.infer.colorize import DepthColorizer
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.predict import run_video
from depthda.infer.scheduling import FrameParallel
from depthda.infer.temporal import TemporalFilter
from depthda.infer.video_io import CPU_DECODER, CPU_ENCODER, VideoReader, VideoWriter


@contextlib.contextmanager
def forward_times(modules: dict[str, nn.Module]) -> Iterator[dict[str, float]]:
    """Seconds spent in each named module's forward while the block runs, summed over threads.

    CPU only (no device synchronisation). FrameParallel's workers run forwards concurrently: each
    thread keeps its own start times, and the sums are added under a lock.
    """
    times: dict[str, float] = {}
    lock = threading.Lock()
    started = threading.local()
    handles = []

    def hooks(name: str):
        def before(module, args):
            setattr(started, name, time.perf_counter())

        def after(module, args, output):
            seconds = time.perf_counter() - getattr(started, name)
            with lock:
                times[name] = times.get(name, 0.0) + seconds

        return before, after

    try:
        for name, module in modules.items():
            before, after = hooks(name)
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
        yield times
    finally:
        for handle in handles:
            handle.remove()


def pipeline_run(video: Path, n_frames: int, pipe: DepthPipeline, out_path: Path, near: float, far: float, cmap: str,
                 batch_size: int | None, workers: int | None = None,
                 threads: int | None = None, smooth: bool = False) -> tuple[dict, list[np.ndarray], int]:
    """Returns stage seconds (with the networks' "style" and "depth"), full-resolution depth per
    frame and the number of frames written. `smooth` adds predict's temporal filter."""
    reader = VideoReader(video, max_frames=n_frames, **CPU_DECODER)
    info = reader.info
    depths: list[np.ndarray] = []
    networks = {"style": pipe.style, "depth": pipe.depth} if pipe.style is not None else {"depth": pipe.depth}
    try:
        with VideoWriter(out_path, info.width, info.height, info.fps, **CPU_ENCODER) as writer, \
                FrameParallel(pipe, workers, threads) as run, forward_times(networks) as network_times:
            busy = run_video(reader, writer.write, pipeline=pipe, run=run, colorizer=DepthColorizer(near, far, cmap),
                             batch_size=batch_size or run.workers, on_depth=lambda i, d: depths.append(d),
                             temporal=TemporalFilter() if smooth else None)
    finally:
        reader.close()
    busy.update(network_times)
    # Frame-parallel workers compute while the calling thread only queues frames: the model stage's
    # busy time is its workers' compute time shared among them.
    busy["model"] = max(busy.get("model", 0.0), (busy.get("style", 0.0) + busy.get("depth", 0.0)) / run.workers)
    return busy, depths, writer.frames_written
