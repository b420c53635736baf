"""`depthda bench`: the inference pipeline against a naive frame-by-frame loop, on one video.

Both runs see the same frames at the same working resolution in one process, so their ratio
holds even on a machine shared with other jobs (absolute numbers do not). Both share that
process's settings, including the allocator's (depthda.infer.fast.malloc, set by the CLI): it speeds
the naive loop up more than the pipeline, and a plain script would not have it.

naive   frame by frame, as the paper's public inference script works: cv2 decode; resize, pad and
        normalise in numpy; style and depth networks called separately in eager fp32 (NCHW, as
        loaded); metres resized back with cv2; colour by matplotlib's colormap call per frame;
        cv2.VideoWriter 'mp4v'.
pipeline  depthda.infer.predict's video path: decode+prepare thread (one decoder thread) → networks
        (depthda.infer.fast.rewrites's rewrites, Winograd residual blocks on the single-thread
        workers, normalisation in the module; FrameParallel: frames queued one at a time to one
        worker per core) fed from the calling thread → a thread awaiting the results in order → finish+
        colour-LUT thread → H.264 encoding thread (x264 ultrafast, one thread), bounded queues
        between them.

Also measured: per-stage busy time (ms/frame), the networks' FLOPs per frame
(torch.utils.flop_counter), this machine's peak fp32 matmul FLOP/s (best of a few 2048² matmuls)
and the share of it the model stage reaches, max |pipeline depth − naive depth|, and an ablation
of the model stage (what each rewrite, batch size and thread count buys), interleaved so that
load from other processes hits every variant alike.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from depthda.infer.colorize import DepthColorizer, colorize_reference
from depthda.errors import DepthdaError
from depthda.paths import default_checkpoint, sample_video
from depthda.utils.fsio import write_text_atomic



def peak_matmul_flops(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best fp32 FLOP/s of an n×n×n matrix product, through MKL (torch.mm) and through oneDNN
    (the same product as a 1×1 convolution, the library the networks' convolutions use; MKL
    picks slower code paths on some non-Intel CPUs). "peak" is the larger of the two."""
    import torch.nn.functional as F

    a, b = torch.randn(n, n), torch.randn(n, n)
    x = torch.randn(1, n, 32, n // 32).contiguous(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1)
    out = {}
    for name, fn in (("mkl_mm", lambda: torch.mm(a, b)), ("onednn_conv1x1", lambda: F.conv2d(x, w))):
        fn()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        out[name] = 2 * n ** 3 / best
    out["peak"] = max(out.values())
    return out


def count_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())


def read_frames(video: Path, frames: int | None) -> tuple[list[np.ndarray], float]:
    from depthda.infer.video_io import VideoReader

    reader = VideoReader(video, max_frames=frames)
    out = list(reader)
    return out, reader.info.fps


def naive_run(video: Path, n_frames: int, style_dir: Path | None, depth_dir: Path, out_path: Path,
              near: float, far: float, cmap: str) -> tuple[dict, list[np.ndarray]]:
    """The frame-by-frame baseline; returns stage seconds and full-resolution depth per frame."""
    from depthda.models.depth_param import DepthParam
    from depthda.models.weights import load_exported
    from depthda.infer.pipeline import resize_interpolation

    depth_net, depth_cfg = load_exported(depth_dir, "cpu")
    style_net = load_exported(style_dir, "cpu")[0] if style_dir is not None else None
    param = DepthParam.from_dict(depth_cfg["depth_param"])
    wn = int(depth_cfg["size"][1])
    m = np.lcm(depth_net.stride, 4)
    times = dict.fromkeys(("decode", "preprocess", "style", "depth", "colorize", "encode"), 0.0)
    depths = []
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    try:
        for _ in range(n_frames):
            t0 = time.perf_counter()
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            h, w = rgb.shape[:2]
            hn = max(1, round(h * wn / w))
            hp, wp = -(-hn // m) * m, -(-wn // m) * m
            x = cv2.resize(rgb, (wn, hn), interpolation=resize_interpolation(w, wn))
            x = np.pad(x, ((0, hp - hn), (0, wp - wn), (0, 0)), mode="edge")
            x = x.astype(np.float32) / 127.5 - 1.0
            x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
            t2 = time.perf_counter()
            with torch.no_grad():
                if style_net is not None:
                    x = style_net(x)
                t3 = time.perf_counter()
                out = depth_net(x)
            d = param.decode(out)[0, 0, :hn, :wn].numpy()
            d = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)
            t4 = time.perf_counter()
            colour = colorize_reference(d, near, far, cmap)
            t5 = time.perf_counter()
            if writer is None:
                writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            writer.write(cv2.cvtColor(colour, cv2.COLOR_RGB2BGR))
            t6 = time.perf_counter()
            depths.append(d)
            for k, a, b in (("decode", t0, t1), ("preprocess", t1, t2), ("style", t2, t3), ("depth", t3, t4),
                            ("colorize", t4, t5), ("encode", t5, t6)):
                times[k] += b - a
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return times, depths


def pipeline_run(video: Path, n_frames: int, pipe, out_path: Path, near: float, far: float, cmap: str,
                 batch_size: int | None, workers: int | None = None,
                 threads: int | None = None) -> tuple[dict, list[np.ndarray], int]:
    from depthda.infer.pipeline import FrameParallel
    from depthda.infer.predict import video_stages
    from depthda.infer.video_io import CPU_DECODER, CPU_ENCODER, VideoReader, VideoWriter, run_overlapped

    reader = VideoReader(video, max_frames=n_frames, **CPU_DECODER)
    info = reader.info
    depths: list[np.ndarray] = []
    pipe.stage_times = {}
    try:
        with VideoWriter(out_path, info.width, info.height, info.fps, **CPU_ENCODER) as writer, \
                FrameParallel(pipe, workers, threads) as run:
            source, model, stages = video_stages(reader, pipe, run, DepthColorizer(near, far, cmap),
                                                 batch_size or run.workers, False, None, writer.write,
                                                 lambda i, d: depths.append(d))
            busy = run_overlapped(source, model, stages)
    finally:
        reader.close()
    busy.update(pipe.stage_times)
    # Frame-parallel workers compute while the calling thread only queues frames: the model stage's
    # busy time is its workers' compute time shared among them.
    busy["model"] = max(busy.get("model", 0.0), (busy.get("style", 0.0) + busy.get("depth", 0.0)) / run.workers)
    pipe.stage_times = None
    return busy, depths, writer.frames_written


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


def model_ablation(pipe_plain, pipe_fast, frames: list[np.ndarray], threads_options: list[int],
                   batch_options: list[int], rounds: int = 2) -> list[dict]:
    """ms/frame of the networks under each variant, interleaved over `rounds` rounds (best kept)."""
    h, w = frames[0].shape[:2]
    prepared = [pipe_fast.prepare(f) for f in frames]

    def batches(bs):
        return [np.stack(prepared[i:i + bs]) for i in range(0, len(prepared), bs)]

    def eager_nchw(batch):
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous()
        with torch.inference_mode():
            y = pipe_plain.style(x) if pipe_plain.style is not None else x
            pipe_plain.depth(y)

    def eager_cl(batch):
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = cl_style(x) if cl_style is not None else x
            cl_depth(y)

    import copy

    from depthda.infer.fast.rewrites import optimize_for_inference
    from depthda.infer.pipeline import DepthPipeline, FrameParallel

    cores = os.cpu_count() or 1
    parallel = FrameParallel(pipe_fast, workers=min(cores, 2))
    frame_parallel = lambda b: parallel(b, h, w)  # noqa: E731
    cl_style = copy.deepcopy(pipe_plain.style).to(memory_format=torch.channels_last) if pipe_plain.style else None
    cl_depth = copy.deepcopy(pipe_plain.depth).to(memory_format=torch.channels_last)
    fast = lambda b: pipe_fast.run_prepared(b, h, w)  # noqa: E731
    default_threads = torch.get_num_threads()
    variants = [("eager fp32 NCHW (naive models)", eager_nchw, 1, default_threads),
                ("+ channels_last", eager_cl, 1, default_threads),
                ("+ folded batch norm, group-norm kernel (pipeline models)", fast, 1, default_threads)]
    variants += [(f"pipeline models, batch {bs}", fast, bs, default_threads) for bs in batch_options if bs != 1]
    variants += [(f"pipeline models, {t} thread(s)", fast, 1, t) for t in threads_options if t != default_threads]
    if 1 in threads_options or default_threads == 1:
        no_wino = DepthPipeline(optimize_for_inference(pipe_plain.depth, winograd=False), pipe_plain.depth_config,
                                optimize_for_inference(pipe_plain.style, winograd=False) if pipe_plain.style else None,
                                pipe_plain.style_config)
        variants.append(("pipeline models without Winograd residual blocks, 1 thread",
                         lambda b: no_wino.run_prepared(b, h, w), 1, 1))
    if parallel.workers > 1:
        variants.append((f"pipeline models, frame-parallel: {parallel.workers} frames at once, "
                         f"{parallel.threads} thread(s) each", frame_parallel, parallel.workers, parallel.threads))
    results = {name: float("inf") for name, *_ in variants}
    try:
        for _ in range(rounds):
            for name, fn, bs, threads in variants:
                torch.set_num_threads(threads)
                bs_batches = batches(bs)
                fn(bs_batches[0])  # warm-up: oneDNN primitive creation
                results[name] = min(results[name], _model_ms(fn, bs_batches))
    finally:
        torch.set_num_threads(default_threads)
        parallel.__exit__(None, None, None)
    return [{"variant": name, "model_ms_per_frame": round(results[name], 2)} for name, *_ in variants]


def run_bench(video: str | Path | None = None, *, frames: int | None = 75, checkpoint: str | Path | None = None,
              device: str = "cpu", batch_size: int | None = None, workers: int | None = None,
              threads: int | None = None, json_path: str | Path | None = None, cmap: str = "magma",
              ablation: bool = True, random_weights: bool = False, rounds: int = 2,
              log: Callable[[str], None] = lambda message: None) -> dict:
    """Time naive vs pipeline on the first `frames` frames; `random_weights` benches randomly
    initialised small presets (speed does not depend on the weights' values). `log` hears what
    the bench is doing: a full run takes minutes."""
    if random_weights:
        if checkpoint is not None:
            raise DepthdaError("give --checkpoint or --random-weights, not both")
        from depthda.infer.pipeline import init_checkpoint

        with tempfile.TemporaryDirectory(prefix="depthda-bench-ckpt-") as tmp:
            init_checkpoint(tmp)
            return run_bench(video, frames=frames, checkpoint=tmp, device=device, batch_size=batch_size,
                             workers=workers, threads=threads, json_path=json_path, cmap=cmap, ablation=ablation,
                             rounds=rounds, log=log)
    from depthda.infer.pipeline import DepthPipeline

    video = Path(video) if video is not None else sample_video()
    if frames is not None and frames < 1:
        raise DepthdaError("--frames must be at least 1")
    frame_list, fps_in = read_frames(video, frames)
    n = len(frame_list)
    pipe = DepthPipeline.from_checkpoint(checkpoint, device=device)
    if pipe.device.type != "cpu":
        raise DepthdaError("the bench compares against a CPU baseline; run it with --device cpu")
    cores = os.cpu_count() or 1
    workers = workers or min(cores, 2)
    threads = threads or max(1, cores // workers)
    batch_size = batch_size or workers
    ckpt = Path(checkpoint) if checkpoint is not None else None
    ckpt = ckpt or default_checkpoint()
    near, far = pipe.depth_param.min_depth, pipe.depth_param.max_depth
    h, w = frame_list[0].shape[:2]
    hn, wn, hp, wp = pipe.working_size(h, w)

    naive_s = pipe_s = float("inf")
    rounds_fps = []
    with tempfile.TemporaryDirectory(prefix="depthda-bench-") as tmp:
        tmp = Path(tmp)
        log(f"bench: {n} frames of {video.name}, warming up")
        # Warm both paths once (oneDNN primitives, lazy imports) so neither pays start-up in its timing.
        pipeline_run(video, min(n, 4), pipe, tmp / "warm.mp4", near, far, cmap, batch_size, workers, threads)
        naive_run(video, 2, ckpt / "style", ckpt / "depth", tmp / "warm.avi", near, far, cmap)
        # Interleaved rounds, best kept: load from other processes then hits both alike.
        for r in range(rounds):
            log(f"bench: round {r + 1}/{rounds}: naive loop")
            t = time.perf_counter()
            times, naive_depths = naive_run(video, n, ckpt / "style", ckpt / "depth", tmp / "naive.mp4", near, far, cmap)
            dt_naive = time.perf_counter() - t
            if dt_naive < naive_s:
                naive_s, naive_times = dt_naive, times
            log(f"bench: round {r + 1}/{rounds}: pipeline ({n / dt_naive:.1f} frames/s naive)")
            t = time.perf_counter()
            times, pipe_depths, written = pipeline_run(video, n, pipe, tmp / "pipeline.mp4", near, far, cmap,
                                                       batch_size, workers, threads)
            dt_pipe = time.perf_counter() - t
            if dt_pipe < pipe_s:
                pipe_s, pipe_times = dt_pipe, times
            rounds_fps.append({"naive_fps": round(n / dt_naive, 3), "fps": round(n / dt_pipe, 3)})
            if written != n or len(naive_depths) != n:
                raise DepthdaError(f"frame counts differ: read {n}, pipeline wrote {written}, naive {len(naive_depths)}")
            max_diff = max(float(np.abs(a - b).max()) for a, b in zip(pipe_depths, naive_depths))
            max_rel = max(float((np.abs(a - b) / b).max()) for a, b in zip(pipe_depths, naive_depths))
            del pipe_depths, naive_depths

    log("bench: counting FLOPs and measuring peak matmul throughput")
    x = torch.zeros(1, 3, hp, wp)
    flops_style = count_flops(pipe.style, x.contiguous(memory_format=torch.channels_last)) if pipe.style else 0
    flops_depth = count_flops(pipe.depth, x.contiguous(memory_format=torch.channels_last))
    peaks = peak_matmul_flops()
    peak = peaks["peak"]
    model_s = pipe_times.get("model", 0.0)
    flops = flops_style + flops_depth

    def per_frame(times):
        return {k: round(v / n * 1e3, 3) for k, v in times.items()}

    result = {
        "video": str(video), "frames": n, "input_size": [h, w], "input_fps": fps_in,
        "working_size": [hn, wn], "padded_size": [hp, wp], "batch_size": batch_size,
        "model_workers": workers, "threads_per_worker": threads, "naive_threads": torch.get_num_threads(),
        "device": "cpu", "cpu_count": cores,
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "fps": round(n / pipe_s, 3), "naive_fps": round(n / naive_s, 3), "speedup": round(naive_s / pipe_s, 3),
        "stage_ms_per_frame": {"pipeline": per_frame(pipe_times), "naive": per_frame(naive_times)},
        "flops_per_frame": {"style": flops_style, "depth": flops_depth, "total": flops},
        "peak_matmul_flops": round(peak), "peak_matmul_flops_by_library": {k: round(v) for k, v in peaks.items() if k != "peak"},
        "rounds": rounds_fps,
        "model_stage_flops_per_s": round(flops * n / model_s) if model_s else None,
        "model_stage_fraction_of_peak": round(flops * n / model_s / peak, 4) if model_s else None,
        "max_abs_depth_diff_m": max_diff, "max_rel_depth_diff": max_rel,
    }
    if ablation:
        log("bench: model ablation (each inference rewrite on and off)")
        plain = DepthPipeline.from_checkpoint(checkpoint, device="cpu", optimize=False)
        result["model_ablation"] = model_ablation(plain, pipe, frame_list[: min(n, 8)],
                                                  threads_options=sorted({1, cores}), batch_options=[1, 2, 4])
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(result, indent=2) + "\n")
    return result


def format_result(r: dict) -> str:
    lines = [f"{r['frames']} frames {r['input_size'][1]}x{r['input_size'][0]} → working {r['working_size'][1]}x"
             f"{r['working_size'][0]} (padded {r['padded_size'][1]}x{r['padded_size'][0]}), batch {r['batch_size']}, "
             f"{r['model_workers']} model worker(s) × {r['threads_per_worker']} thread(s) "
             f"(naive: {r['naive_threads']} threads), {r['cpu_count']} CPUs",
             f"pipeline {r['fps']:.2f} fps   naive {r['naive_fps']:.2f} fps   speedup {r['speedup']:.2f}x",
             "stage ms/frame (busy time; pipeline stages overlap):"]
    for name in ("naive", "pipeline"):
        lines.append(f"  {name:9s}" + "  ".join(f"{k} {v:.1f}" for k, v in r["stage_ms_per_frame"][name].items()))
    f = r["flops_per_frame"]
    lines.append(f"FLOPs/frame: style {f['style'] / 1e9:.2f} G, depth {f['depth'] / 1e9:.2f} G; peak fp32 matmul "
                 f"{r['peak_matmul_flops'] / 1e9:.1f} GFLOP/s; model stage reaches "
                 f"{(r['model_stage_fraction_of_peak'] or 0) * 100:.1f}% of it")
    lines.append(f"max |pipeline − naive| depth: {r['max_abs_depth_diff_m']:.3g} m (relative {r['max_rel_depth_diff']:.2g})")
    for row in r.get("model_ablation", []):
        lines.append(f"  model {row['model_ms_per_frame']:8.1f} ms/frame  {row['variant']}")
    return "\n".join(lines)
