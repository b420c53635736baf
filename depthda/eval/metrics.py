"""The standard monocular-depth error metrics (Eigen et al. 2014), as published KITTI tables use them.

Each metric is computed over the valid pixels of one image; a data set's figure is the mean over
images (not over all pixels pooled), which is how monodepth, monodepth2 and the tables built on
them report it.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
# Lower is better for the errors, higher for the threshold accuracies.
HIGHER_IS_BETTER = {"a1", "a2", "a3"}


def compute_depth_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Metrics between matching 1-D (or same-shape) arrays of positive depths in metres."""
    gt = np.asarray(gt, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred differ in size: {gt.shape} vs {pred.shape}")
    if gt.size == 0:
        raise ValueError("no valid pixels")
    ratio = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    log_diff = np.log(gt) - np.log(pred)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff**2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25**2)),
        "a3": float(np.mean(ratio < 1.25**3)),
    }


def mean_metrics(per_image: list[dict[str, float]]) -> dict[str, float]:
    """Average per-image metrics over images."""
    if not per_image:
        raise ValueError("no images to average")
    return {name: float(np.mean([m[name] for m in per_image])) for name in METRIC_NAMES}
