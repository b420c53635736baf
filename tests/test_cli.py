"""The command line as a user meets it: usage errors, user errors, Ctrl-C, help and small frictions.

Run as real processes (`python -m depthda`), so exit codes and stderr are exactly what a shell sees.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depthda.cli import run
from depthda.data.gt_file import export_ground_truth
from depthda.data.kitti import read_split
from processes import signal_when, staging_in, start

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "dashcam_3s.mp4"


def depthda(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "depthda", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.parametrize("args, message", [
    ([], "Usage: depthda"),
    (["--nope"], "No such option: --nope"),
    (["nosuch"], "No such command 'nosuch'"),
    (["predict", "x.png"], "Missing option '--output'"),
    (["predict", "x.png", "-o", "y.png", "--batch-size", "abc"], "Invalid value for '--batch-size'"),
    (["predict", "x.png", "-o", "y.png", "--depth-format", "exr"], "Invalid value for '--depth-format'"),
    (["eval"], "Usage: depthda eval"),
    (["eval", "kitti", "--crop", "square"], "Invalid value for '--crop'"),
    (["train-stage1", "--steps"], "requires an argument"),
])
def test_usage_errors_show_usage_and_exit_2(args, message):
    r = depthda(*args)
    # A bare command group prints its help: click >= 8.2 exits 2 there, older click 0.
    assert r.returncode == 2 or (len(args) <= 1 and r.returncode == 0 and "Commands:" in r.stdout), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert message in r.stderr + r.stdout
    assert "Usage: depthda" in r.stderr + r.stdout


@pytest.mark.slow
def test_user_error_is_one_line_and_exit_1(tmp_path):
    r = depthda("predict", tmp_path / "missing.png", "-o", tmp_path / "out.png")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("depthda: error: ")


def test_help_lists_flags_without_type_noise():
    r = depthda("predict", "--help")
    assert r.returncode == 0
    assert "--no-style" in r.stdout and "--side-by-side" in r.stdout
    assert "<bool>" not in r.stdout


def test_in_process_run_returns_the_same_codes(capsys):
    assert run(["--nope"]) == 2
    assert run(["predict", "/nonexistent/in.png", "-o", "/nonexistent/out.png"]) == 1
    assert run(["predict", "--help"]) == 0
    capsys.readouterr()


@pytest.mark.slow
def test_ctrl_c_during_predict_exits_130_and_writes_nothing(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = start(["predict", SAMPLE, "-o", out_dir / "v.mp4", "--depth-format", "npy"])
    # Interrupt once the video is being encoded: its staging file exists beside the output.
    code, err = signal_when(proc, staging_in(out_dir), signal.SIGINT, "predict")
    assert code == 130
    assert err.strip().splitlines()[-1] == "depthda: interrupted"
    assert "Traceback" not in err
    assert list(out_dir.iterdir()) == []  # no output, no staging file or folder left behind


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_and_keeps_no_partial_file(tmp_path):
    from train_fixtures import make_synthia

    data = make_synthia(tmp_path / "synthia", count=8)
    out = tmp_path / "run"
    proc = start(["train-stage1", "--data-root", data, "--out", out, "--preset", "small", "--size", "64x192",
                   "--steps", "100000", "--batch-size", "2", "--num-workers", "0", "--checkpoint-every", "2",
                   "--no-progress"])
    # Interrupt once a checkpoint has been written, so checkpoints are being written again and again.
    code, err = signal_when(proc, lambda: (out / "checkpoint.pt").is_file(), signal.SIGINT, "training")
    assert code == 130
    assert err.strip().splitlines()[-1] == "depthda: interrupted"
    assert "Traceback" not in err
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_eval_on_the_shipped_frames_suggests_annotated_ground_truth(capsys):
    args = ["eval", "kitti", "--data-root", str(REPO / "data/kitti/raw"),
            "--split-file", str(REPO / "data/splits/kitti_tiny_test_files.txt"), "--baseline", "constant"]
    assert run(args) == 1
    err = capsys.readouterr().err
    assert "add --gt annotated" in err and len(err.strip().splitlines()) == 1
    assert run(args + ["--gt", "annotated"]) == 0


def test_exported_gt_file_sets_the_ground_truth_kind(tmp_path, capsys):
    split = REPO / "data/splits/kitti_tiny_test_files.txt"
    gt_file = export_ground_truth(read_split(split), REPO / "data/kitti/raw", "annotated", tmp_path / "gt.npz",
                                  progress=False)
    base = ["eval", "kitti", "--split-file", str(split), "--gt-file", str(gt_file), "--baseline", "constant"]
    assert run(base + ["--json", str(tmp_path / "a.json")]) == 0
    assert run(base + ["--gt", "annotated", "--json", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    capsys.readouterr()
    assert run(base + ["--gt", "velodyne"]) == 1
    assert "holds annotated ground truth" in capsys.readouterr().err


def test_unknown_colormap_is_refused_before_any_model_loads(tmp_path, capsys):
    # A checkpoint folder that does not exist: the colormap must be refused first.
    code = run(["predict", str(SAMPLE), "-o", str(tmp_path / "o.mp4"), "--cmap", "nosuch",
                "--checkpoint", str(tmp_path / "no-model")])
    assert code == 1
    assert "unknown colormap 'nosuch'" in capsys.readouterr().err


def test_one_image_is_written_in_the_singular(tmp_path, ckpt, capsys):
    import cv2

    img = tmp_path / "in.png"
    cap = cv2.VideoCapture(str(SAMPLE))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    cv2.imwrite(str(img), bgr)
    assert run(["predict", str(img), "-o", str(tmp_path / "out.png"), "--checkpoint", str(ckpt)]) == 0
    assert "wrote 1 image to" in capsys.readouterr().out


@pytest.mark.slow
def test_loader_workers_are_capped_by_the_cpus(tmp_path):
    from train_fixtures import make_synthia

    data = make_synthia(tmp_path / "synthia", count=4)
    r = depthda("train-stage1", "--data-root", data, "--out", tmp_path / "run", "--preset", "small",
                "--size", "64x192", "--steps", "1", "--batch-size", "2", "--num-workers", str(8 * (os.cpu_count() or 1)),
                "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "worker processes in total" not in r.stderr  # PyTorch's "more workers than CPUs" warning


@pytest.mark.slow
def test_docs_python_api_example_runs(tmp_path, monkeypatch):
    """docs/inference.md's Python API block, run as written from the repo root."""
    doc = (REPO / "docs" / "inference.md").read_text()
    block = doc.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(REPO)
    scope = {}
    exec(compile(block, "docs/inference.md", "exec"), scope)
    depth = scope["depth_m"]
    assert depth.ndim == 2 and depth.dtype == np.float32 and np.isfinite(depth).all() and (depth > 0).all()


def test_file_name_that_is_not_utf8_is_one_line_error(tmp_path):
    out = os.fsencode(tmp_path) + b"/depth\xff.png"
    r = subprocess.run([sys.executable, "-m", "depthda", "predict", str(SAMPLE), "-o", out],
                       capture_output=True, timeout=600)
    assert r.returncode == 1, r.stderr
    err = r.stderr.decode("utf-8", "replace").strip().splitlines()
    assert len(err) == 1 and "is not valid UTF-8" in err[0]
    assert list(tmp_path.iterdir()) == []
