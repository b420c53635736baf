"""Temporal consistency of depth video (`depthda eval video`).

For each pair of consecutive frames: optical flow from frame t to frame t−1 on the input RGB
(OpenCV DIS, the MEDIUM preset, grey images at the input resolution), the log depth of frame t−1
warped onto frame t along it, and the mean |log d_t − warped log d_{t−1}| over the pixels whose
brightness agrees after the warp (|ΔI| < 8 of 255 grey levels) and that came from inside frame
t−1. A depth video that is consistent with the motion the images show scores 0; per-frame
flicker shows up directly, in log depth, i.e. as a relative error (0.1 ≈ a 10 % jump).

Real depth changes between frames count too (a camera driving towards a wall sees it come
nearer), so the figure of a perfect depth video of a moving camera is small but not 0.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from depthda.errors import DepthdaError
from depthda.infer.temporal import TemporalFilter, TemporalSettings, grey, warp_back

BRIGHTNESS_TOLERANCE = 8.0  # grey levels of 255
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


def pair_error(rgb_prev: np.ndarray, rgb: np.ndarray, log_depth_prev: np.ndarray, log_depth: np.ndarray,
               flow_engine=None) -> float:
    """Mean |log d_t − warped log d_{t−1}| over the pixels the warp explains (NaN if none)."""
    engine = flow_engine or cv2.DISOpticalFlow_create(FLOW_PRESET)
    g_prev, g = grey(rgb_prev), grey(rgb)
    flow = engine.calc(g, g_prev, None)
    warped_depth = warp_back(log_depth_prev, flow)
    warped_grey = warp_back(g_prev, flow)
    valid = np.isfinite(warped_depth) & (np.abs(g.astype(np.float32) - warped_grey) < BRIGHTNESS_TOLERANCE)
    if not valid.any():
        return float("nan")
    return float(np.abs(log_depth[valid] - warped_depth[valid]).mean())


@dataclass
class ConsistencyResult:
    errors: list[float] = field(default_factory=list)   # one per consecutive pair

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.errors)) if self.errors else float("nan")

    @property
    def median(self) -> float:
        return float(np.nanmedian(self.errors)) if self.errors else float("nan")

    def to_json(self) -> dict:
        return {"mean": self.mean, "median": self.median, "pairs": len(self.errors),
                "per_pair": [round(e, 6) for e in self.errors]}


class ConsistencyMeter:
    """Feed frames in order with their depth (metres, at the frame's resolution)."""

    def __init__(self):
        self._flow = cv2.DISOpticalFlow_create(FLOW_PRESET)
        self._prev = None
        self.result = ConsistencyResult()

    def add(self, rgb: np.ndarray, depth_m: np.ndarray) -> None:
        if rgb.shape[:2] != depth_m.shape:
            raise ValueError(f"frame {rgb.shape[:2]} and depth {depth_m.shape} differ in size")
        log_depth = np.log(np.maximum(depth_m.astype(np.float32), 1e-6))
        if self._prev is not None:
            self.result.errors.append(pair_error(self._prev[0], rgb, self._prev[1], log_depth, self._flow))
        self._prev = (rgb, log_depth)


@dataclass
class VideoEvalResult:
    clip: str
    frames: int
    per_frame: ConsistencyResult        # every frame predicted on its own
    smoothed: ConsistencyResult         # through the temporal filter, as `depthda predict` writes video
    settings: dict

    def to_json(self) -> dict:
        return {"clip": self.clip, "frames": self.frames,
                "measure": {"flow": "OpenCV DIS, MEDIUM preset, t -> t-1, input resolution",
                            "brightness_tolerance_grey_levels": BRIGHTNESS_TOLERANCE,
                            "error": "mean |log d_t - warped log d_t-1| over pixels the warp explains"},
                "temporal_filter": self.settings,
                "per_frame": self.per_frame.to_json(), "smoothed": self.smoothed.to_json()}

    def table(self) -> str:
        rows = [("per-frame", self.per_frame), ("smoothed", self.smoothed)]
        lines = [f"temporal error (log depth) over {self.frames} frames of {self.clip}",
                 f"{'output':<10} {'mean':>8} {'median':>8}"]
        lines += [f"{name:<10} {r.mean:>8.4f} {r.median:>8.4f}" for name, r in rows]
        return "\n".join(lines)


def evaluate_video(clip, pipeline, *, max_frames: int | None = None, focal_px: float | None = None,
                   progress=None, temporal: TemporalSettings = TemporalSettings()) -> VideoEvalResult:
    """The temporal error of `pipeline`'s depth on `clip`, frame by frame and smoothed.

    One network pass per frame serves both: the smoothed depth is that frame's depth through the
    temporal filter with `temporal`'s settings (the default: those `depthda predict` applies to video).
    """
    from dataclasses import asdict

    from depthda.infer.video_io import VideoReader

    raw, smooth, temporal_filter = ConsistencyMeter(), ConsistencyMeter(), TemporalFilter(temporal)
    with contextlib.closing(VideoReader(clip, max_frames=max_frames)) as reader:
        frames = reader if progress is None else progress(reader)
        for frame in frames:
            h, w = frame.shape[:2]
            hn, wn, _, _ = pipeline.working_size(h, w)
            prepared = pipeline.prepare(frame)
            working = pipeline.run_prepared(prepared[None], h, w)[0]
            raw.add(frame, pipeline.finish(working, h, w, focal_px))
            smooth.add(frame, pipeline.finish(temporal_filter(prepared[:hn, :wn], working), h, w, focal_px))
        count = reader.frames_read
    if count < 2:
        raise DepthdaError(f"{clip}: temporal consistency needs at least 2 frames, got {count}")
    return VideoEvalResult(str(clip), count, raw.result, smooth.result, asdict(temporal))


def plot_over_time(result: VideoEvalResult, out) -> None:
    """Temporal error of each consecutive pair, per-frame vs smoothed, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from depthda.utils.fsio import atomic_path

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    pairs = np.arange(1, len(result.per_frame.errors) + 1)
    ax.plot(pairs, result.per_frame.errors, label=f"per-frame (mean {result.per_frame.mean:.3f})")
    ax.plot(pairs, result.smoothed.errors, label=f"smoothed (mean {result.smoothed.mean:.3f})")
    ax.set_xlabel("frame t (pair t-1 -> t)")
    ax.set_ylabel("|Δ log depth|")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
