"""Synthetic training frames sent through a style run's two generators and back, g_ab(g_ba(x)),
with their depth unchanged.

At inference the depth network reads g_ab's output, whose artefacts (streaks, blotches, a pale
sky) it never saw in clean renders; round-tripped renders carry the same kind of artefacts with
exact depth. This is T2Net's idea (train on synthetic frames made to look real) turned round for
the paper's real -> synthetic inference direction. The output is a SYNTHIA root of the same
layout and file names as the source, so `merge_synth.sh` and `train-stage1 --data-root` take it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from depthda.data.synthia import INTRINSICS_FILE, LAYOUT_DIRS, detect_layout, list_pairs
from depthda.errors import DepthdaError
from depthda.models import build_model
from depthda.models.weights import load_exported, load_state_into
from depthda.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from depthda.utils.fsio import atomic_dir
from depthda.utils.outputs import check_outputs, check_overwrite, files_under

MANIFEST = "round_trip.json"


def load_generators(run: str | Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(g_ab, g_ba) of a `train-stage2` run folder: g_ab is the exported generator inference uses,
    g_ba comes from the run's checkpoint (an exported style folder alone does not hold it)."""
    run = Path(run)
    g_ab, config = load_exported(run)
    if config.get("kind") != "style":
        raise DepthdaError(f"{run} is not a style run (its config.json says kind {config.get('kind')!r})")
    if not (run / CHECKPOINT_NAME).is_file():
        raise DepthdaError(f"{run} has no {CHECKPOINT_NAME}: the round trip needs the run's second generator "
                           "(g_ba), which only a train-stage2 run folder holds")
    g_ba = build_model(config)  # the same architecture; its weights come from the checkpoint
    task = load_checkpoint(run / CHECKPOINT_NAME).get("task", {})
    if "g_ba" not in task:
        raise DepthdaError(f"{run / CHECKPOINT_NAME} holds no g_ba: not a train-stage2 checkpoint")
    load_state_into(g_ba, task["g_ba"], str(run / CHECKPOINT_NAME))
    return g_ab.eval(), g_ba.eval()


@torch.no_grad()
def round_trip(g_ab: torch.nn.Module, g_ba: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB -> g_ab(g_ba(rgb)) as H×W×3 uint8; the frame is padded to the generators'
    stride by repeating its edge, and the padding cut off again."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1
    stride = g_ab.stride
    x = F.pad(x, (0, (-w) % stride, 0, (-h) % stride), mode="replicate")
    y = g_ab(g_ba(x))[0, :, :h, :w]
    return ((y.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # depth is unchanged: a hard link costs no space
    except OSError:
        shutil.copyfile(src, dst)


def _check_out(src: Path, style: Path, out: Path, overwrite: bool) -> None:
    check_outputs(reads=files_under(style), trees=[src], folders=[out])
    dirs = {d for pair in LAYOUT_DIRS.values() for d in pair}
    check_overwrite(out, overwrite, "depthda data round-trip", MANIFEST, lambda f: (f / MANIFEST).is_file(),
                    lambda rel: str(rel) in (MANIFEST, INTRINSICS_FILE) or (rel.suffix == ".png" and rel.parent in dirs))


def round_trip_synthia(src: str | Path, style: str | Path, out: str | Path, every: int = 1,
                       overwrite: bool = False, progress: bool = False) -> dict:
    """Write every `every`-th frame of the SYNTHIA root `src` to `out`, its RGB round-tripped through
    the style run `style`, its depth and intrinsics as they are. Returns a summary."""
    from tqdm import tqdm

    src, style, out = Path(src), Path(style), Path(out)
    if int(every) < 1:
        raise DepthdaError(f"--every must be at least 1, got {every}")
    layout = detect_layout(src)
    pairs = list_pairs(src)[::int(every)]
    _check_out(src, style, out, overwrite)
    g_ab, g_ba = load_generators(style)
    rgb_dir, depth_dir = LAYOUT_DIRS[layout]
    with atomic_dir(out) as tmp:
        (tmp / rgb_dir).mkdir(parents=True)
        (tmp / depth_dir).mkdir(parents=True)
        for rgb_path, depth_path in tqdm(pairs, desc="round trip", unit="frame", disable=None if progress else True):
            rgb = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR)
            if rgb is None:
                raise DepthdaError(f"cannot read {rgb_path}")
            back = round_trip(g_ab, g_ba, rgb[:, :, ::-1])
            if not cv2.imwrite(str(tmp / rgb_dir / rgb_path.name), back[:, :, ::-1]):
                raise DepthdaError(f"could not write {out / rgb_dir / rgb_path.name}")
            _link_or_copy(depth_path, tmp / depth_dir / depth_path.name)
        if (src / INTRINSICS_FILE).is_file():
            shutil.copyfile(src / INTRINSICS_FILE, tmp / INTRINSICS_FILE)
        manifest = {"source": str(src.resolve()), "style": str(style.resolve()), "every": int(every),
                    "frames": len(pairs), "rgb": "g_ab(g_ba(source RGB))", "depth": "the source's, unchanged"}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return {"out": str(out), "frames": len(pairs), "layout": layout}
