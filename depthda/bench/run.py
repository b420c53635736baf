"""run_bench: the naive loop against the pipeline on the same frames, then FLOPs, peak throughput
and the model ablation, as one result dict (see depthda.bench for what each part measures)."""

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
from depthda.bench.flops import count_flops, peak_matmul_flops
from depthda.bench.naive import naive_run
from depthda.bench.pipeline_run import pipeline_run
from depthda.errors import DepthdaError
from depthda.infer.fast import prepare_cpu_process
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.video_io import VideoReader
from depthda.models.random_pipeline import init_checkpoint
from depthda.paths import default_checkpoint, sample_video
from depthda.utils.fsio import write_text_atomic
from depthda.utils.outputs import check_outputs, files_under


def read_frames(video: Path, frames: int | None) -> tuple[list[np.ndarray], float]:
    reader = VideoReader(video, max_frames=frames)
    out = list(reader)
    return out, reader.info.fps


@dataclass
class _Rounds:
    """Best wall time and stage seconds of each side over the rounds, frames/s of every round, and
    how far the two sides' depths differ (the last round's; the same in every round)."""
    naive_s: float = float("inf")
    pipe_s: float = float("inf")
    smooth_s: float = float("inf")
    naive_times: dict = field(default_factory=dict)
    pipe_times: dict = field(default_factory=dict)
    smooth_times: dict = field(default_factory=dict)
    fps: list = field(default_factory=list)
    max_diff: float = 0.0
    max_rel: float = 0.0


_SIDES = ["naive", "pipe", "smooth"]
_SIDE_NAMES = {"naive": "naive loop", "pipe": "pipeline", "smooth": "pipeline with the temporal filter"}


def _interleaved_rounds(video: Path, n: int, pipe: DepthPipeline, checkpoint: Path, tmp: Path, near: float,
                        far: float, cmap: str, batch_size: int, workers: int, threads: int, rounds: int,
                        log: Callable[[str], None]) -> _Rounds:
    naive_args = (checkpoint / "style", checkpoint / "depth")
    log(f"bench: {n} frames of {video.name}, warming up")
    # Warm both paths once (oneDNN primitives, lazy imports) so neither pays start-up in its timing.
    pipeline_run(video, min(n, 4), pipe, tmp / "warm.mp4", near, far, cmap, batch_size, workers, threads)
    naive_run(video, 2, *naive_args, tmp / "warm.avi", near, far, cmap)
    # Interleaved rounds, best kept: load from other processes then hits all three alike. The order
    # rotates each round, so a CPU that speeds up or slows down within a round favours none of them.
    best = _Rounds()
    for r in range(rounds):
        seconds, out = {}, {}
        for side in _SIDES[r % 3:] + _SIDES[:r % 3]:
            log(f"bench: round {r + 1}/{rounds}: {_SIDE_NAMES[side]}")
            t = time.perf_counter()
            if side == "naive":
                out[side] = naive_run(video, n, *naive_args, tmp / "naive.mp4", near, far, cmap)
            else:
                out[side] = pipeline_run(video, n, pipe, tmp / f"{side}.mp4", near, far, cmap, batch_size, workers,
                                         threads, smooth=side == "smooth")
            seconds[side] = time.perf_counter() - t
            log(f"bench: round {r + 1}/{rounds}: {_SIDE_NAMES[side]} {n / seconds[side]:.1f} frames/s")
            if seconds[side] < getattr(best, f"{side}_s"):
                setattr(best, f"{side}_s", seconds[side])
                setattr(best, f"{side}_times", out[side][0])
        best.fps.append({"naive_fps": round(n / seconds["naive"], 3), "fps": round(n / seconds["pipe"], 3),
                         "fps_smoothed": round(n / seconds["smooth"], 3), "order": _SIDES[r % 3:] + _SIDES[:r % 3]})
        naive_depths = out["naive"][1]
        _, pipe_depths, written = out["pipe"]
        if written != n or len(naive_depths) != n:
            raise DepthdaError(f"frame counts differ: read {n}, pipeline wrote {written}, naive {len(naive_depths)}")
        best.max_diff = max(float(np.abs(a - b).max()) for a, b in zip(pipe_depths, naive_depths))
        best.max_rel = max(float((np.abs(a - b) / b).max()) for a, b in zip(pipe_depths, naive_depths))
        del pipe_depths, naive_depths, out
    return best


def run_bench(video: str | Path | None = None, *, frames: int | None = 75, checkpoint: str | Path | None = None,
              device: str = "cpu", batch_size: int | None = None, workers: int | None = None,
              threads: int | None = None, json_path: str | Path | None = None, cmap: str = "magma",
              ablation: bool = True, random_weights: bool = False, rounds: int = 3,
              log: Callable[[str], None] = lambda message: None) -> dict:
    """Time naive vs pipeline on the first `frames` frames; `random_weights` benches randomly
    initialised small presets (speed does not depend on the weights' values). `log` hears what
    the bench is doing: a full run takes minutes."""
    if random_weights and checkpoint is not None:
        raise DepthdaError("give --checkpoint or --random-weights, not both")
    video = Path(video) if video is not None else sample_video()
    check_outputs(reads=[video, *files_under(checkpoint or default_checkpoint())], files=[json_path])
    if frames is not None and frames < 1:
        raise DepthdaError("--frames must be at least 1")
    with tempfile.TemporaryDirectory(prefix="depthda-bench-") as tmp:
        tmp = Path(tmp)
        checkpoint = init_checkpoint(tmp / "random-weights") if random_weights else checkpoint
        checkpoint = Path(checkpoint) if checkpoint is not None else default_checkpoint()
        frame_list, fps_in = read_frames(video, frames)
        n = len(frame_list)
        pipe = DepthPipeline.from_checkpoint(checkpoint, device=device)
        if pipe.device.type != "cpu":
            raise DepthdaError("the bench compares against a CPU baseline; run it with --device cpu")
        # Already made by from_checkpoint; called here because the comparison depends on it: the
        # naive loop runs under the same process-wide allocator setting as the pipeline.
        prepare_cpu_process()
        cores = os.cpu_count() or 1
        workers = workers or min(cores, 2)
        threads = threads or max(1, cores // workers)
        batch_size = batch_size or workers
        near, far = pipe.depth_param.min_depth, pipe.depth_param.max_depth
        h, w = frame_list[0].shape[:2]
        hn, wn, hp, wp = pipe.working_size(h, w)
        best = _interleaved_rounds(video, n, pipe, checkpoint, tmp, near, far, cmap, batch_size, workers, threads,
                                   rounds, log)

        log("bench: counting FLOPs and measuring peak matmul throughput")
        x = torch.zeros(1, 3, hp, wp).contiguous(memory_format=torch.channels_last)
        flops_style = count_flops(pipe.style, x) if pipe.style else 0
        flops_depth = count_flops(pipe.depth, x)
        peaks = peak_matmul_flops()
        peak = peaks["peak"]
        model_s = best.pipe_times.get("model", 0.0)
        flops = flops_style + flops_depth

        def per_frame(times):
            return {k: round(v / n * 1e3, 3) for k, v in times.items()}

        result = {
            "video": str(video), "frames": n, "input_size": [h, w], "input_fps": fps_in,
            "working_size": [hn, wn], "padded_size": [hp, wp], "batch_size": batch_size,
            "model_workers": workers, "threads_per_worker": threads, "naive_threads": torch.get_num_threads(),
            "device": "cpu", "cpu_count": cores,
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "fps": round(n / best.pipe_s, 3), "naive_fps": round(n / best.naive_s, 3),
            "speedup": round(best.naive_s / best.pipe_s, 3),
            # what `depthda predict` runs on video by default: the pipeline plus the temporal filter
            "fps_smoothed": round(n / best.smooth_s, 3), "speedup_smoothed": round(best.naive_s / best.smooth_s, 3),
            "stage_ms_per_frame": {"pipeline": per_frame(best.pipe_times), "naive": per_frame(best.naive_times),
                                   "pipeline_smoothed": per_frame(best.smooth_times)},
            "flops_per_frame": {"style": flops_style, "depth": flops_depth, "total": flops},
            "peak_matmul_flops": round(peak),
            "peak_matmul_flops_by_library": {k: round(v) for k, v in peaks.items() if k != "peak"},
            "rounds": best.fps,
            "model_stage_flops_per_s": round(flops * n / model_s) if model_s else None,
            "model_stage_fraction_of_peak": round(flops * n / model_s / peak, 4) if model_s else None,
            "max_abs_depth_diff_m": best.max_diff, "max_rel_depth_diff": best.max_rel,
        }
        if ablation:
            log("bench: model ablation (each inference rewrite on and off)")
            plain = DepthPipeline.from_checkpoint(checkpoint, device="cpu", optimize=False)
            result["model_ablation"] = model_ablation(plain, pipe, frame_list[: min(n, 8)],
                                                      threads_options=sorted({1, cores}), batch_options=[1, 2, 4])
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(result, indent=2) + "\n")
    return result
