"""One compressed file holding every ground-truth depth map of a split.

Projecting the velodyne scans of a whole split (697 for Eigen) is most of the work of an
evaluation; reading the maps back from this file is not. Maps are stored sparsely (flat pixel
index + depth per valid pixel), so velodyne ground truth compresses to a few percent of its dense
size, and the file is a plain .npz that loads without pickle.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depthda.data.kitti import GT_KINDS, KittiFrame, check_files, load_ground_truth, required_files
from depthda.errors import DepthdaError
from depthda.utils.fsio import atomic_path
from depthda.utils.memory import check_fits
from depthda.utils.outputs import check_outputs

FORMAT = "depthda-gt-v1"
MAX_SIDE = 10_000  # pixels: KITTI frames are 375x1242


def export_ground_truth(frames: list[KittiFrame], root: str | Path, gt: str, out: str | Path,
                        progress: bool = True) -> Path:
    root, out = Path(root), Path(out)
    check_outputs(trees=[root], files=[out])
    check_files([required_files(f, root, gt) for f in frames], f"{gt} ground-truth")
    shapes, offsets, indices, depths = [], [0], [], []
    for frame in tqdm(frames, desc=f"export {gt} gt", unit="frame", disable=None if progress else True):
        depth = load_ground_truth(frame, root, gt)
        flat = depth.ravel()
        valid = np.flatnonzero(flat > 0)
        shapes.append(depth.shape)
        indices.append(valid.astype(np.uint32))
        depths.append(flat[valid].astype(np.float32))
        offsets.append(offsets[-1] + len(valid))
    meta = {"format": FORMAT, "gt": gt, "frames": [str(f) for f in frames]}
    with atomic_path(out, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                meta=np.array(json.dumps(meta)),
                shapes=np.array(shapes, dtype=np.int32).reshape(-1, 2),
                offsets=np.array(offsets, dtype=np.int64),
                indices=np.concatenate(indices) if indices else np.zeros(0, np.uint32),
                depths=np.concatenate(depths) if depths else np.zeros(0, np.float32),
            )
    return out


class GroundTruthFile:
    """Read access to an exported ground-truth file, frame by frame."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DepthdaError(f"ground-truth file not found: {self.path}")
        try:
            with zipfile.ZipFile(self.path) as archive:  # its arrays are read whole: they must fit
                check_fits(sum(info.file_size for info in archive.infolist()), f"reading {self.path}")
            data = np.load(self.path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with data:
                self.meta = json.loads(str(data["meta"]))
                self._shapes = data["shapes"]
                self._offsets = data["offsets"]
                self._indices = data["indices"]
                self._depths = data["depths"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DepthdaError(f"not a depthda ground-truth file ({exc}): {self.path}") from exc
        if not isinstance(self.meta, dict) or self.meta.get("format") != FORMAT:
            found = self.meta.get("format") if isinstance(self.meta, dict) else None
            raise DepthdaError(f"unknown ground-truth file format {found!r}: {self.path}")
        problem = self._problem()
        if problem:
            raise DepthdaError(f"malformed ground-truth file ({problem}): {self.path}")

    def _problem(self) -> str | None:
        """What is wrong with the arrays and metadata, checked once so that reading a frame cannot fail."""
        shapes, offsets, indices, depths = self._shapes, self._offsets, self._indices, self._depths
        frames, kind = self.meta.get("frames"), self.meta.get("gt")
        if kind not in GT_KINDS:
            return f"gt kind {kind!r} is not one of {', '.join(GT_KINDS)}"
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
            return "its metadata lists no frames"
        n = len(frames)
        if shapes.shape != (n, 2) or not np.issubdtype(shapes.dtype, np.integer):
            return f"shapes must be {n}x2 integers, got {shapes.shape} {shapes.dtype}"
        if (shapes <= 0).any() or (shapes > MAX_SIDE).any():
            return f"frame sizes must be 1 to {MAX_SIDE} pixels a side"
        if offsets.shape != (n + 1,) or not np.issubdtype(offsets.dtype, np.integer):
            return f"offsets must be {n + 1} integers, got {offsets.shape} {offsets.dtype}"
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer) or depths.ndim != 1 \
                or not np.issubdtype(depths.dtype, np.floating) or len(indices) != len(depths):
            return "indices and depths must be two 1-D arrays (integers, floats) of one length"
        if offsets[0] != 0 or offsets[-1] != len(indices) or (np.diff(offsets) < 0).any():
            return "offsets do not partition the pixels"
        if len(depths) == 0:
            return "it holds no ground truth"
        if not np.isfinite(depths).all() or (depths <= 0).any():
            return "depths must be finite and positive"
        pixels = np.repeat(shapes[:, 0].astype(np.int64) * shapes[:, 1], np.diff(offsets))
        if (indices.astype(np.int64) >= pixels).any() or (indices.astype(np.int64) < 0).any():
            return "pixel indices lie outside their frame"
        return None

    @property
    def frames(self) -> list[str]:
        return list(self.meta["frames"])

    @property
    def gt_kind(self) -> str:
        return self.meta["gt"]

    def __len__(self) -> int:
        return len(self._shapes)

    def __getitem__(self, i: int) -> np.ndarray:
        h, w = (int(x) for x in self._shapes[i])
        start, stop = self._offsets[i], self._offsets[i + 1]
        depth = np.zeros(h * w, dtype=np.float32)
        depth[self._indices[start:stop]] = self._depths[start:stop]
        return depth.reshape(h, w)

    def check_matches(self, frames: list[KittiFrame], gt: str | None = None) -> None:
        """The file must hold `frames` in order, and `gt` ground truth when a kind is asked for."""
        if gt is not None and self.gt_kind != gt:
            raise DepthdaError(f"{self.path} holds {self.gt_kind} ground truth, but --gt {gt} was asked for")
        names = [str(f) for f in frames]
        if names != self.frames:
            first = next((i for i, (a, b) in enumerate(zip(names, self.frames)) if a != b), min(len(names), len(self.frames)))
            raise DepthdaError(
                f"{self.path} was exported for another split ({len(self.frames)} frames vs {len(names)}; "
                f"first difference at line {first + 1})")
