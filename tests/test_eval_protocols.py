"""The two published KITTI conventions by name, each checked against an independent, plain
implementation of that convention (written from its definition, as monodepth2 applies it)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from depthda.cli import run
from depthda.data.kitti import read_annotated_depth
from depthda.errors import DepthdaError
from depthda.eval.metrics import METRIC_NAMES
from depthda.eval.protocol import evaluate, named_protocol

RAW = Path(__file__).resolve().parents[1] / "data" / "kitti" / "raw" / "2011_09_26" / "2011_09_26_drive_0023_sync"


def reference(gt, pred, name, median):
    h, w = gt.shape
    pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    if name == "garg":
        mask = (gt > 1e-3) & (gt < 80)
        t, b, l, r = (np.array([0.40810811 * h, 0.99189189 * h, 0.03594771 * w, 0.96405229 * w])).astype(int)
        crop = np.zeros_like(mask)
        crop[t:b, l:r] = True
        mask &= crop
    else:  # eigen-benchmark: every annotated pixel, no crop
        mask = gt > 0
    g, p = gt[mask].astype(np.float64), pred[mask]
    if median:
        p = p * np.median(g) / np.median(p)
    p = np.clip(p, 1e-3, 80)
    ratio = np.maximum(g / p, p / g)
    return {"abs_rel": np.mean(np.abs(g - p) / g), "sq_rel": np.mean((g - p) ** 2 / g),
            "rmse": np.sqrt(np.mean((g - p) ** 2)), "rmse_log": np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)),
            "a1": np.mean(ratio < 1.25), "a2": np.mean(ratio < 1.25 ** 2), "a3": np.mean(ratio < 1.25 ** 3)}


@pytest.fixture(scope="module")
def frames():
    """Real annotated ground truth, stretched so that part of it lies beyond 80 m (where the two
    conventions differ), and smooth predictions at a lower resolution."""
    rng = np.random.default_rng(0)
    gts, preds = [], []
    for i in range(4):
        gt = read_annotated_depth(RAW / "proj_depth" / "groundtruth" / "image_02" / f"{i:010d}.png") * 1.3
        h, w = gt.shape
        field = cv2.resize(rng.random((6, 20)).astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_CUBIC)
        rows = np.linspace(60, 6, h // 2, dtype=np.float32)[:, None]
        gts.append(gt.astype(np.float32))
        preds.append((rows * (0.8 + 0.4 * field)).astype(np.float32))
    assert max(float(g.max()) for g in gts) > 80
    return gts, preds


@pytest.mark.parametrize("name", ["garg", "eigen-benchmark"])
@pytest.mark.parametrize("median", [False, True])
def test_each_protocol_matches_an_independent_implementation(frames, name, median):
    gts, preds = frames
    protocol = named_protocol(name, scaling="median" if median else "none")
    got = evaluate([str(i) for i in range(len(gts))], gts, preds, protocol).metrics
    per_frame = [reference(g, p, name, median) for g, p in zip(gts, preds)]
    for metric in METRIC_NAMES:
        want = float(np.mean([f[metric] for f in per_frame]))
        assert got[metric] == pytest.approx(want, rel=1e-6, abs=1e-9), metric


def test_the_conventions_differ_where_ground_truth_is_beyond_range(frames):
    gts, preds = frames
    names = [str(i) for i in range(len(gts))]
    garg = evaluate(names, gts, preds, named_protocol("garg")).metrics
    bench = evaluate(names, gts, preds, named_protocol("eigen-benchmark")).metrics
    assert abs(garg["abs_rel"] - bench["abs_rel"]) > 1e-3


def test_protocol_is_chosen_by_name_and_recorded(tmp_path):
    import json

    split = Path(__file__).resolve().parents[1] / "data" / "splits" / "kitti_tiny_test_files.txt"
    args = ["eval", "kitti", "--data-root", str(RAW.parents[1]), "--split-file", str(split), "--gt", "annotated",
            "--baseline", "ground-plane"]
    assert run(args + ["--protocol", "eigen-benchmark", "--json", str(tmp_path / "b.json")]) == 0
    recorded = json.loads((tmp_path / "b.json").read_text())["protocol"]
    assert recorded["name"] == "eigen-benchmark" and recorded["crop"] == "none" and not recorded["gt_in_range_only"]
    assert run(args + ["--json", str(tmp_path / "g.json")]) == 0
    assert json.loads((tmp_path / "g.json").read_text())["protocol"]["name"] == "garg"
    with pytest.raises(DepthdaError):
        named_protocol("monodepth3")
