"""The benches' settings and paths, checked without torch: `depthda bench` refuses a bad run in
one line before the seconds torch takes to import (depthda.bench.run and .data_loading call
these first too, so each rule is written once)."""

from __future__ import annotations

from pathlib import Path

from depthda.data.augment import VIEWS
from depthda.data.synthia import detect_layout
from depthda.errors import DepthdaError
from depthda.infer.checks import MAX_BATCH, input_kind, model_folders
from depthda.paths import default_checkpoint, sample_video
from depthda.utils.outputs import check_outputs, files_under


def _at_least_one(**counts: int | None) -> None:
    for name, value in counts.items():
        if value is not None and int(value) < 1:
            raise DepthdaError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def check_bench(video: str | Path | None, *, frames: int | None, checkpoint: str | Path | None, device: str,
                batch_size: int | None, workers: int | None, threads: int | None, rounds: int,
                random_weights: bool, json_path: str | Path | None) -> Path:
    """What run_bench checks before any model loads; returns the video (the shipped sample by default)."""
    if random_weights and checkpoint is not None:
        raise DepthdaError("give --checkpoint or --random-weights, not both")
    video = Path(video) if video is not None else sample_video()
    check_outputs(reads=[video, *files_under(checkpoint or default_checkpoint())], files=[json_path])
    if input_kind(video) != "video":
        raise DepthdaError(f"not a video: {video}")
    _at_least_one(frames=frames, batch_size=batch_size, workers=workers, threads=threads, rounds=rounds)
    if batch_size is not None and batch_size > MAX_BATCH:
        raise DepthdaError(f"--batch-size must be from 1 to {MAX_BATCH}, got {batch_size}")
    if not random_weights:
        model_folders(checkpoint, None, None, use_style=True)
    if device.split(":")[0] != "cpu":
        raise DepthdaError("the bench compares against a CPU baseline; run it with --device cpu")
    return video


def check_data_bench(data_root: str | Path | None, *, size: tuple[int, int], view: str,
                     samples: int, frames: int, rounds: int, json_path: str | Path | None) -> tuple[int, int]:
    """What run_data_bench checks before anything is rendered or loaded; returns the size as ints."""
    size = (int(size[0]), int(size[1]))
    if size[0] <= 0 or size[1] <= 0:
        raise DepthdaError(f"size must be (height, width) in pixels, got {size}")
    check_outputs(trees=[data_root], files=[json_path])
    if view not in VIEWS:
        raise DepthdaError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    _at_least_one(samples=samples, frames=frames, rounds=rounds)
    if data_root is not None:
        detect_layout(data_root)  # a bad root fails here, before anything is rendered
    return size
