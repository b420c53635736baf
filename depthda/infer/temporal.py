"""Steady depth video: a motion-compensated recursive filter in log depth.

A per-frame network answers each frame afresh, so depth flickers from frame to frame where the
image barely changed. The filter keeps a running estimate and, for every new frame:

1. computes optical flow from the new frame to the previous one (OpenCV's DIS, grey images at the
   networks' working resolution, where it is cheap);
2. warps the running estimate along that flow onto the new frame;
3. blends, in log depth, the warped estimate with the new frame's depth, per pixel, by how well
   the warp explains the image there: where the warped previous frame matches the new one in
   brightness the history counts (`keep`), where it does not (occlusions, new content, objects
   the flow lost, pixels that came from outside the frame) the new frame's depth is taken as is.

It is causal (no look-ahead: no added latency) and stateful, so frames must come in order; one
filter serves one video. Depth from a KITTI-like camera moving forward changes by a few percent
per frame near the car; the blend lags such real changes by about keep / (1 − keep) frames of
their size, which is why `keep` stays moderate (see `depthda eval video` for both effects).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TemporalSettings:
    keep: float = 0.7             # weight of the warped history where the warp explains the image
    tolerance: float = 8.0        # grey levels (of 255): brightness disagreement at which history fades out
    flow_preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST   # cheap and good enough at working resolution

    def __post_init__(self):
        if not 0 <= self.keep < 1:
            raise ValueError("keep must be in [0, 1)")
        if not self.tolerance > 0:
            raise ValueError("tolerance must be positive")


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def warp_back(image: np.ndarray, flow: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Sample `image` (of frame t−1) at x + flow(x), i.e. bring it onto frame t; outside → `fill`."""
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return cv2.remap(image.astype(np.float32), xs, ys, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill))


class TemporalFilter:
    """Callable: (frame's working-size RGB uint8, its depth in metres) → filtered depth in metres."""

    def __init__(self, settings: TemporalSettings = TemporalSettings()):
        self.settings = settings
        self._flow = cv2.DISOpticalFlow_create(settings.flow_preset)
        self.reset()

    def reset(self) -> None:
        """Forget the history (a cut, or the next video)."""
        self._grey = None
        self._log_depth = None

    def __call__(self, rgb: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        if rgb.shape[:2] != depth_m.shape:
            raise ValueError(f"image {rgb.shape[:2]} and depth {depth_m.shape} must have the same size")
        g = grey(rgb)
        log_depth = np.log(depth_m.astype(np.float32))
        first = self._grey is None or self._grey.shape != g.shape
        if not first:
            flow = self._flow.calc(g, self._grey, None)       # from this frame to the previous one
            history = warp_back(self._log_depth, flow)
            mismatch = np.abs(g.astype(np.float32) - warp_back(self._grey, flow))
            weight = self.settings.keep * np.exp(-np.square(mismatch / self.settings.tolerance))
            weight[~np.isfinite(history)] = 0                  # came from outside the previous frame
            history = np.where(np.isfinite(history), history, log_depth)
            log_depth = log_depth + weight * (history - log_depth)
        self._grey, self._log_depth = g, log_depth
        return depth_m if first else np.exp(log_depth)  # a first frame comes out bit for bit
