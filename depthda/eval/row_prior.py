"""How much of a depth network's output follows the image row instead of the scene: the row prior.

A network trained on streets can score well by reading depth off the row alone (near at the
bottom, far at the top), which fails wherever an obstacle stands. The probe shows the network the
same frame twice, as two crops `shift` rows apart: the top part and the bottom part. Where the two
crops overlap they show the same things, `shift` rows higher in the lower crop. A network that
reads the scene moves its depth with the content; a network that reads the row leaves its depth in
place. Per frame,

    row prior = e_scene / (e_scene + e_row)

with e_scene the mean |log-depth difference| between the two predictions aligned on the content,
and e_row the same aligned on the image rows (the median difference removed from each, so a
change of overall scale counts for neither). 0: depth follows the scene; 1: depth follows the
row; 0.5: no preference. A vertical shift of the crop is a shift of the principal point, which
changes no depth, so a correct network scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from depthda.errors import DepthdaError

DEFAULT_SHIFT = 0.2  # of the frame's height: wide enough for a real shift, narrow enough to overlap


@dataclass
class RowPrior:
    per_frame: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_frame))


def check_shift(shift: float) -> None:
    """The two crops must overlap: a shift of half the height or more leaves nothing to compare."""
    if not 0 < shift < 0.5:
        raise ValueError(f"shift must be between 0 and 0.5 of the height, got {shift}")


def _log(depth: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(depth, np.float64), 1e-3))


def _scale_free_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |log a − log b| once their median ratio is divided out."""
    d = a - b
    return float(np.abs(d - np.median(d)).mean())


def frame_row_prior(predict: Callable[[np.ndarray], np.ndarray], frame: np.ndarray,
                    shift: float = DEFAULT_SHIFT) -> float:
    """The row prior of `predict` (H×W×3 RGB → H×W depth) on one frame."""
    check_shift(shift)
    h = frame.shape[0]
    s = max(1, round(shift * h))
    if h - 2 * s < 1:  # the two crops must share at least one row
        raise DepthdaError(f"an image {h} rows high is too short for a shift of {s} rows: it needs at least "
                           f"{2 * s + 1} rows")
    top = _log(predict(np.ascontiguousarray(frame[: h - s])))
    bottom = _log(predict(np.ascontiguousarray(frame[s:])))
    overlap = h - 2 * s  # rows s .. h-s of the frame: rows s.. of `top`, rows 0.. of `bottom`
    e_scene = _scale_free_error(bottom[:overlap], top[s:s + overlap])
    e_row = _scale_free_error(bottom[:overlap], top[:overlap])
    return e_scene / max(e_scene + e_row, 1e-12)


def row_prior(predict: Callable[[np.ndarray], np.ndarray], frames, shift: float = DEFAULT_SHIFT) -> RowPrior:
    """The row prior of `predict` on each of `frames` (H×W×3 RGB arrays)."""
    return RowPrior([frame_row_prior(predict, f, shift) for f in frames])
