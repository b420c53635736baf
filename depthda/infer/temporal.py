"""Steady depth video: a motion-compensated recursive filter in log depth.

A per-frame network answers each frame afresh, so depth flickers from frame to frame where the
image barely changed. The filter keeps a running estimate and, for every new frame:

1. computes optical flow from the new frame to the previous one (OpenCV's DIS, ULTRAFAST preset,
   grey images at the networks' working resolution; DIS itself estimates the flow at a quarter of
   that and upsamples it, so a half-size input would only coarsen it further);
2. warps the running estimate along that flow onto the new frame;
3. blends, in log depth, the warped estimate with the new frame's depth, per pixel, by how well
   the warp explains the image there: where the warped previous frame matches the new one in
   brightness the history counts (`keep`), where it does not (occlusions, new content, objects
   the flow lost, pixels that came from outside the frame) the new frame's depth is taken as is.

It is causal (no look-ahead: no added latency) and stateful, so frames must come in order; one
filter serves one video. Depth from a KITTI-like camera moving forward changes by a few percent
per frame near the car; the blend lags such real changes by about keep / (1 − keep) frames of
their size, which is why `keep` stays moderate (see `depthda eval video` for both effects).

Cost: on a CPU the networks keep every core busy, so each millisecond the filter spends is taken
from them; hence the ULTRAFAST preset (DIS without the variational refinement, which is most of
the flow's time), one sampling map for both warps, and in-place arithmetic that computes bit for
bit what the plain expressions do. What it costs and what the preset gives up: docs/speed.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TemporalSettings:
    keep: float = 0.7             # weight of the warped history where the warp explains the image
    tolerance: float = 8.0        # grey levels (of 255): brightness disagreement at which history fades out
    # DIS preset: ULTRAFAST skips the variational refinement, which costs more time than it buys
    # steadiness (docs/speed.md).
    flow_preset: int = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST

    def __post_init__(self):
        if not 0 <= self.keep < 1:
            raise ValueError("keep must be in [0, 1)")
        if not self.tolerance > 0:
            raise ValueError("tolerance must be positive")


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


@functools.lru_cache(maxsize=8)
def pixel_grid(height: int, width: int) -> np.ndarray:
    """height×width×2 float32 (x, y) of every pixel, read-only: flow + grid = where to sample."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid = np.dstack([xs, ys])
    grid.flags.writeable = False
    return grid


def _sample(image: np.ndarray, positions: np.ndarray, fill: float) -> np.ndarray:
    """float32 `image` bilinearly at `positions` (h×w×2 x, y); outside → `fill`."""
    return cv2.remap(image, positions, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=float(fill))


def warp_back(image: np.ndarray, flow: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Sample `image` (of frame t−1) at x + flow(x), i.e. bring it onto frame t; outside → `fill`."""
    return _sample(image.astype(np.float32), flow + pixel_grid(*flow.shape[:2]), fill)


class TemporalFilter:
    """Callable: (frame's working-size RGB uint8, its depth in metres) → filtered depth in metres."""

    def __init__(self, settings: TemporalSettings = TemporalSettings()):
        self.settings = settings
        self._flow = cv2.DISOpticalFlow_create(settings.flow_preset)
        self.reset()

    def reset(self) -> None:
        """Forget the history (a cut, or the next video)."""
        self._grey = None         # previous frame: grey levels (uint8, for the flow) ...
        self._grey_f = None       # ... the same as float32 (to be warped) ...
        self._log_depth = None    # ... and its filtered log depth

    def __call__(self, rgb: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        if rgb.shape[:2] != depth_m.shape:
            raise ValueError(f"image {rgb.shape[:2]} and depth {depth_m.shape} must have the same size")
        g = grey(rgb)
        g_f = g.astype(np.float32)
        log_depth = np.log(np.asarray(depth_m, np.float32))
        first = self._grey is None or self._grey.shape != g.shape
        if not first:
            # Each step computes the expression in its comment in place, bit for bit the same for
            # positive, finite depth (tests/test_temporal.py: straightforward_filter).
            positions = self._flow.calc(g, self._grey, None)   # flow from this frame to the previous one
            positions += pixel_grid(*g.shape)                  # x + flow(x): one map for both warps
            history = _sample(self._log_depth, positions, np.nan)
            weight = _sample(self._grey_f, positions, np.nan)
            # weight = keep · exp(−(|g − warped previous g| / tolerance)²)
            np.subtract(g_f, weight, out=weight)
            np.abs(weight, out=weight)
            weight /= self.settings.tolerance
            np.square(weight, out=weight)
            np.negative(weight, out=weight)
            np.exp(weight, out=weight)
            weight *= self.settings.keep
            # log_depth += weight · (history − log_depth), and nothing where the warp sampled outside
            # the previous frame (history NaN)
            outside = ~np.isfinite(history)
            history -= log_depth
            history *= weight
            history[outside] = 0
            log_depth += history
        self._grey, self._grey_f, self._log_depth = g, g_f, log_depth
        return depth_m if first else np.exp(log_depth)  # a first frame comes out bit for bit
