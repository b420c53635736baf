"""SynthiaDataset: SYNTHIA pairs as torch training items (the layout and the file formats are
depthda.data.synthia's, which loads this module on first use of the class)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from depthda.data.augment import augment_pair, to_tensor
from depthda.data.synthia import (DEFAULT_MAX_DEPTH, DEFAULT_SIZE, SPLITS, check_depth_files, check_prepared,
                                  depth_cm_to_m, detect_layout, list_pairs, read_depth_cm, read_intrinsics,
                                  read_synthia_rgb, split_pairs)
from depthda.errors import DepthdaError


class SynthiaDataset(Dataset):
    """SYNTHIA (RGB, metric depth) pairs for supervised stage-1 training.

    Items: {"rgb": float32 3×H×W in [-1, 1], "depth": float32 1×H×W metres (0 = invalid),
    "name": file stem, "focal_px": float32 focal length of this crop in pixels}.
    `view` "crop": training items are randomly zoomed/cropped/flipped/colour-jittered
    (depthda.data.augment); "val" items — and any split with augment=False — are resized to cover
    `size` and centre-cropped. `view` "whole": every item is the whole frame resized to `size`
    (training items then flipped and jittered as with crops).

    Randomness is a pure function of (seed, epoch, index), so a resumed run that calls
    `set_epoch(e)` and replays the sampler's order sees exactly the same samples, whatever the
    number of DataLoader workers. The epoch is a plain per-process attribute: a wrapper may call
    `set_epoch` inside workers per item without racing other workers (depthda.train.sampler's
    StreamDataset does); set from the main process it reaches workers started afterwards, i.e.
    not persistent_workers=True ones. Holds only paths and numbers: picklable for workers.
    """

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = DEFAULT_SIZE,
                 augment: bool = True, max_depth: float | None = DEFAULT_MAX_DEPTH,
                 val_fraction: float = 0.05, seed: int = 0, view: str = "crop"):
        if split not in SPLITS:
            raise DepthdaError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
            raise DepthdaError(f"size must be (height, width) in pixels, got {size}")
        if max_depth is not None and not max_depth > 0:
            raise DepthdaError(f"max_depth must be positive, got {max_depth}")
        if int(seed) < 0:
            raise DepthdaError(f"seed must be ≥ 0, got {seed}")
        self.root = Path(root)
        self.layout = detect_layout(self.root)
        all_pairs = list_pairs(self.root)
        train, val = split_pairs(all_pairs, val_fraction)
        self.pairs = {"train": train, "val": val, "all": all_pairs}[split]
        if not self.pairs:
            raise DepthdaError(f"the {split!r} split of {self.root} is empty ({len(all_pairs)} pairs, "
                               f"val_fraction {val_fraction})")
        check_depth_files([depth for _, depth in all_pairs])
        self.split = split
        self.size = (int(size[0]), int(size[1]))
        self.augment = bool(augment) and split != "val"
        self.max_depth = max_depth
        self.seed = int(seed)
        from depthda.data.augment import VIEWS
        if view not in VIEWS:
            raise DepthdaError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
        self.view = view
        check_prepared(self.root, self.size, self.view)
        self.focal_px, self.focal_width_px = read_intrinsics(self.root)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Select epoch `epoch`'s augmentations; call before iterating each epoch (and on resume)."""
        self.epoch = int(epoch)

    def focal_at(self, width_px: float) -> float:
        """Focal length in px once the full frame is resized to `width_px` wide.

        Pass the resized width *before* cropping: cropping does not change the focal length.
        """
        return self.focal_px * float(width_px) / self.focal_width_px

    def rng_for(self, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index)]))

    def __getitem__(self, index: int) -> dict:
        return self.item(index)

    def item(self, index: int, lap: Callable[[str], None] | None = None) -> dict:
        """`dataset[index]`; `lap(stage)` (if given) is called as each stage ends: "decode_rgb",
        "decode_depth", "augment" (resize, crop, flip, jitter), "to_tensor" (depthda bench data).

        Depth stays in the file's uint16 centimetres through the augmentation (which only picks
        depth pixels) and becomes metres on the crop alone: the same values as converting first.
        """
        lap = lap or _no_lap
        rgb_path, depth_path = self.pairs[index]
        rgb = read_synthia_rgb(rgb_path)
        lap("decode_rgb")
        depth_cm = read_depth_cm(depth_path)
        lap("decode_depth")
        if rgb.shape[:2] != depth_cm.shape:
            raise DepthdaError(f"RGB {rgb_path} is {rgb.shape[1]}×{rgb.shape[0]} but its depth "
                               f"{depth_path} is {depth_cm.shape[1]}×{depth_cm.shape[0]}")
        rng = self.rng_for(index) if self.augment else None
        full_width = rgb.shape[1]
        rgb, depth_cm, scale = augment_pair(rgb, depth_cm, self.size, rng, train=self.augment,
                                            view=self.view)
        lap("augment")
        item = {"rgb": to_tensor(rgb).contiguous(),
                "depth": torch.from_numpy(depth_cm_to_m(depth_cm, self.max_depth))[None],
                "name": rgb_path.stem,
                "focal_px": torch.tensor(self.focal_at(full_width * scale), dtype=torch.float32)}
        lap("to_tensor")
        return item


def _no_lap(stage: str) -> None:
    pass
