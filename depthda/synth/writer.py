"""Write rendered streets as a SYNTHIA-RAND-CITYSCAPES-format dataset.

<out>/RGB/0000000.png, <out>/Depth/Depth/0000000.png (16-bit, 3 equal channels, centimetres)
and <out>/intrinsics.json. Image i is rendered from seed `image_seed(seed, i)`, so any single
image can be reproduced without rendering the others. The dataset is built in a temporary
folder beside <out> and renamed at the end: an interrupted run never leaves a partial dataset.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from typing import TYPE_CHECKING

from tqdm import tqdm

from depthda.data.synthia import INTRINSICS_FILE, RAND_DEPTH_DIR, RAND_RGB_DIR, write_synthia_sample
from depthda.errors import DepthdaError
from depthda.synth.camera import ANGLE_JITTER_DEG, HEIGHT_RANGE_M, YAW_JITTER_DEG, Camera
from depthda.synth.scene import PROFILES
from depthda.utils.fsio import atomic_dir, write_text_atomic
from depthda.utils.memory import check_fits
from depthda.utils.outputs import check_outputs, check_overwrite

if TYPE_CHECKING:
    import torch

GENERATOR_NAME = "depthda.synth"
GENERATOR_VERSION = "1"  # bump whenever the same seed renders a different image
MIN_SIDE = 16
MAX_COUNT = 10_000_000  # images of one dataset: ten times SYNTHIA's largest set is already a typo's size
# Peak memory of rendering one image grows by this much per pixel (the ray caster's per-pixel
# buffers); docs/robustness.md gives the measurement.
RENDER_BYTES_PER_PIXEL = 350
_SEED_STRIDE = 1_000_003  # prime, larger than any sensible count: datasets with different seeds never share images


def image_seed(seed: int, index: int) -> int:
    return int(seed) * _SEED_STRIDE + int(index)


def check_output(out: Path, overwrite: bool) -> None:
    check_outputs(folders=[out])
    check_overwrite(out, overwrite, "depthda synth", INTRINSICS_FILE, _is_synth,
                    lambda rel: str(rel) == INTRINSICS_FILE
                    or (rel.suffix == ".png" and rel.parent in (RAND_RGB_DIR, RAND_DEPTH_DIR)))


def _is_synth(folder: Path) -> bool:
    try:
        return json.loads((folder / INTRINSICS_FILE).read_text())["generator"]["name"] == GENERATOR_NAME
    except (OSError, ValueError, KeyError, TypeError):
        return False


def synthesize(out: str | Path, count: int, size: tuple[int, int] = (192, 640), seed: int = 0,
               overwrite: bool = False, camera: Camera | None = None, device: str | torch.device | None = None,
               progress: bool = True, profile: str = "street") -> dict:
    """Render `count` streets into `out`; returns a summary including the measured images/s."""
    out = Path(out)
    if not 1 <= int(count) <= MAX_COUNT:
        raise DepthdaError(f"--count must be a number of images from 1 to {MAX_COUNT:,} (got {count})")
    if profile not in PROFILES:
        raise DepthdaError(f"unknown --profile {profile!r} (use {', '.join(PROFILES)})")
    height, width = (int(s) for s in size)
    if height < MIN_SIDE or width < MIN_SIDE:
        raise DepthdaError(f"size {height}x{width} is too small: each side needs at least {MIN_SIDE} px")
    check_output(out, overwrite)
    check_fits(height * width * RENDER_BYTES_PER_PIXEL, f"rendering {height}x{width} images")
    import torch  # after the checks: a bad run is refused without waiting for torch's import

    from depthda.synth.render import SKY_DEPTH_M, render_scene
    from depthda.utils.device import pick_device

    dev = device if isinstance(device, torch.device) else pick_device(device or "auto")
    camera = camera or Camera()

    start = time.perf_counter()
    with atomic_dir(out) as tmp:
        for i in tqdm(range(count), desc="synth", unit="img", disable=None if progress else True,
                      dynamic_ncols=True):
            rgb, depth = render_scene(image_seed(seed, i), (height, width), camera, dev, profile)
            write_synthia_sample(tmp, i, rgb, depth, layout="rand")
        fx, fy, cx, cy = camera.intrinsics(height, width)
        meta = {
            "fx": fx, "fy": fy, "cx": cx, "cy": cy, "width": width, "height": height,
            "pixel_centre": "pixel (u, v) samples image point (u + 0.5, v + 0.5)",
            "camera_height_m": camera.height_m,
            "camera_height_range_m": [round(camera.height_m + h - 1.65, 6) for h in HEIGHT_RANGE_M],
            "pitch_roll_jitter_deg": ANGLE_JITTER_DEG, "yaw_jitter_deg": YAW_JITTER_DEG,
            "hfov_deg": camera.hfov_deg,
            "depth": "camera-frame z in centimetres, 16-bit PNG, 3 equal channels",
            "sky_depth_m": SKY_DEPTH_M,
            "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION},
            "seed": int(seed), "count": int(count), "profile": profile,
            "image_seed": f"seed * {_SEED_STRIDE} + index",
            "layout": "SYNTHIA-RAND-CITYSCAPES",
        }
        write_text_atomic(tmp / "intrinsics.json", json.dumps(meta, indent=2) + "\n")
    seconds = time.perf_counter() - start
    return {"out": str(out), "count": int(count), "size": [height, width], "seed": int(seed), "device": str(dev),
            "seconds": seconds, "images_per_s": count / seconds if seconds > 0 else float("inf")}
