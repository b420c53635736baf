"""run_bench: the naive loop against the pipeline on the same frames (the default engine with and
without the temporal filter, and the other engine), then FLOPs, peak throughput and the model
ablation, as one result dict (see depthda.bench for what each part measures)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from depthda.bench.ablation import model_ablation
from depthda.bench.checks import check_bench
from depthda.bench.data_loading import cpu_model
from depthda.bench.flops import count_flops, peak_matmul_flops
from depthda.bench.naive import naive_run
from depthda.bench.pipeline_run import pipeline_run
from depthda.errors import DepthdaError
from depthda.infer.engine import resolve_engine, versions
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.video_io import VideoReader
from depthda.models.random_pipeline import init_checkpoint
from depthda.paths import default_checkpoint
from depthda.utils.fsio import write_text_atomic


def read_frames(video: Path, frames: int | None) -> tuple[list[np.ndarray], float]:
    reader = VideoReader(video, max_frames=frames)
    out = list(reader)
    return out, reader.info.fps


@dataclass
class _Rounds:
    """Best wall time and stage seconds of each side over the rounds, frames/s of every round, and
    how far each pipeline's depth is from the naive loop's (the last round's; the same in every round)."""
    seconds: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    fps: list = field(default_factory=list)
    max_diff: dict = field(default_factory=dict)
    max_rel: dict = field(default_factory=dict)
    peaks: dict = field(default_factory=dict)  # threads → the best round's peak_matmul_flops


def _other(engine: str) -> str:
    return "torch" if engine == "onnxruntime" else "onnxruntime"


def _interleaved_rounds(video: Path, n: int, pipes: dict[str, DepthPipeline], engine: str, checkpoint: Path,
                        tmp: Path, near: float, far: float, cmap: str, batch_size: int, workers: int, threads: int,
                        rounds: int, peak_threads: list[int], log: Callable[[str], None]) -> _Rounds:
    """`pipes`: the default engine's pipeline and the other engine's; sides: the naive loop, the
    default pipeline without and with the temporal filter, and the other engine's pipeline. The fp32
    matmul peak at each of `peak_threads` is measured every round too, best kept, so that the
    networks' share of it compares two figures from the same load."""
    naive_args = (checkpoint / "style", checkpoint / "depth")
    other = _other(engine)
    sides = {"naive": "naive loop", "pipeline": f"pipeline ({engine})",
             "pipeline_smoothed": f"pipeline ({engine}) with the temporal filter",
             f"pipeline_{other}": f"pipeline ({other})"}
    order = list(sides)

    def run_side(side: str, frames: int, name: str):
        if side == "naive":
            return naive_run(video, frames, *naive_args, tmp / f"{name}.mp4", near, far, cmap)
        pipe = pipes[other] if side == f"pipeline_{other}" else pipes[engine]
        return pipeline_run(video, frames, pipe, tmp / f"{name}.mp4", near, far, cmap, batch_size, workers, threads,
                            smooth=side == "pipeline_smoothed")

    log(f"bench: {n} frames of {video.name}, warming up (and making the ONNX graph, once per model and size)")
    # Warm every path once (primitives, lazy imports, the ONNX graph) so none pays start-up in its timing.
    for side in order:
        run_side(side, min(n, 4 if side != "naive" else 2), "warm")
    # Interleaved rounds, best kept: load from other processes then hits every side alike. The
    # order rotates each round, so a CPU that speeds up or slows down within a round favours none.
    best = _Rounds(seconds=dict.fromkeys(order, float("inf")))
    for r in range(rounds):
        k = r % len(order)
        seconds, out = {}, {}
        for side in order[k:] + order[:k]:
            log(f"bench: round {r + 1}/{rounds}: {sides[side]}")
            t = time.perf_counter()
            out[side] = run_side(side, n, side)
            seconds[side] = time.perf_counter() - t
            log(f"bench: round {r + 1}/{rounds}: {sides[side]} {n / seconds[side]:.1f} frames/s")
            if seconds[side] < best.seconds[side]:
                best.seconds[side], best.times[side] = seconds[side], out[side][0]
        best.fps.append({**{f"{side}_fps": round(n / seconds[side], 3) for side in order},
                         "order": order[k:] + order[:k]})
        naive_depths = out["naive"][1]
        for side in order[1:]:
            _, depths, written = out[side]
            if written != n or len(naive_depths) != n:
                raise DepthdaError(f"frame counts differ: read {n}, {sides[side]} wrote {written}, "
                                   f"naive {len(naive_depths)}")
            best.max_diff[side] = max(float(np.abs(a - b).max()) for a, b in zip(depths, naive_depths))
            best.max_rel[side] = max(float((np.abs(a - b) / b).max()) for a, b in zip(depths, naive_depths))
        del naive_depths, out
        log(f"bench: round {r + 1}/{rounds}: peak matmul throughput")
        for t in peak_threads:
            peak = peak_matmul_flops(threads=t)
            if peak["peak"] > best.peaks.get(t, {}).get("peak", 0.0):
                best.peaks[t] = peak
    return best


def run_bench(video: str | Path | None = None, *, frames: int | None = 75, checkpoint: str | Path | None = None,
              device: str = "cpu", engine: str = "auto", batch_size: int | None = None, workers: int | None = None,
              threads: int | None = None, json_path: str | Path | None = None, cmap: str = "magma",
              ablation: bool = True, random_weights: bool = False, rounds: int = 3,
              log: Callable[[str], None] = lambda message: None) -> dict:
    """Time naive vs pipeline on the first `frames` frames; `random_weights` benches randomly
    initialised small presets (speed does not depend on the weights' values). `engine` is the
    default pipeline's (auto: onnxruntime on the CPU); the other engine gets a row too. `log`
    hears what the bench is doing: a full run takes minutes."""
    video = check_bench(video, frames=frames, checkpoint=checkpoint, device=device, batch_size=batch_size,
                        workers=workers, threads=threads, rounds=rounds, random_weights=random_weights,
                        json_path=json_path)
    engine = resolve_engine(engine, torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="depthda-bench-") as tmp:
        tmp = Path(tmp)
        checkpoint = init_checkpoint(tmp / "random-weights") if random_weights else checkpoint
        checkpoint = Path(checkpoint) if checkpoint is not None else default_checkpoint()
        frame_list, fps_in = read_frames(video, frames)
        n = len(frame_list)
        pipes = {e: DepthPipeline.from_checkpoint(checkpoint, device="cpu", engine=e) for e in (engine, _other(engine))}
        pipe = pipes[engine]
        cores = os.cpu_count() or 1
        workers = workers or min(cores, 2)
        threads = threads or max(1, cores // workers)
        batch_size = batch_size or workers
        near, far = pipe.depth_param.min_depth, pipe.depth_param.max_depth
        h, w = frame_list[0].shape[:2]
        hn, wn, hp, wp = pipe.working_size(h, w)
        best = _interleaved_rounds(video, n, pipes, engine, checkpoint, tmp, near, far, cmap, batch_size, workers,
                                   threads, rounds, sorted({1, threads, cores}), log)

        log("bench: counting FLOPs")
        x = torch.zeros(1, 3, hp, wp).contiguous(memory_format=torch.channels_last)
        flops_style = count_flops(pipe.style, x) if pipe.style else 0
        flops_depth = count_flops(pipe.depth, x)
        flops = flops_style + flops_depth
        peaks_by_threads = best.peaks
        peak = peaks_by_threads[cores]["peak"]
        model_s = best.times["pipeline"].get("model", 0.0)
        other = _other(engine)

        def per_frame(times):
            return {k: round(v / n * 1e3, 3) for k, v in times.items()}

        def engine_row(side: str) -> dict:
            # Each worker's networks at `threads` threads, against the peak at that many threads.
            networks_s = best.times[side]["networks"]
            return {"fps": round(n / best.seconds[side], 3), "speedup": round(best.seconds["naive"] / best.seconds[side], 3),
                    "networks_ms_per_frame": round(networks_s / n * 1e3, 3),
                    "networks_fraction_of_peak": round(flops * n / networks_s / peaks_by_threads[threads]["peak"], 4),
                    "max_abs_depth_diff_m": best.max_diff[side], "max_rel_depth_diff": best.max_rel[side]}

        result = {
            "video": str(video), "frames": n, "input_size": [h, w], "input_fps": fps_in,
            "working_size": [hn, wn], "padded_size": [hp, wp], "batch_size": batch_size,
            "model_workers": workers, "threads_per_worker": threads, "naive_threads": torch.get_num_threads(),
            "device": "cpu", "cpu_count": cores, "load_average": list(os.getloadavg()),
            "machine": platform.processor() or platform.machine(), "cpu": cpu_model(),
            "engine": engine, "versions": versions(), "torch": torch.__version__,
            "fps": round(n / best.seconds["pipeline"], 3), "naive_fps": round(n / best.seconds["naive"], 3),
            "speedup": round(best.seconds["naive"] / best.seconds["pipeline"], 3),
            # what `depthda predict` runs on video by default: the pipeline plus the temporal filter
            "fps_smoothed": round(n / best.seconds["pipeline_smoothed"], 3),
            "speedup_smoothed": round(best.seconds["naive"] / best.seconds["pipeline_smoothed"], 3),
            # the filter's cost: in wall time (what it slows the video by) and its own busy time (it
            # runs in the colour stage, which is not the pace-setting stage on a CPU)
            "temporal_filter_ms_per_frame": round((best.seconds["pipeline_smoothed"] - best.seconds["pipeline"]) / n * 1e3, 3),
            "temporal_filter_busy_ms_per_frame": round((best.times["pipeline_smoothed"].get("colorize", 0.0)
                                                        - best.times["pipeline"].get("colorize", 0.0)) / n * 1e3, 3),
            "engines": {engine: engine_row("pipeline"), other: engine_row(f"pipeline_{other}")},
            "stage_ms_per_frame": {side: per_frame(times) for side, times in best.times.items()},
            "flops_per_frame": {"style": flops_style, "depth": flops_depth, "total": flops},
            "peak_matmul_flops": round(peak),
            "peak_matmul_flops_by_threads": {str(t): round(p["peak"]) for t, p in peaks_by_threads.items()},
            "peak_matmul_flops_by_library": {k: round(v) for k, v in peaks_by_threads[cores].items() if k != "peak"},
            "rounds": best.fps,
            "model_stage_flops_per_s": round(flops * n / model_s) if model_s else None,
            "model_stage_fraction_of_peak": round(flops * n / model_s / peak, 4) if model_s else None,
            "max_abs_depth_diff_m": best.max_diff["pipeline"], "max_rel_depth_diff": best.max_rel["pipeline"],
        }
        if ablation:
            log("bench: model ablation (each engine and thread count)")
            result["model_ablation"] = model_ablation(pipes, frame_list[: min(n, 8)], sorted({1, cores}), flops,
                                                      {t: p["peak"] for t, p in peaks_by_threads.items()})
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(result, indent=2) + "\n")
    return result
