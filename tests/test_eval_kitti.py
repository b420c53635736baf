"""`depthda eval kitti` against an independent, deliberately plain implementation of the protocol."""

import json
import math
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthda.cli import run
from depthda.data.kitti import read_split
from depthda.errors import DepthdaError
from depthda.eval.protocol import EvalProtocol, crop_mask, evaluate
from depthda.eval.kitti import evaluate_kitti
from kitti_fixtures import OBJECT_DRIVE, TINY_DRIVE, build_object_as_raw, tiny_split_lines, write_split


# ---------------------------------------------------------------- independent reference implementation
def ref_read_calib(path):
    out = {}
    for line in open(path):
        key, value = line.split(":", 1)
        try:
            out[key] = np.array([float(x) for x in value.split()])
        except ValueError:
            pass
    return out


def ref_velodyne_gt(calib_dir, bin_path):
    cam = ref_read_calib(Path(calib_dir) / "calib_cam_to_cam.txt")
    velo = ref_read_calib(Path(calib_dir) / "calib_velo_to_cam.txt")
    velo2cam = np.vstack((np.hstack((velo["R"].reshape(3, 3), velo["T"][:, None])), [0, 0, 0, 1.0]))
    rect = np.eye(4)
    rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
    proj = cam["P_rect_02"].reshape(3, 4) @ rect @ velo2cam
    width, height = cam["S_rect_02"].astype(int)
    pts = np.fromfile(bin_path, dtype=np.float32).reshape(-1, 4).astype(np.float64)
    pts[:, 3] = 1.0
    pts = pts[pts[:, 0] >= 0]
    im = (proj @ pts.T).T
    im[:, :2] /= im[:, 2:3]
    im[:, 2] = pts[:, 0]
    im[:, 0] = np.round(im[:, 0]) - 1
    im[:, 1] = np.round(im[:, 1]) - 1
    keep = (im[:, 0] >= 0) & (im[:, 1] >= 0) & (im[:, 0] < width) & (im[:, 1] < height)
    im = im[keep]
    depth = np.zeros((height, width))
    rows, cols = im[:, 1].astype(int), im[:, 0].astype(int)
    depth[rows, cols] = im[:, 2]
    flat = rows * width + cols
    for index, count in Counter(flat).items():
        if count > 1:
            hits = np.where(flat == index)[0]
            depth[rows[hits[0]], cols[hits[0]]] = im[hits, 2].min()
    return depth


def ref_evaluate(gts, preds, median, min_depth=1e-3, max_depth=80.0):
    sums = dict.fromkeys(["abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"], 0.0)
    for gt, pred in zip(gts, preds):
        h, w = gt.shape
        pred = cv2.resize(pred, (w, h))
        mask = (gt > min_depth) & (gt < max_depth)
        box = (np.array([0.40810811 * h, 0.99189189 * h, 0.03594771 * w, 0.96405229 * w])).astype(np.int32)
        crop = np.zeros(mask.shape)
        crop[box[0]:box[1], box[2]:box[3]] = 1
        mask = np.logical_and(mask, crop)
        g, p = gt[mask], pred[mask].astype(np.float64)
        if median:
            p = p * np.median(g) / np.median(p)
        p = np.minimum(np.maximum(p, min_depth), max_depth)
        t = np.maximum(g / p, p / g)
        sums["a1"] += (t < 1.25).mean()
        sums["a2"] += (t < 1.25**2).mean()
        sums["a3"] += (t < 1.25**3).mean()
        sums["rmse"] += math.sqrt(((g - p) ** 2).mean())
        sums["rmse_log"] += math.sqrt(((np.log(g) - np.log(p)) ** 2).mean())
        sums["abs_rel"] += np.mean(np.abs(g - p) / g)
        sums["sq_rel"] += np.mean((g - p) ** 2 / g)
    return {k: v / len(gts) for k, v in sums.items()}


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def raw_root(tmp_path_factory, repo_data):
    """Object frame 000008 laid out as a raw drive (velodyne), beside the 7 tiny-drive frames (annotated)."""
    root = build_object_as_raw(repo_data / "kitti" / "object", tmp_path_factory.mktemp("kitti"))
    tiny = repo_data / "kitti" / "raw" / TINY_DRIVE
    (root / TINY_DRIVE).symlink_to(tiny, target_is_directory=True)
    return root


def plausible_prediction(shape, seed, scale=1.0):
    """A dense, smooth depth map like a model's: ground-plane depth below the horizon, far above."""
    rng = np.random.default_rng(seed)
    h, w = shape
    v = (np.arange(h) + 0.5)[:, None] * np.ones((1, w))
    horizon = 0.46 * h
    ground = np.where(v > horizon + 1, 1.65 * 0.58 * w / np.maximum(v - horizon, 1e-3), 80.0)
    noise = 1 + 0.15 * cv2.GaussianBlur(rng.standard_normal((h, w)), (0, 0), 5)
    return (np.clip(ground, 2, 90) * noise * scale).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny.txt", tiny_split_lines())


# ---------------------------------------------------------------- agreement with the reference
@pytest.mark.parametrize("scaling", ["none", "median"])
def test_velodyne_matches_reference(raw_root, tmp_path, scaling):
    split = write_split(tmp_path / "s.txt", [f"{OBJECT_DRIVE} 8 l".replace(" 8 ", " 0 ")])
    preds = np.stack([plausible_prediction((192, 640), 0, scale=0.6)])
    np.save(tmp_path / "p.npy", preds)
    ours = evaluate_kitti(data_root=raw_root, split_file=split, gt="velodyne", predictions=tmp_path / "p.npy",
                          protocol=EvalProtocol(scaling=scaling), progress=False)
    gt = ref_velodyne_gt(raw_root / "2011_09_26", raw_root / OBJECT_DRIVE / "velodyne_points/data/0000000000.bin")
    ref = ref_evaluate([gt], preds, median=scaling == "median")
    for key, value in ref.items():
        assert ours.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key


@pytest.mark.parametrize("scaling", ["none", "median"])
def test_annotated_matches_reference(raw_root, tiny_split, tmp_path, scaling):
    preds = np.stack([plausible_prediction((256, 832), i, scale=1.4) for i in range(7)])
    np.save(tmp_path / "p.npy", preds)
    ours = evaluate_kitti(data_root=raw_root, split_file=tiny_split, gt="annotated",
                          predictions=tmp_path / "p.npy", protocol=EvalProtocol(scaling=scaling), progress=False)
    gt_dir = raw_root / TINY_DRIVE / "proj_depth/groundtruth/image_02"
    gts = [cv2.imread(str(gt_dir / f"{i:010d}.png"), -1).astype(np.float32) / 256 for i in range(7)]
    ref = ref_evaluate(gts, preds, median=scaling == "median")
    assert ours.evaluated == 7
    for key, value in ref.items():
        assert ours.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key


# ---------------------------------------------------------------- protocol options
def test_crops():
    garg = crop_mask((375, 1242), "garg")
    rows, cols = np.where(garg)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    eigen = crop_mask((375, 1242), "eigen")
    rows, cols = np.where(eigen)
    assert (rows.min(), rows.max() + 1) == (124, 342)
    assert crop_mask((375, 1242), "none").all()


def test_depth_cap_masks_gt_and_clamps_predictions():
    gt = np.zeros((10, 10), np.float32)
    gt[2, 2], gt[3, 3] = 10.0, 90.0  # 90 m is beyond the cap: ignored
    pred = np.full((10, 10), 200.0, np.float32)  # clamped to 80
    result = evaluate(["f"], [gt], [pred], EvalProtocol(crop="none"))
    assert result.per_frame[0].valid_pixels == 1
    assert result.metrics["abs_rel"] == pytest.approx(7.0)  # |80 - 10| / 10
    capped = evaluate(["f"], [gt], [pred], EvalProtocol(crop="none", max_depth=100))
    assert capped.per_frame[0].valid_pixels == 2


def test_median_scaling_removes_global_scale():
    rng = np.random.default_rng(1)
    gt = rng.uniform(5, 50, (40, 40)).astype(np.float32)
    pred = gt * 0.37
    unscaled = evaluate(["f"], [gt], [pred], EvalProtocol(crop="none"))
    scaled = evaluate(["f"], [gt], [pred], EvalProtocol(crop="none", scaling="median"))
    assert unscaled.metrics["abs_rel"] == pytest.approx(0.63, rel=1e-4)
    assert scaled.metrics["abs_rel"] < 1e-5 and scaled.metrics["a1"] == 1.0
    assert scaled.per_frame[0].scale == pytest.approx(1 / 0.37, rel=1e-5)


def test_empty_frames_are_skipped_and_all_empty_fails():
    gt_ok = np.full((20, 20), 10.0, np.float32)
    gt_empty = np.zeros((20, 20), np.float32)
    pred = np.full((20, 20), 10.0, np.float32)
    with pytest.warns(UserWarning, match="1 frame"):
        result = evaluate(["a", "b"], [gt_ok, gt_empty], [pred, pred], EvalProtocol())
    assert result.skipped == ["b"] and result.evaluated == 1
    with pytest.raises(DepthdaError, match="none of the 2 frames"), pytest.warns(UserWarning):
        evaluate(["a", "b"], [gt_empty, gt_empty], [pred, pred], EvalProtocol())


# ---------------------------------------------------------------- CLI end to end
@pytest.mark.slow
def test_cli_end_to_end_with_exported_gt_json_csv_and_plots(raw_root, tiny_split, tmp_path, capsys):
    preds = np.stack([plausible_prediction((192, 640), i) for i in range(7)])
    np.save(tmp_path / "p.npy", preds)
    common = ["--split-file", str(tiny_split), "--gt", "annotated", "--predictions", str(tmp_path / "p.npy")]
    assert run(["eval", "kitti", "--data-root", str(raw_root), *common, "--json", str(tmp_path / "a.json"),
                "--per-frame-csv", str(tmp_path / "f.csv"), "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "crop=garg" in out and "abs_rel" in out
    direct = json.loads((tmp_path / "a.json").read_text())
    assert list(direct)[:7] == ["abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"]
    assert direct["frames"] == 7 and direct["protocol"]["crop"] == "garg"
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 8
    for plot in ("error_by_distance.png", "worst_frames.png"):
        assert cv2.imread(str(tmp_path / "plots" / plot)) is not None

    gt_file = tmp_path / "gt.npz"
    assert run(["data", "export-gt", "--data-root", str(raw_root), "--split-file", str(tiny_split),
                "--gt", "annotated", "-o", str(gt_file)]) == 0
    assert run(["eval", "kitti", "--gt-file", str(gt_file), *common, "--json", str(tmp_path / "b.json")]) == 0
    cached = json.loads((tmp_path / "b.json").read_text())
    for key in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"):
        assert cached[key] == pytest.approx(direct[key], rel=1e-6)


def test_exported_velodyne_gt_equals_projection(raw_root, tmp_path):
    split = write_split(tmp_path / "s.txt", [f"{OBJECT_DRIVE} 0000000000 l"])
    assert run(["data", "export-gt", "--data-root", str(raw_root), "--split-file", str(split),
                "-o", str(tmp_path / "gt.npz")]) == 0
    from depthda.data.gt_file import GroundTruthFile
    gt = ref_velodyne_gt(raw_root / "2011_09_26", raw_root / OBJECT_DRIVE / "velodyne_points/data/0000000000.bin")
    assert np.allclose(GroundTruthFile(tmp_path / "gt.npz")[0], gt, atol=1e-5)


# ---------------------------------------------------------------- bad input
def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error:"), err
    return err[0]


def test_bad_inputs_give_one_line(raw_root, tiny_split, tmp_path, capsys):
    np.save(tmp_path / "p7.npy", np.ones((7, 8, 8), np.float32) * 10)
    np.save(tmp_path / "p3.npy", np.ones((3, 8, 8), np.float32))
    nan = np.ones((7, 8, 8), np.float32)
    nan[2, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    base = ["eval", "kitti", "--data-root", str(raw_root)]

    assert run([*base, "--split-file", str(tmp_path / "none.txt"), "--predictions", str(tmp_path / "p7.npy")]) == 1
    assert "split file not found" in error_line(capsys)

    assert run([*base, "--split-file", str(tiny_split), "--predictions", str(tmp_path / "p7.npy")]) == 1
    assert "7 velodyne ground-truth file(s) missing" in error_line(capsys)  # no scans in the tiny drive

    annotated = ["--split-file", str(tiny_split), "--gt", "annotated"]
    assert run([*base, *annotated, "--predictions", str(tmp_path / "p3.npy")]) == 1
    assert "3 frames but the split has 7" in error_line(capsys)

    assert run([*base, *annotated, "--predictions", str(tmp_path / "nan.npy")]) == 1
    assert "NaN or inf" in error_line(capsys)

    assert run(["eval", "kitti", "--data-root", str(tmp_path / "nowhere"), *annotated,
                "--predictions", str(tmp_path / "p7.npy")]) == 1
    assert "not found" in error_line(capsys)


def test_missing_files_counted_with_first_path(raw_root, tmp_path, capsys):
    split = write_split(tmp_path / "s.txt", [f"{TINY_DRIVE} {i} l" for i in (0, 1, 900, 901)])
    np.save(tmp_path / "p.npy", np.ones((4, 8, 8), np.float32))
    assert run(["eval", "kitti", "--data-root", str(raw_root), "--split-file", str(split), "--gt", "annotated",
                "--predictions", str(tmp_path / "p.npy")]) == 1
    line = error_line(capsys)
    assert "2 annotated ground-truth file(s) missing" in line and "0000000900.png" in line


# ---------------------------------------------------------------- cost
@pytest.mark.slow
def test_697_frames_from_exported_gt_read_each_file_once(tmp_path, monkeypatch):
    """The Eigen split's size with KITTI-sized sparse ground truth, read from an exported file."""
    frames = read_split(Path(__file__).resolve().parents[1] / "data/splits/eigen_test_files.txt")
    rng = np.random.default_rng(0)
    h, w, n = 375, 1242, len(frames)
    valid = int(0.05 * h * w)
    indices = np.sort(rng.choice(h * w, valid, replace=False)).astype(np.uint32)
    meta = json.dumps({"format": "depthda-gt-v1", "gt": "velodyne", "frames": [str(f) for f in frames]})
    depths = rng.uniform(2, 80, n * valid).astype(np.float32)
    np.savez_compressed(tmp_path / "gt.npz", meta=np.array(meta), shapes=np.tile([[h, w]], (n, 1)).astype(np.int32),
                        offsets=np.arange(n + 1, dtype=np.int64) * valid, indices=np.tile(indices, n),
                        depths=depths)
    np.save(tmp_path / "p.npy", rng.uniform(2, 80, (n, 192, 640)).astype(np.float32))
    # What keeps this fast is counted, not timed: the compressed ground truth is decompressed once
    # (not once per frame) and the predictions are memory-mapped once, not loaded whole per frame.
    real_load, loads = np.load, []

    def counting_load(file, *args, **kwargs):  # the real np.load, with a record of each call
        loads.append((Path(file).name, kwargs.get("mmap_mode")))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", counting_load)
    result = evaluate_kitti(gt_file=tmp_path / "gt.npz", split="eigen", predictions=tmp_path / "p.npy",
                            protocol=EvalProtocol(scaling="median"), progress=False)
    monkeypatch.undo()
    assert result.evaluated == 697
    assert sorted(loads) == [("gt.npz", None), ("p.npy", "r")]
    # Every frame's ground truth came back whole from its slice of the sparse file: each frame's
    # valid pixels are exactly its stored depths inside the crop and the (0.001, 80) m range.
    in_crop = crop_mask((h, w), "garg").ravel()[indices]
    kept = depths.reshape(n, valid)[:, in_crop]
    expected = ((kept > 1e-3) & (kept < 80)).sum(1)
    assert [r.valid_pixels for r in result.per_frame] == expected.tolist()


# ---------------------------------------------------------------- baselines
def test_ground_plane_baseline_formula_and_cli(raw_root, tiny_split, tmp_path):
    from depthda.eval.baselines import ground_plane_depth
    depth = ground_plane_depth((375, 1242))
    assert depth[300, 10] == pytest.approx(1.65 * 721.5377 / (300.5 - 172.854), rel=1e-5)
    assert depth[100, 0] == 20.0  # above the horizon: capped at the constant baseline's depth
    double = ground_plane_depth((750, 2484))  # intrinsics scale with the image
    assert double[600, 0] == pytest.approx(1.65 * 721.5377 * 2 / (600.5 - 172.854 * 2), rel=1e-5)
    for baseline in ("constant", "ground-plane"):
        out = tmp_path / f"{baseline}.json"
        assert run(["eval", "kitti", "--data-root", str(raw_root), "--split-file", str(tiny_split),
                    "--gt", "annotated", "--baseline", baseline, "--json", str(out)]) == 0
    constant = json.loads((tmp_path / "constant.json").read_text())
    plane = json.loads((tmp_path / "ground-plane.json").read_text())
    assert plane["abs_rel"] < constant["abs_rel"]  # the road is the strongest cue


@pytest.mark.slow
def test_checkpoint_runs_the_pipeline_and_matches_saved_predictions(raw_root, tiny_split, tmp_path):
    from depthda.infer.pipeline import DepthPipeline
    from depthda.models.random_pipeline import init_checkpoint
    from depthda.utils.images import read_rgb

    ckpt = init_checkpoint(tmp_path / "ckpt", size=(64, 192), seed=3)
    pipe = DepthPipeline.from_checkpoint(ckpt, device="cpu")
    frames = read_split(tiny_split)
    preds = np.stack([pipe(read_rgb(f.image_path(raw_root))) for f in frames])
    np.save(tmp_path / "preds.npy", preds)
    common = ["eval", "kitti", "--data-root", str(raw_root), "--split-file", str(tiny_split), "--gt", "annotated"]
    assert run([*common, "--checkpoint", str(tmp_path / "ckpt"), "--device", "cpu", "--json", str(tmp_path / "a.json")]) == 0
    assert run([*common, "--predictions", str(tmp_path / "preds.npy"), "--json", str(tmp_path / "b.json")]) == 0
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"):
        assert a[k] == pytest.approx(b[k], rel=1e-4), k
    # Without the style stage the chain differs, and so do the numbers.
    assert run([*common, "--checkpoint", str(tmp_path / "ckpt"), "--no-style", "--json", str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["abs_rel"] != a["abs_rel"]
