"""The row-prior probe: 0 when depth moves with the scene, 1 when it stays with the image row."""

import subprocess
import sys

import numpy as np
import pytest

from depthda.eval.row_prior import frame_row_prior, row_prior
from depthda.utils.images import read_rgb

FRAME = "data/kitti/raw/2011_09_26/2011_09_26_drive_0023_sync/image_02/data/0000000000.png"


def scene_follower(rgb):
    """Depth read off the content: a function of each pixel's colour, wherever it stands."""
    return 1.0 + rgb.astype(np.float64).sum(axis=2)


def row_follower(rgb):
    """Depth read off the row alone: near at the bottom, far at the top, whatever stands there."""
    h, w = rgb.shape[:2]
    return np.repeat(80.0 / (1.0 + np.arange(h, dtype=np.float64))[:, None], w, axis=1)


def test_scene_and_row_predictors_score_the_ends():
    frame = read_rgb(FRAME)
    assert frame_row_prior(scene_follower, frame) < 0.02
    assert frame_row_prior(row_follower, frame) > 0.98
    mixed = lambda rgb: np.sqrt(scene_follower(rgb) * row_follower(rgb))  # noqa: E731
    assert 0.2 < frame_row_prior(mixed, frame) < 0.8
    assert row_prior(scene_follower, [frame, frame[:, ::-1]]).mean < 0.02


def test_shift_must_leave_an_overlap():
    with pytest.raises(ValueError, match="shift"):
        frame_row_prior(scene_follower, read_rgb(FRAME), shift=0.5)


@pytest.mark.slow
def test_cli_on_the_shipped_model():
    out = subprocess.run([sys.executable, "-m", "depthda", "eval", "row-prior", FRAME, "--no-style"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    value = float(out.stdout.split("row prior:")[1].split()[0])
    assert 0.0 <= value <= 1.0
    bad = subprocess.run([sys.executable, "-m", "depthda", "eval", "row-prior", FRAME, "--shift", "0.7"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "--shift" in bad.stderr
