"""eval kitti --checkpoint gives depth in metres for each frame's own camera (P_rect_02's focal
length), not the training camera's, unless --focal says otherwise."""

import json
from pathlib import Path

import numpy as np
import pytest

from depthda.cli import run
from depthda.data.kitti import read_split
from depthda.eval.kitti import calibrated_focals
from depthda.eval.metrics import METRIC_NAMES
from depthda.infer.pipeline import DepthPipeline
from depthda.models.random_pipeline import init_checkpoint
from depthda.utils.images import read_rgb

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data" / "kitti" / "raw"
SPLIT = REPO / "data" / "splits" / "kitti_tiny_test_files.txt"


def test_focals_come_from_each_drives_calibration():
    frames = read_split(SPLIT)
    assert calibrated_focals(frames, RAW) == [721.5377] * len(frames)
    assert calibrated_focals(frames, REPO / "no-such-root") == [None] * len(frames)


@pytest.mark.slow
def test_a_model_from_another_camera_is_rescaled_to_the_frame_camera(tmp_path):
    ckpt = init_checkpoint(tmp_path / "ckpt", size=(64, 192), seed=5)
    config_path = ckpt / "depth" / "config.json"
    config = json.loads(config_path.read_text())
    config["focal_px"] *= 0.7  # as if trained on a wider-angle camera (SYNTHIA vs KITTI)
    config_path.write_text(json.dumps(config))
    frames = read_split(SPLIT)
    pipe = DepthPipeline.from_checkpoint(ckpt, device="cpu")
    expected = np.stack([pipe(read_rgb(f.image_path(RAW)), focal_px=721.5377) for f in frames])
    np.save(tmp_path / "calibrated.npy", expected)
    common = ["eval", "kitti", "--data-root", str(RAW), "--split-file", str(SPLIT), "--gt", "annotated"]
    assert run(common + ["--checkpoint", str(ckpt), "--device", "cpu", "--json", str(tmp_path / "a.json")]) == 0
    assert run(common + ["--predictions", str(tmp_path / "calibrated.npy"), "--json", str(tmp_path / "b.json")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert all(abs(a[k] - b[k]) <= 1e-4 * max(1.0, abs(b[k])) for k in METRIC_NAMES)
    # --focal overrides the calibration: here the training camera's own focal, i.e. no rescaling
    own = config["focal_px"] * 1242 / 192
    assert run(common + ["--checkpoint", str(ckpt), "--device", "cpu", "--focal", str(own),
                         "--json", str(tmp_path / "c.json")]) == 0
    c = json.loads((tmp_path / "c.json").read_text())
    assert abs(c["abs_rel"] - a["abs_rel"]) > 1e-3
