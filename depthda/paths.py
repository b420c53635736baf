"""The one place that knows where the shipped model, sample clip and split lists live.

A wheel carries them inside the package, in depthda/_shipped/ (pyproject's force-include copies
them there from the repo's top-level checkpoints/ and data/, which stay their source). A source
checkout or an editable install has no _shipped/ and reads them from the repo itself.
"""

from __future__ import annotations

from pathlib import Path

from depthda.errors import DepthdaError

_PACKAGE = Path(__file__).resolve().parent
_PACKAGED = _PACKAGE / "_shipped"
_REPO = _PACKAGE.parent


def shipped(relative: str) -> Path:
    """A shipped file or folder by its path in the repo, e.g. "checkpoints/default"."""
    for root in (_PACKAGED, _REPO):
        path = root / relative
        if path.exists():
            return path
    raise DepthdaError(f"{relative} is not part of this installation of depthda "
                       f"(looked in {_PACKAGED} and {_REPO}); reinstall depthda")


def default_checkpoint() -> Path:
    """The default pipeline (style/ + depth/), trained by depthda; see its MODEL_CARD.md."""
    return shipped("checkpoints/default")


def sample_video() -> Path:
    """3 s of real dash-cam footage (960×540, 25 fps), the default input of `depthda bench`."""
    return shipped("data/samples/dashcam_3s.mp4")


SPLIT_NAMES = ("eigen", "eigen_benchmark")


def split_file(name: str) -> Path:
    """A shipped KITTI split list: `eigen` (697 frames) or `eigen_benchmark` (652)."""
    if name not in SPLIT_NAMES:
        raise DepthdaError(f"unknown split {name!r} (use eigen or eigen_benchmark, or --split-file)")
    return shipped(f"data/splits/{name}_test_files.txt")
