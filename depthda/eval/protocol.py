"""KITTI depth evaluation with the protocols of the published Eigen-split tables.

For each frame: crop (Garg et al. 2016 by default), keep ground truth inside
(min_depth, max_depth), optionally scale the prediction by median(gt)/median(pred), clamp the
prediction into [min_depth, max_depth], then compute the metrics of depthda.eval.metrics over the
remaining pixels. Frames are averaged with equal weight.

Two published conventions by name (PROTOCOLS), as monodepth2's evaluation applies them:
  garg             the Eigen split's tables: Garg crop, ground truth inside (min, max) only;
  eigen-benchmark  the "improved ground truth" tables (652 frames with KITTI's annotated depth):
                   no crop, every ground-truth pixel > 0 counts (also beyond max_depth), while
                   predictions are still clamped into [min_depth, max_depth].
"""

from __future__ import annotations

import math

import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

from depthda.errors import DepthdaError
from depthda.eval.metrics import METRIC_NAMES, compute_depth_metrics, mean_metrics

# Fractions of the image kept by each crop: (top, bottom, left, right).
CROPS = {
    # Garg et al. 2016, used by monodepth/monodepth2 for the Eigen split.
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    # Eigen et al. 2014, as implemented in monodepth's evaluation.
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
    "none": None,
}
SCALINGS = ("none", "median")


@dataclass(frozen=True)
class EvalProtocol:
    crop: str = "garg"
    min_depth: float = 1e-3
    max_depth: float = 80.0
    scaling: str = "none"
    gt_in_range_only: bool = True   # False: every ground-truth pixel > 0 counts (eigen-benchmark)
    name: str = "garg"

    def __post_init__(self):
        if self.crop not in CROPS:
            raise DepthdaError(f"unknown crop {self.crop!r} (use {', '.join(CROPS)})")
        if self.scaling not in SCALINGS:
            raise DepthdaError(f"unknown scaling {self.scaling!r} (use {', '.join(SCALINGS)})")
        # Predictions are clamped to min-depth and the metrics take logs: it must be above 0.
        if not (math.isfinite(self.max_depth) and 0 < self.min_depth < self.max_depth):
            raise DepthdaError(f"need 0 < min-depth < max-depth, both finite, got {self.min_depth} and {self.max_depth}")

    def describe(self) -> str:
        gt = "ground truth inside the range" if self.gt_in_range_only else "all ground truth > 0"
        return (f"protocol={self.name}: crop={self.crop}, {gt}, predictions clamped to ({self.min_depth:g}, "
                f"{self.max_depth:g}) m, scaling={self.scaling}, metrics averaged per image")


# The published conventions by name: crop and ground-truth masking (the rest stays adjustable).
PROTOCOLS = {
    "garg": dict(crop="garg", gt_in_range_only=True),
    "eigen-benchmark": dict(crop="none", gt_in_range_only=False),
}


def named_protocol(name: str, **overrides) -> EvalProtocol:
    """A published protocol by name; `overrides` (crop, min/max depth, scaling) set what differs."""
    if name not in PROTOCOLS:
        raise DepthdaError(f"unknown protocol {name!r} (use {', '.join(PROTOCOLS)})")
    return EvalProtocol(**{**PROTOCOLS[name], **{k: v for k, v in overrides.items() if v is not None}}, name=name)


def crop_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    fractions = CROPS[crop]
    if fractions is None:
        mask[:] = True
        return mask
    top, bottom, left, right = np.array(fractions) * np.array([h, h, w, w])
    # Truncation as in the reference implementations, so identical pixels are kept.
    mask[int(top):int(bottom), int(left):int(right)] = True
    return mask


def resize_prediction(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float32)
    if pred.shape == tuple(shape):
        return pred
    return cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


@dataclass
class FrameResult:
    metrics: dict[str, float]
    scale: float
    valid_pixels: int
    # The evaluated pixels (kept only when asked, for plots): ground truth and final prediction.
    gt: np.ndarray | None = None
    pred: np.ndarray | None = None
    # Metrics over each region's pixels (depthda.eval.breakdown), None for a region with none.
    regions: dict[str, dict[str, float] | None] | None = None
    region_pixels: dict[str, int] | None = None


def evaluate_frame(gt: np.ndarray, pred: np.ndarray, protocol: EvalProtocol,
                   keep_pixels: bool = False, regions: dict[str, np.ndarray] | None = None) -> FrameResult | None:
    """Metrics of one frame, or None when no ground-truth pixel survives crop and range.

    `regions`: named H×W masks; each gets the metrics of the evaluated pixels inside it, with the
    frame's own scale (the standard metrics are unchanged by them)."""
    pred = resize_prediction(pred, gt.shape)
    if protocol.gt_in_range_only:
        mask = (gt > protocol.min_depth) & (gt < protocol.max_depth)
    else:
        mask = gt > 0
    mask &= crop_mask(gt.shape, protocol.crop)
    if not mask.any():
        return None
    gt_valid, pred_valid = gt[mask].astype(np.float64), pred[mask].astype(np.float64)
    scale = 1.0
    if protocol.scaling == "median":
        median_pred = np.median(pred_valid)
        if median_pred <= 0:
            raise DepthdaError("median scaling needs positive predictions; the median prediction is not")
        scale = float(np.median(gt_valid) / median_pred)
        pred_valid = pred_valid * scale
    pred_valid = np.clip(pred_valid, protocol.min_depth, protocol.max_depth)
    result = FrameResult(compute_depth_metrics(gt_valid, pred_valid), scale, int(mask.sum()))
    if regions is not None:
        result.regions, result.region_pixels = {}, {}
        for name, region in regions.items():
            inside = region[mask]
            result.region_pixels[name] = int(inside.sum())
            result.regions[name] = (compute_depth_metrics(gt_valid[inside], pred_valid[inside])
                                    if inside.any() else None)
    if keep_pixels:
        result.gt, result.pred = gt_valid.astype(np.float32), pred_valid.astype(np.float32)
    return result


@dataclass
class EvalResult:
    protocol: EvalProtocol
    metrics: dict[str, float]
    frames: list[str]
    per_frame: list[FrameResult | None]
    skipped: list[str] = field(default_factory=list)
    breakdown_info: dict | None = None  # how pixels were split into regions (JSON), when they were

    @property
    def evaluated(self) -> int:
        return len(self.frames) - len(self.skipped)

    @property
    def breakdown(self) -> dict[str, dict] | None:
        """Per region: metrics averaged over the frames that have pixels in it, how many frames
        those are, and the region's share of all evaluated pixels."""
        frames = [r for r in self.per_frame if r is not None and r.regions is not None]
        if not frames:
            return None
        total = sum(r.valid_pixels for r in frames)
        out = {}
        for name in frames[0].regions:
            scored = [r.regions[name] for r in frames if r.regions[name] is not None]
            out[name] = {**(mean_metrics(scored) if scored else {m: None for m in METRIC_NAMES}),
                         "frames": len(scored),
                         "pixel_fraction": sum(r.region_pixels[name] for r in frames) / total}
        return out

    def to_json(self) -> dict:
        out = {name: self.metrics[name] for name in METRIC_NAMES}
        out["protocol"] = asdict(self.protocol)
        out["frames"] = self.evaluated
        out["skipped_frames"] = len(self.skipped)
        scales = [r.scale for r in self.per_frame if r is not None]
        if self.protocol.scaling == "median":
            out["median_scale"] = {"mean": float(np.mean(scales)), "std": float(np.std(scales))}
        breakdown = self.breakdown
        if breakdown is not None:
            out["breakdown"] = {**(self.breakdown_info or {}), "regions": breakdown}
        return out

    def table(self) -> str:
        head = " ".join(f"{n:>9}" for n in METRIC_NAMES)
        values = " ".join(f"{self.metrics[n]:9.4f}" for n in METRIC_NAMES)
        lines = [f"protocol: {self.protocol.describe()}",
                 f"frames: {self.evaluated} evaluated, {len(self.skipped)} skipped (no valid ground truth)",
                 head, values]
        breakdown = self.breakdown
        if breakdown is not None:
            lines[2] = f"{'':9} " + head
            lines[3] = f"{'all':9} " + values
            for name, m in breakdown.items():
                cells = " ".join(f"{'-':>9}" if m[n] is None else f"{m[n]:9.4f}" for n in METRIC_NAMES)
                lines.append(f"{name:9} {cells}   ({m['pixel_fraction']:.0%} of pixels, {m['frames']} frames)")
        return "\n".join(lines)


def check_predictions(preds: np.ndarray, count: int) -> None:
    if preds.ndim != 3 or 0 in preds.shape[1:]:
        raise DepthdaError(f"predictions must be an N×H×W array with H, W > 0, got shape {preds.shape}")
    if len(preds) != count:
        raise DepthdaError(f"predictions hold {len(preds)} frames but the split has {count}")
    if not np.issubdtype(preds.dtype, np.floating):
        raise DepthdaError(f"predictions must be float depth in metres, got dtype {preds.dtype}")
    bad = [i for i in range(len(preds)) if not np.isfinite(preds[i]).all()]
    if bad:
        raise DepthdaError(f"predictions contain NaN or inf in {len(bad)} frame(s), first: frame {bad[0]}")


def evaluate(frame_names: Sequence[str], gts: Sequence[np.ndarray] | Callable[[int], np.ndarray],
             preds: Sequence[np.ndarray] | Callable[[int], np.ndarray], protocol: EvalProtocol,
             progress: Callable | None = None, keep_pixels: bool = False,
             regions: Callable[[int, np.ndarray], dict[str, np.ndarray]] | None = None) -> EvalResult:
    """Evaluate frame i's prediction against its ground truth, for every frame.

    `gts` and `preds` are sequences or functions of the frame index, so ground truth and model
    outputs can be produced lazily. `regions(i, gt)` gives frame i's named pixel masks for a
    breakdown of the metrics (depthda.eval.breakdown).
    """
    get_gt = gts if callable(gts) else gts.__getitem__
    get_pred = preds if callable(preds) else preds.__getitem__
    per_frame: list[FrameResult | None] = []
    skipped: list[str] = []
    indices = range(len(frame_names))
    for i in progress(indices) if progress else indices:
        pred = np.asarray(get_pred(i))
        if not np.all(np.isfinite(pred)):
            raise DepthdaError(f"prediction for frame {i} ({frame_names[i]}) contains NaN or inf")
        gt = np.asarray(get_gt(i), dtype=np.float32)
        result = evaluate_frame(gt, pred, protocol, keep_pixels, regions(i, gt) if regions else None)
        per_frame.append(result)
        if result is None:
            skipped.append(frame_names[i])
    if skipped:
        warnings.warn(f"{len(skipped)} frame(s) have no valid ground-truth pixel after cropping and were "
                      f"skipped, first: {skipped[0]}", stacklevel=2)
    valid = [r.metrics for r in per_frame if r is not None]
    if not valid:
        raise DepthdaError(f"none of the {len(frame_names)} frames has a valid ground-truth pixel "
                           f"({protocol.describe()})")
    return EvalResult(protocol, mean_metrics(valid), list(frame_names), per_frame, skipped)
