"""`eval kitti --breakdown`: the metrics over road-like and obstacle pixels, checked against an
independent implementation of the definition on real KITTI ground truth; the standard metrics
stay exactly as they are."""

import json
from pathlib import Path

import numpy as np
import pytest

from depthda.cli import run
from depthda.data.kitti import read_annotated_depth
from depthda.eval.breakdown import FlatRoad, obstacle_mask
from depthda.eval.metrics import METRIC_NAMES
from depthda.eval.protocol import evaluate, named_protocol

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data" / "kitti" / "raw"
DRIVE = RAW / "2011_09_26" / "2011_09_26_drive_0023_sync"
TINY = REPO / "data" / "splits" / "kitti_tiny_test_files.txt"


def reference_obstacles(gt, fx, cy, height):
    """Row by row, written from the definition: nearer than 0.8 x the flat road's depth there."""
    out = np.zeros(gt.shape, bool)
    for v in range(gt.shape[0]):
        below = v + 0.5 - cy
        limit = np.inf if below <= 0 else 0.8 * height * fx / below
        out[v] = gt[v] < limit
    return out


def metrics(g, p):
    ratio = np.maximum(g / p, p / g)
    return {"abs_rel": np.mean(np.abs(g - p) / g), "a1": np.mean(ratio < 1.25)}


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(1)
    gts, preds = [], []
    for i in range(3):
        gt = read_annotated_depth(DRIVE / "proj_depth" / "groundtruth" / "image_02" / f"{i:010d}.png").astype(np.float32)
        h, w = gt.shape
        rows = np.linspace(60, 5, h, dtype=np.float32)[:, None].repeat(w, 1)
        preds.append(rows * (0.8 + 0.4 * rng.random((h, w), dtype=np.float32)))
        gts.append(gt)
    return gts, preds


def test_obstacle_mask_matches_the_definition(frames):
    gt = frames[0][0]
    road = FlatRoad(721.5377, 172.854, 1.65)
    mask = obstacle_mask(gt, road)
    assert np.array_equal(mask, reference_obstacles(gt, 721.5377, 172.854, 1.65))
    valid = gt > 0
    # both kinds occur in a real street: the road ahead and the parked cars and trees
    assert 0.2 < mask[valid].mean() < 0.8


@pytest.mark.parametrize("scaling", ["none", "median"])
def test_breakdown_regions_against_independent_computation(frames, scaling):
    gts, preds = frames
    road = FlatRoad()
    protocol = named_protocol("garg", scaling=scaling)
    plain = evaluate(["a", "b", "c"], gts, preds, protocol)
    split = evaluate(["a", "b", "c"], gts, preds, protocol,
                     regions=lambda i, gt: {"road": ~obstacle_mask(gt, road), "obstacle": obstacle_mask(gt, road)})
    for name in METRIC_NAMES:  # the standard metrics do not move
        assert split.metrics[name] == plain.metrics[name]
    for region in ("road", "obstacle"):
        want = {"abs_rel": [], "a1": []}
        for gt, pred in zip(gts, preds):
            h, w = gt.shape
            mask = (gt > 1e-3) & (gt < 80)
            crop = np.zeros_like(mask)
            crop[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
            mask &= crop
            g, p = gt[mask].astype(np.float64), pred[mask].astype(np.float64)
            if scaling == "median":
                p = p * np.median(g) / np.median(p)
            p = np.clip(p, 1e-3, 80)
            obstacle = reference_obstacles(gt, 721.5377, 172.854, 1.65)[mask]
            inside = obstacle if region == "obstacle" else ~obstacle
            for k, v in metrics(g[inside], p[inside]).items():
                want[k].append(v)
        got = split.breakdown[region]
        assert got["frames"] == 3
        assert got["abs_rel"] == pytest.approx(np.mean(want["abs_rel"]), rel=1e-9)
        assert got["a1"] == pytest.approx(np.mean(want["a1"]), rel=1e-9)
    fractions = split.breakdown["road"]["pixel_fraction"] + split.breakdown["obstacle"]["pixel_fraction"]
    assert fractions == pytest.approx(1.0)


def test_cli_breakdown_in_table_and_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    args = ["eval", "kitti", "--data-root", str(RAW), "--split-file", str(TINY), "--gt", "annotated",
            "--baseline", "ground-plane", "--scaling", "median"]
    assert run([*args, "--json", str(tmp_path / "plain.json")]) == 0
    assert run([*args, "--breakdown", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "obstacle" in text and "road" in text
    report, plain = json.loads(out.read_text()), json.loads((tmp_path / "plain.json").read_text())
    assert {k: report[k] for k in METRIC_NAMES} == {k: plain[k] for k in METRIC_NAMES}
    assert "breakdown" not in plain
    regions = report["breakdown"]["regions"]
    # the flat-road baseline is right on the road and wrong on what stands on it
    assert regions["road"]["abs_rel"] < regions["obstacle"]["abs_rel"]
    camera = report["breakdown"]["cameras"][0]  # the drive's own calibration was used
    assert camera["focal_px"] == pytest.approx(721.5377) and camera["cy_px"] == pytest.approx(172.854)


def test_breakdown_follows_camera_height(frames):
    gt = frames[0][0]
    low, high = obstacle_mask(gt, FlatRoad(camera_height_m=1.0)), obstacle_mask(gt, FlatRoad(camera_height_m=2.0))
    # seen from higher up the road is farther at each row, so more of the scene lies nearer than it
    assert high[gt > 0].sum() > low[gt > 0].sum()


def test_bad_camera_height_is_one_line_error(capsys):
    code = run(["eval", "kitti", "--data-root", str(RAW), "--split-file", str(TINY), "--gt", "annotated",
                "--baseline", "constant", "--breakdown", "--camera-height", "0"])
    assert code == 1
    assert "camera-height" in capsys.readouterr().err
