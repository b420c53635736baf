"""Depth in metres → colour images, with one fixed depth→colour mapping for every frame.

Depth is placed on a log scale between `near` and `far` metres (a 10% change looks the same at
5 m and at 50 m, as in the depth network's own log parameterisation), inverted so that near is
the bright end of the colormap (magma/inferno: near = light yellow, far = black) and quantised
to 256 levels exactly as matplotlib's `Colormap.__call__` quantises (floor(t·256), clipped).
Depth outside [near, far] is clipped; NaN is drawn as far.

The mapping is a precomputed 256-entry lookup table (cv2.applyColorMap with a user table), faster
than calling the matplotlib colormap per frame (the bench's naive loop does that; compare their
colorize stages) and identical to it up to float32 rounding at bin edges (see `colorize_reference`).
"""

from __future__ import annotations

import math

import cv2
import matplotlib
import numpy as np

from depthda.errors import DepthdaError

DEFAULT_CMAP = "magma"


def colormap_lut(name: str) -> np.ndarray:
    """256×3 uint8 RGB table of a matplotlib colormap (what cmap(i, bytes=True) returns for i=0..255)."""
    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise DepthdaError(f"unknown colormap {name!r}; e.g. magma, inferno, viridis, plasma, turbo") from None
    return np.ascontiguousarray(cmap.resampled(256)(np.arange(256), bytes=True)[:, :3])


# Depths a colour scale can span, in metres: a millimetre to a thousand kilometres.
RANGE_LIMITS_M = (1e-3, 1e6)


def check_range(near: float, far: float) -> tuple[float, float]:
    lo, hi = RANGE_LIMITS_M
    if not (math.isfinite(near) and math.isfinite(far) and lo <= near < far <= hi):
        raise DepthdaError(f"depth range must satisfy {lo:g} <= MIN < MAX <= {hi:g} metres, got {near} {far}")
    return float(near), float(far)


class DepthColorizer:
    """Callable: H×W float32 metres → H×W×3 uint8 RGB."""

    def __init__(self, near: float, far: float, cmap: str = DEFAULT_CMAP):
        self.near, self.far = check_range(near, far)
        self.cmap = cmap
        self.lut = colormap_lut(cmap)
        # cv2.applyColorMap with a user table is a plain 256-entry lookup (it does not swap channels).
        self._lut3 = self.lut.reshape(256, 1, 3)
        span = math.log(self.far) - math.log(self.near)
        self._alpha = -256.0 / span                       # index = 256 · (log far − log d) / span
        self._beta = 256.0 * math.log(self.far) / span

    def index(self, depth: np.ndarray) -> np.ndarray:
        """H×W uint8 colormap index (255 = near, 0 = far)."""
        v = np.log(np.asarray(depth, np.float32))
        v *= self._alpha
        v += self._beta
        np.fmax(v, 0, out=v)        # fmax also maps NaN to 0 (far)
        np.minimum(v, 255, out=v)
        return v.astype(np.uint8)   # truncation = floor for v ≥ 0, as matplotlib quantises

    def __call__(self, depth: np.ndarray) -> np.ndarray:
        return cv2.applyColorMap(self.index(depth), self._lut3)


def colorize_reference(depth: np.ndarray, near: float, far: float, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """The straightforward way: matplotlib's colormap called on the frame (slow; for checks and the bench)."""
    d = np.clip(np.nan_to_num(depth, nan=far), near, far)
    t = (math.log(far) - np.log(d)) / (math.log(far) - math.log(near))
    return matplotlib.colormaps[cmap](t, bytes=True)[..., :3]


def side_by_side(rgb: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Input | depth, twice the input's width."""
    return np.concatenate([rgb, colour], axis=1)
