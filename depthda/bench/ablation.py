"""The model stage alone, per engine and thread count, against the measured fp32 matmul peak.

What each engine makes of the networks, in ms/frame of the networks only, and the share of the
machine's fp32 matmul peak at the same number of threads that this is (the networks' FLOPs per
frame over the time). The variants are interleaved over rounds (best kept), so that load from
other processes hits every variant alike.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time

import numpy as np
import torch

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


def _eager_nchw(pipe: DepthPipeline):
    """The networks as the naive loop runs them: eager, NCHW, normalised outside them."""
    style = copy.deepcopy(pipe.style).to(memory_format=torch.contiguous_format) if pipe.style is not None else None
    depth = copy.deepcopy(pipe.depth).to(memory_format=torch.contiguous_format)

    def run(batch: np.ndarray) -> None:
        x = to_signed_unit(torch.from_numpy(batch).permute(0, 3, 1, 2)).contiguous()
        with torch.inference_mode():
            depth(style(x) if style is not None else x)

    return run


def model_ablation(pipes: dict[str, DepthPipeline], frames: list[np.ndarray], threads_options: list[int],
                   flops_per_frame: float, peaks: dict[int, float], rounds: int = 2) -> list[dict]:
    """ms/frame of the networks under each variant, interleaved over `rounds` rounds (best kept),
    with the share of `peaks[threads]` (fp32 matmul FLOP/s at that many threads) it reaches.
    `pipes`: one pipeline per engine, the same model."""
    any_pipe = next(iter(pipes.values()))
    h, w = frames[0].shape[:2]
    prepared = [any_pipe.prepare(f) for f in frames]
    default_threads = torch.get_num_threads()
    # (name, engine, fn, frames per call, threads for torch / per ORT run, threads in all)
    variants = [("naive models: eager fp32 NCHW", "torch", _eager_nchw(any_pipe), 1, default_threads,
                 default_threads)]
    for engine, pipe in pipes.items():
        for t in threads_options:
            variants.append((f"{engine}, one frame at a time, {t} thread(s)", engine,
                             lambda b, p=pipe, t=t: p.run_prepared(b, h, w, t), 1, t, t))
    parallel = {engine: FrameParallel(pipe, workers=min(os.cpu_count() or 1, 2)) for engine, pipe in pipes.items()}
    for engine, fp in parallel.items():
        if fp.workers > 1:
            variants.append((f"{engine}, frame-parallel: {fp.workers} frames at once, {fp.threads} thread(s) each",
                             engine, lambda b, fp=fp: fp(b, h, w), fp.workers, fp.threads, fp.workers * fp.threads))
    results = {name: float("inf") for name, *_ in variants}
    # Entered for the whole ablation (their workers and thread counts); each variant then sets its own
    # thread count, restored when the ablation ends.
    with contextlib.ExitStack() as stack:
        for fp in parallel.values():
            stack.enter_context(fp)
        try:
            for _ in range(rounds):
                for name, _engine, fn, bs, threads, _total in variants:
                    torch.set_num_threads(threads)
                    batches = [np.stack(prepared[i:i + bs]) for i in range(0, len(prepared), bs)]
                    fn(batches[0])  # warm-up: primitive creation, the ONNX graph's first use
                    results[name] = min(results[name], _model_ms(fn, batches))
        finally:
            torch.set_num_threads(default_threads)
    rows = []
    for name, engine, _fn, _bs, _threads, total in variants:
        ms = results[name]
        peak = peaks.get(total)
        rows.append({"variant": name, "engine": engine, "threads": total, "model_ms_per_frame": round(ms, 2),
                     "fraction_of_peak": round(flops_per_frame / (ms / 1e3) / peak, 4) if peak else None})
    return rows
