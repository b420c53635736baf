"""The bench's baseline: frame by frame, as the paper's public inference script works.

cv2 decode; resize (under the depth model's resize policy, depthda.infer.pipeline.working_geometry)
and pad with cv2/numpy; normalise to [-1, 1]; style and depth networks called
separately in eager fp32 (NCHW, as loaded); metres resized back with cv2; colour by matplotlib's
colormap call per frame; cv2.VideoWriter 'mp4v'. Nothing overlaps: each stage's time is its own.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from depthda.data.augment import resize_to
from depthda.infer.colorize import colorize_reference
from depthda.infer.pipeline import padding_multiple, working_geometry
from depthda.models.depth_param import DepthParam
from depthda.models.normalize import rgb_to_tensor
from depthda.models.weights import load_exported

STAGES = ("decode", "preprocess", "style", "depth", "colorize", "encode")


def naive_run(video: Path, n_frames: int, style_dir: Path | None, depth_dir: Path, out_path: Path,
              near: float, far: float, cmap: str) -> tuple[dict, list[np.ndarray]]:
    """The frame-by-frame baseline; returns stage seconds and full-resolution depth per frame."""
    depth_net, depth_cfg = load_exported(depth_dir, "cpu")
    style_net = load_exported(style_dir, "cpu")[0] if style_dir is not None else None
    param = DepthParam.from_dict(depth_cfg["depth_param"])
    m = padding_multiple(depth_net)
    times = dict.fromkeys(STAGES, 0.0)
    depths = []
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    try:
        for _ in range(n_frames):
            t0 = time.perf_counter()
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            h, w = rgb.shape[:2]
            hn, wn, hp, wp = working_geometry(depth_cfg, m, h, w)
            x = resize_to(rgb, (hn, wn))
            x = np.pad(x, ((0, hp - hn), (0, wp - wn), (0, 0)), mode="edge")
            x = rgb_to_tensor(x)[None].contiguous()
            t2 = time.perf_counter()
            with torch.no_grad():
                if style_net is not None:
                    x = style_net(x)
                t3 = time.perf_counter()
                out = depth_net(x)
            d = param.decode(out)[0, 0, :hn, :wn].numpy()
            d = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)
            t4 = time.perf_counter()
            colour = colorize_reference(d, near, far, cmap)
            t5 = time.perf_counter()
            if writer is None:
                writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            writer.write(cv2.cvtColor(colour, cv2.COLOR_RGB2BGR))
            t6 = time.perf_counter()
            depths.append(d)
            for k, a, b in zip(STAGES, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
                times[k] += b - a
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return times, depths
