"""The model stage alone, under each inference rewrite, batch size and thread count.

What each step from the naive models to the pipeline's buys, in ms/frame of the networks only.
The variants are interleaved over rounds (best kept), so that load from other processes hits
every variant alike.
"""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import torch

from depthda.infer.fast import speed_up
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.scheduling import FrameParallel
from depthda.models.normalize import to_signed_unit


def _model_ms(fn, batches, reps: int = 1) -> float:
    """Best ms/frame over `reps` passes of fn over all batches."""
    best = float("inf")
    n = sum(len(b) for b in batches)
    for _ in range(reps):
        t = time.perf_counter()
        for b in batches:
            fn(b)
        best = min(best, time.perf_counter() - t)
    return best / n * 1e3


def _eager(style, depth, memory_format: torch.memory_format):
    """The networks called one after the other on a B×H×W×3 uint8 batch, normalised outside them."""
    def run(batch: np.ndarray) -> None:
        x = to_signed_unit(torch.from_numpy(batch).permute(0, 3, 1, 2)).contiguous(memory_format=memory_format)
        with torch.inference_mode():
            depth(style(x) if style is not None else x)

    return run


def model_ablation(pipe_plain: DepthPipeline, pipe_fast: DepthPipeline, frames: list[np.ndarray],
                   threads_options: list[int], batch_options: list[int], rounds: int = 2) -> list[dict]:
    """ms/frame of the networks under each variant, interleaved over `rounds` rounds (best kept)."""
    h, w = frames[0].shape[:2]
    prepared = [pipe_fast.prepare(f) for f in frames]

    def batches(bs):
        return [np.stack(prepared[i:i + bs]) for i in range(0, len(prepared), bs)]

    def fast(batch):
        return pipe_fast.run_prepared(batch, h, w)

    cl_style = copy.deepcopy(pipe_plain.style).to(memory_format=torch.channels_last) if pipe_plain.style else None
    cl_depth = copy.deepcopy(pipe_plain.depth).to(memory_format=torch.channels_last)
    default_threads = torch.get_num_threads()
    variants = [("eager fp32 NCHW (naive models)", _eager(pipe_plain.style, pipe_plain.depth, torch.contiguous_format),
                 1, default_threads),
                ("+ channels_last", _eager(cl_style, cl_depth, torch.channels_last), 1, default_threads),
                ("+ folded batch norm, group-norm kernel (pipeline models)", fast, 1, default_threads)]
    variants += [(f"pipeline models, batch {bs}", fast, bs, default_threads) for bs in batch_options if bs != 1]
    variants += [(f"pipeline models, {t} thread(s)", fast, 1, t) for t in threads_options if t != default_threads]
    if 1 in threads_options or default_threads == 1:
        no_wino = DepthPipeline(speed_up(pipe_plain.depth, winograd=False), pipe_plain.depth_config,
                                speed_up(pipe_plain.style, winograd=False) if pipe_plain.style else None,
                                pipe_plain.style_config)
        variants.append(("pipeline models without Winograd residual blocks, 1 thread",
                         lambda b: no_wino.run_prepared(b, h, w), 1, 1))
    parallel = FrameParallel(pipe_fast, workers=min(os.cpu_count() or 1, 2))
    if parallel.workers > 1:
        variants.append((f"pipeline models, frame-parallel: {parallel.workers} frames at once, "
                         f"{parallel.threads} thread(s) each", lambda b: parallel(b, h, w), parallel.workers,
                         parallel.threads))
    results = {name: float("inf") for name, *_ in variants}
    # Entered for the whole ablation (its workers and thread counts); each variant then sets its own
    # thread count, restored when the ablation ends.
    with parallel:
        try:
            for _ in range(rounds):
                for name, fn, bs, threads in variants:
                    torch.set_num_threads(threads)
                    bs_batches = batches(bs)
                    fn(bs_batches[0])  # warm-up: oneDNN primitive creation
                    results[name] = min(results[name], _model_ms(fn, bs_batches))
        finally:
            torch.set_num_threads(default_threads)
    return [{"variant": name, "model_ms_per_frame": round(results[name], 2)} for name, *_ in variants]
