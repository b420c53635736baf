"""Diagnostic plots of an evaluation: error by distance band and the worst frames."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from depthda.eval.protocol import EvalResult, crop_mask, resize_prediction  # noqa: E402
from depthda.utils.fsio import atomic_path  # noqa: E402

BAND_WIDTH_M = 10.0


def plot_error_by_distance(result: EvalResult, out: Path) -> Path:
    """Abs Rel and RMSE of all evaluated pixels pooled per ground-truth distance band."""
    gt = np.concatenate([r.gt for r in result.per_frame if r is not None])
    pred = np.concatenate([r.pred for r in result.per_frame if r is not None])
    edges = np.arange(0.0, result.protocol.max_depth + BAND_WIDTH_M, BAND_WIDTH_M)
    labels, abs_rel, rmse, counts = [], [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (gt >= lo) & (gt < hi)
        if not band.any():
            continue
        labels.append(f"{lo:.0f}-{hi:.0f}")
        abs_rel.append(np.mean(np.abs(pred[band] - gt[band]) / gt[band]))
        rmse.append(np.sqrt(np.mean((pred[band] - gt[band]) ** 2)))
        counts.append(int(band.sum()))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, values, title in zip(axes, (abs_rel, rmse, counts), ("Abs Rel", "RMSE (m)", "pixels")):
        ax.bar(labels, values, color="tab:blue")
        ax.set_title(title)
        ax.set_xlabel("ground-truth depth band (m)")
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"Error by distance — {result.protocol.describe()}", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def plot_worst_frames(result: EvalResult, get_image: Callable[[int], np.ndarray],
                      get_gt: Callable[[int], np.ndarray], get_pred: Callable[[int], np.ndarray],
                      out: Path, count: int = 6) -> Path:
    """Rows of image | ground truth | prediction | relative error for the highest Abs Rel frames."""
    scored = [(r.metrics["abs_rel"], i) for i, r in enumerate(result.per_frame) if r is not None]
    worst = [i for _, i in sorted(scored, reverse=True)[:count]]
    vmax = result.protocol.max_depth
    fig, axes = plt.subplots(len(worst), 4, figsize=(20, 2.2 * len(worst)), squeeze=False)
    for row, i in zip(axes, worst):
        gt = get_gt(i)
        frame = result.per_frame[i]
        pred = np.clip(resize_prediction(get_pred(i), gt.shape) * frame.scale,
                       result.protocol.min_depth, vmax)
        valid = (gt > result.protocol.min_depth) & (gt < vmax) & crop_mask(gt.shape, result.protocol.crop)
        error = np.where(valid, np.abs(pred - gt) / np.maximum(gt, 1e-6), np.nan)
        # Sparse lidar points are single pixels; grow them so they are visible at figure size.
        kernel = np.ones((3, 3), np.uint8)
        gt_show = np.where(cv2.dilate(valid.astype(np.uint8), kernel) > 0, cv2.dilate(gt, kernel), np.nan)
        error_show = cv2.dilate(np.nan_to_num(error), kernel)
        error_show[cv2.dilate(valid.astype(np.uint8), kernel) == 0] = np.nan
        row[0].imshow(get_image(i))
        row[1].imshow(gt_show, cmap="magma_r", vmin=0, vmax=vmax)
        row[2].imshow(pred, cmap="magma_r", vmin=0, vmax=vmax)
        row[3].imshow(error_show, cmap="inferno", vmin=0, vmax=0.5)
        row[0].set_ylabel(f"#{i}\nabs_rel {frame.metrics['abs_rel']:.3f}", fontsize=8)
        for ax, title in zip(row, ("image", "ground truth", "prediction", "|error| / gt (0-0.5)")):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{title} — {result.frames[i]}" if title == "image" else title, fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return out
