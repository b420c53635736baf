"""The network-free style distance, on real KITTI and dash-cam frames and flat synthetic renders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from depthda.data.unpaired import random_resize_crop, read_video_frames, to_tensor
from depthda.train.style_distance import format_report, style_distance, translation_report
from depthda.utils.images import read_rgb

# Style distances of whole image sets (the quick loop leaves them out; CI runs them).
pytestmark = pytest.mark.slow

SIZE = (128, 416)


def crops(images: list[np.ndarray]) -> torch.Tensor:
    return torch.stack([to_tensor(random_resize_crop(im, SIZE, None, augment=False)) for im in images])


def flat_render(seed: int, h: int = 375, w: int = 1242) -> np.ndarray:
    """Synthetic-looking frame: gradient sky, uniform road, flat-coloured boxes, one lane line."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    horizon = int(h * rng.uniform(0.35, 0.5))
    img[:horizon] = (np.array([110, 160, 230]) * np.linspace(0.7, 1.0, horizon)[:, None]).astype(np.uint8)[:, None]
    img[horizon:] = rng.integers(70, 110)
    for _ in range(8):
        x0, bw = int(rng.integers(0, w - 100)), int(rng.integers(40, 200))
        top, bottom = int(rng.integers(horizon - 150, horizon)), int(rng.integers(horizon + 10, h))
        img[max(0, top):bottom, x0:x0 + bw] = rng.integers(30, 230, 3)
    return img


@pytest.fixture(scope="module")
def kitti(repo_data) -> torch.Tensor:
    """The 7 real KITTI frames (left camera) of the shipped drive."""
    drive = repo_data / "kitti" / "raw" / "2011_09_26" / "2011_09_26_drive_0023_sync"
    paths = sorted((drive / "image_02" / "data").glob("*.png"))
    assert len(paths) == 7
    return crops([read_rgb(p) for p in paths])


@pytest.fixture(scope="module")
def dashcam(repo_data) -> torch.Tensor:
    # 11 frames: every 7th of the 75-frame clip.
    return crops(read_video_frames(repo_data / "samples" / "dashcam_3s.mp4", max_frames=12, size=SIZE))


@pytest.fixture(scope="module")
def synthetic() -> torch.Tensor:
    return crops([flat_render(i) for i in range(10)])


def test_zero_for_identical_and_symmetric(kitti, synthetic):
    assert style_distance(kitti, kitti.clone()) == {"colour": 0.0, "patch": 0.0, "total": 0.0}
    # A reordered set has the same statistics.
    assert style_distance(kitti, kitti.flip(0))["total"] < 1e-6
    ab, ba = style_distance(kitti, synthetic), style_distance(synthetic, kitti)
    for key in ("colour", "patch", "total"):
        assert ab[key] == pytest.approx(ba[key], rel=1e-9, abs=1e-12)
    assert ab["total"] == pytest.approx(ab["colour"] + ab["patch"])


def test_grows_with_colour_shift(kitti):
    totals = []
    for shift in (0.0, 0.05, 0.1, 0.2, 0.4):
        shifted = (kitti + torch.tensor([shift, 0.0, -shift]).view(1, 3, 1, 1)).clamp(-1, 1)
        d = style_distance(kitti, shifted)
        totals.append(d["total"])
        assert d["colour"] > 0 or shift == 0
    assert totals[0] == 0 and all(a < b for a, b in zip(totals, totals[1:]))


def test_sees_texture_not_only_colour(kitti):
    # Blurring keeps the colours but flattens texture, the way renders differ from camera frames.
    blurred = torch.nn.functional.avg_pool2d(kitti, 5, 1, 2, count_include_pad=False)
    d = style_distance(kitti, blurred)
    assert d["patch"] > 5 * d["colour"] and d["patch"] > 0.1


def test_small_within_a_set_large_between_sets(kitti, dashcam, synthetic):
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(kitti), generator=g)
    within_kitti = style_distance(kitti[perm[:4]], kitti[perm[4:]])["total"]
    within_dashcam = style_distance(dashcam[0::2], dashcam[1::2])["total"]
    within_synthetic = style_distance(synthetic[:5], synthetic[5:])["total"]
    kitti_synthetic = style_distance(kitti, synthetic)["total"]
    dashcam_kitti = style_distance(dashcam, kitti)["total"]
    for within in (within_kitti, within_dashcam, within_synthetic):
        assert within < 0.25 * min(kitti_synthetic, dashcam_kitti)


def test_translation_report(kitti, synthetic):
    # A crude "translation": match each channel's mean and std to the synthetic set.
    mu_k, sd_k = kitti.mean((0, 2, 3), keepdim=True), kitti.std((0, 2, 3), keepdim=True)
    mu_s, sd_s = synthetic.mean((0, 2, 3), keepdim=True), synthetic.std((0, 2, 3), keepdim=True)
    translated = ((kitti - mu_k) / sd_k * sd_s + mu_s).clamp(-1, 1)
    report = translation_report(kitti, translated, synthetic)
    assert report["ratio"] < 0.9
    assert report["ratio"] == pytest.approx(report["translated"]["total"] / report["untranslated"]["total"])
    text = format_report(report)
    assert text.startswith("style distance to synthetic: untranslated ") and "% closer)" in text
    assert f"{report['untranslated']['total']:.3f} -> translated {report['translated']['total']:.3f}" in text
    worse = translation_report(translated, kitti, synthetic)
    assert worse["ratio"] > 1 and "% farther)" in format_report(worse)
    assert math.isinf(translation_report(synthetic, kitti, synthetic)["ratio"])


def flops(a: torch.Tensor, b: torch.Tensor) -> int:
    """Floating-point operations of the convolutions and matrix products in style_distance(a, b)."""
    with FlopCounterMode(display=False) as counter:
        style_distance(a, b)
    return counter.get_total_flops()


def test_cheap_and_checks_shapes():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(16, 3, *SIZE, generator=g) * 2 - 1, torch.rand(16, 3, *SIZE, generator=g) * 2 - 1
    # The work, counted rather than timed (times depend on the machine and what else runs): a few
    # dozen FLOPs per input value (today about 23), and linear in the pixels: twice the height and
    # width is 4× the pixels, ~4× the work (a per-patch-pair comparison would be 16×).
    per_value = flops(a, b) / (a.numel() + b.numel())
    assert 0 < per_value < 40, per_value
    big = torch.nn.functional.interpolate(a[:4], scale_factor=2, mode="nearest")
    assert flops(big, big.flip(0)) < 4.5 * flops(a[:4], a[:4].flip(0))
    # Different batch sizes and resolutions are fine: each set is summarised on its own.
    assert style_distance(a[:3], b[:5, :, :96, :200])["total"] > 0
    with pytest.raises(ValueError, match="B×3×H×W"):
        style_distance(a[:, :1], b)
    with pytest.raises(ValueError, match="at least"):
        style_distance(a[:, :, :8, :8], b)
