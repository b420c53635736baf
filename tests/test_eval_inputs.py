"""Malformed evaluation inputs and settings are one `depthda: error:` line, never a traceback or
a silent wrong number (issue 24): ground-truth files with broken arrays, truncated velodyne scans,
impossible camera heights and depth ranges, huge split files, empty predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depthda.cli import run
from depthda.data.gt_file import export_ground_truth
from depthda.data.kitti import read_split
from kitti_fixtures import OBJECT_DRIVE, build_object_as_raw

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data" / "kitti" / "raw"
TINY_SPLIT = REPO / "data" / "splits" / "kitti_tiny_test_files.txt"
EVAL = ["eval", "kitti", "--split-file", str(TINY_SPLIT), "--baseline", "constant"]


def one_line(capsys, needle: str):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: ") and needle in err[0], err


@pytest.fixture(scope="module")
def gt_arrays(tmp_path_factory) -> dict:
    path = export_ground_truth(read_split(TINY_SPLIT), RAW, "annotated", tmp_path_factory.mktemp("gt") / "gt.npz",
                               progress=False)
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _meta(**changes) -> np.ndarray:
    def edit(arrays):
        meta = json.loads(str(arrays["meta"]))
        meta.update(changes)
        return np.array(json.dumps(meta))
    return edit


@pytest.mark.parametrize("change", [
    lambda a: {"shapes": a["shapes"][:, :1]},                               # 1-D sizes
    lambda a: {"shapes": -a["shapes"]},                                     # negative sizes
    lambda a: {"shapes": np.full_like(a["shapes"], 10**8)},                 # huge frames
    lambda a: {"shapes": a["shapes"].astype(np.float32)},                   # wrong dtype
    lambda a: {"offsets": a["offsets"][:-2]},                               # offsets short
    lambda a: {"offsets": a["offsets"][::-1].copy()},                       # offsets decreasing
    lambda a: {"indices": a["indices"] + np.uint32(10**9)},                 # indices out of range
    lambda a: {"indices": a["indices"].reshape(1, -1)},                     # 2-D indices
    lambda a: {"depths": a["depths"].astype(np.int32)},                     # integer depths
    lambda a: {"depths": np.full_like(a["depths"], np.nan)},                # NaN depths
    lambda a: {"meta": _meta(frames=[])(a)},                                # metadata without frames
    lambda a: {"indices": a["indices"][:0], "depths": a["depths"][:0],      # no ground truth at all
               "offsets": np.zeros_like(a["offsets"])},
], ids=["1d-shapes", "negative-shapes", "huge-shapes", "float-shapes", "short-offsets", "decreasing-offsets",
        "indices-out-of-range", "2d-indices", "int-depths", "nan-depths", "no-frames", "no-ground-truth"])
def test_malformed_gt_files_are_one_line(tmp_path, capsys, gt_arrays, change):
    path = tmp_path / "bad.npz"
    np.savez_compressed(path, **{**gt_arrays, **change(gt_arrays)})
    assert run([*EVAL, "--gt-file", str(path)]) == 1
    one_line(capsys, "ground-truth file")


@pytest.mark.parametrize("args, needle", [
    (["--min-depth", "0"], "need 0 < min-depth"),
    (["--max-depth", "inf"], "need 0 < min-depth"),
    (["--breakdown", "--camera-height", "inf"], "--camera-height must be"),
    (["--breakdown", "--camera-height", "1e9"], "--camera-height must be"),
])
def test_impossible_settings_are_one_line(capsys, args, needle):
    assert run([*EVAL, "--data-root", str(RAW), "--gt", "annotated", *args]) == 1
    one_line(capsys, needle)


def test_a_split_file_of_a_million_lines_is_refused_before_reading(tmp_path, capsys):
    big = tmp_path / "big.txt"
    big.write_text("2011_09_26/2011_09_26_drive_0023_sync 0000000000 l\n" * 1_000_000)
    assert run([*EVAL, "--data-root", str(RAW), "--gt", "annotated", "--split-file", str(big)]) == 1
    one_line(capsys, "split file")


def test_zero_size_predictions_are_one_line(tmp_path, capsys):
    preds = tmp_path / "p.npy"
    np.save(preds, np.zeros((7, 0, 5), np.float32))
    assert run(["eval", "kitti", "--split-file", str(TINY_SPLIT), "--data-root", str(RAW), "--gt", "annotated",
                "--predictions", str(preds)]) == 1
    one_line(capsys, "H, W > 0")


def test_a_velodyne_scan_not_a_multiple_of_16_bytes_is_one_line(tmp_path, capsys, repo_data):
    root = build_object_as_raw(repo_data / "kitti" / "object", tmp_path / "raw")
    scan = root / OBJECT_DRIVE / "velodyne_points" / "data" / "0000000000.bin"
    scan.write_bytes(scan.read_bytes() + b"\0" * 4)  # one float more: not a whole point
    split = tmp_path / "s.txt"
    split.write_text(f"{OBJECT_DRIVE} 0000000000 l\n")
    assert run(["eval", "kitti", "--split-file", str(split), "--data-root", str(root), "--gt", "velodyne",
                "--baseline", "constant"]) == 1
    one_line(capsys, "multiple of 16 bytes")
