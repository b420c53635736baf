"""Tiny SYNTHIA-format datasets written in the exact on-disk format, and the command lines of
small, fast training runs, for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthda.data.synthia import write_synthia_sample


def make_synthia(root: Path, count: int = 12, size=(64, 192), seed: int = 0) -> Path:
    """Scenes whose depth is a learnable function of the image: a ground plane plus a box whose
    colour encodes its distance, so a small network can drive L1 down within a few dozen steps."""
    rng = np.random.default_rng(seed)
    h, w = size
    v = np.arange(h)[:, None] + 0.5
    for i in range(count):
        horizon = h * 0.45
        depth = np.where(v > horizon + 1, 1.6 * 80 / np.maximum(v - horizon, 1e-3), 80.0) * np.ones((1, w))
        depth = np.minimum(depth, 80.0)
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[:, :, 2] = np.where(v > horizon + 1, 60, 200).astype(np.uint8)   # road dark, sky bright blue
        rgb[:, :, 1] = np.clip(255 - depth * 3, 0, 255).astype(np.uint8)       # brightness falls with distance
        x0 = rng.integers(0, w - 40)
        z = rng.uniform(4, 30)
        depth[int(h * 0.2):int(h * 0.8), x0:x0 + 40] = z
        rgb[int(h * 0.2):int(h * 0.8), x0:x0 + 40, 0] = np.uint8(255 - z * 7)
        write_synthia_sample(root, i, rgb, depth)
    return root


def depth_args(data, out, steps, *extra) -> list[str]:
    """`depthda train-stage1` on a tiny SYNTHIA folder: small networks, batch 2, no loader processes."""
    return ["train-stage1", "--data-root", str(data), "--out", str(out), "--steps", str(steps),
            "--batch-size", "2", "--size", "64x192", "--preset", "small", "--num-workers", "0",
            "--checkpoint-every", "100", "--val-every", "100", "--no-progress", *extra]


def style_args(real, synthetic, out, steps, *extra) -> list[str]:
    """`depthda train-stage2` between folders/videos of real frames and synthetic ones, as small as depth_args."""
    real_args = [a for r in real for a in ("--real", str(r))]
    return ["train-stage2", *real_args, "--synthetic", str(synthetic), "--out", str(out), "--steps", str(steps),
            "--batch-size", "1", "--size", "64x192", "--preset", "small", "--num-workers", "0",
            "--checkpoint-every", "100", "--val-every", "100", "--no-progress", *extra]
