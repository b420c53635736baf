"""No run may destroy or half-write a user's data: outputs never alias inputs, failed writes keep
the old file, bad input files are one line (issue: never loses a user's data)."""

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthda.cli import run
from depthda.errors import DepthdaError
from depthda.infer.video_io import VideoWriter

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "dashcam_3s.mp4"
FRAME = REPO / "data" / "kitti" / "raw" / "2011_09_26" / "2011_09_26_drive_0023_sync" / "image_02" / "data" / "0000000000.png"
TINY_SPLIT = REPO / "data" / "splits" / "kitti_tiny_test_files.txt"


def one_error_line(capsys, needle: str):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: ") and needle in err[0], err


def folder_with(parent: Path, name: str, source: Path, filename: str) -> Path:
    folder = parent / name
    folder.mkdir()
    shutil.copy(source, folder / filename)
    return folder


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_depth_side_output_never_overwrites_the_input_image(tmp_path, ckpt, capsys):
    d = folder_with(tmp_path, "dir", FRAME, "a_depth.png")
    before = snapshot(d)
    assert run(["predict", str(d / "a_depth.png"), "-o", str(d / "a.png"), "--depth-format", "png16",
                "--checkpoint", str(ckpt)]) == 1
    one_error_line(capsys, "would overwrite the input")
    assert snapshot(d) == before


def test_depth_side_folder_never_replaces_the_folder_holding_the_input_video(tmp_path, ckpt, capsys):
    folder_with(tmp_path, "v_depth", SAMPLE, "in.mp4")
    before = snapshot(tmp_path)
    assert run(["predict", str(tmp_path / "v_depth" / "in.mp4"), "-o", str(tmp_path / "v.mp4"),
                "--depth-format", "npy", "--checkpoint", str(ckpt)]) == 1
    one_error_line(capsys, "would replace the folder that holds the input")
    assert snapshot(tmp_path) == before


def test_folder_outputs_never_alias_the_input_folder(tmp_path, ckpt, capsys):
    src = folder_with(tmp_path, "x_depth", FRAME, "f.png")
    before = snapshot(tmp_path)
    # the depth side folder of output "x" is "x_depth": the input itself
    assert run(["predict", str(src), "-o", str(tmp_path / "x"), "--depth-format", "npy", "--checkpoint", str(ckpt)]) == 1
    one_error_line(capsys, "x_depth")
    # through a symbolic link the output is still inside the input
    (tmp_path / "link").symlink_to(src)
    assert run(["predict", str(src), "-o", str(tmp_path / "link" / "out"), "--checkpoint", str(ckpt)]) == 1
    one_error_line(capsys, "must not be inside the input folder")
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_folder_output_is_replaced_whole_and_foreign_files_are_protected(tmp_path, ckpt, capsys):
    src = folder_with(tmp_path, "in", FRAME, "f.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.png").write_bytes(b"from an earlier run")
    assert run(["predict", str(src), "-o", str(out), "--checkpoint", str(ckpt)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["f.png"]         # one folder, the new run's whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no staging left beside it
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    capsys.readouterr()
    assert run(["predict", str(src), "-o", str(out), "--checkpoint", str(ckpt)]) == 1
    one_error_line(capsys, "holds files depthda did not write")
    assert snapshot(out) == before


def test_output_under_an_existing_file_is_one_line(tmp_path, ckpt, capsys):
    (tmp_path / "file.png").write_bytes(b"x")
    assert run(["predict", str(FRAME), "-o", str(tmp_path / "file.png" / "out.png"), "--checkpoint", str(ckpt)]) == 1
    one_error_line(capsys, "file.png")


@pytest.mark.parametrize("args, needle", [
    (["--focal", "inf"], "positive, finite"),
    (["--focal", "1e308"], "from 1 to 1e+06"),     # wrote non-finite depth before (issue 24)
    (["--focal", "5e-324"], "from 1 to 1e+06"),    # wrote zero depth with a divide-by-zero warning
    (["--range", "1e-30", "1e30"], "MIN < MAX <= 1e+06"),
    (["--batch-size", "9223372036854775807"], "--batch-size must be from 1 to 1024"),
])
def test_physically_meaningless_settings_are_refused(tmp_path, ckpt, capsys, args, needle):
    assert run(["predict", str(FRAME), "-o", str(tmp_path / "o.png"), *args, "--checkpoint", str(ckpt)]) == 1
    one_error_line(capsys, needle)
    assert not (tmp_path / "o.png").exists()


def test_encoder_failure_is_one_error_and_keeps_nothing_half_written(tmp_path):
    writer = VideoWriter(tmp_path / "v.mp4", 64, 48, 10.0)
    if writer.backend != "ffmpeg":
        pytest.skip("needs the ffmpeg encoder")
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer._proc.kill()  # the encoder dies, as on a full disk or a crash
    with pytest.raises(DepthdaError, match="video encoder failed|no space left"):
        for _ in range(200):
            writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.close()
    writer.abort()


def test_a_finished_video_is_checked_for_every_frame(tmp_path):
    with VideoWriter(tmp_path / "v.mp4", 64, 48, 10.0) as writer:
        for i in range(5):
            writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_bytes(b""), "cannot read predictions"),
    (lambda p: np.savez(p, a=np.zeros((7, 4, 4), np.float32)), "not an .npz archive"),
])
def test_bad_predictions_files_are_one_line(tmp_path, capsys, make, needle):
    preds = tmp_path / "p.npy"
    make(preds)
    if not preds.exists():  # np.savez appends .npz
        preds = tmp_path / "p.npy.npz"
    assert run(["eval", "kitti", "--data-root", str(REPO / "data/kitti/raw"), "--split-file", str(TINY_SPLIT),
                "--gt", "annotated", "--predictions", str(preds)]) == 1
    one_error_line(capsys, needle)


def test_truncated_gt_file_and_non_utf8_split_are_one_line(tmp_path, capsys):
    from depthda.data.gt_file import export_ground_truth
    from depthda.data.kitti import read_split

    gt = export_ground_truth(read_split(TINY_SPLIT), REPO / "data/kitti/raw", "annotated", tmp_path / "gt.npz",
                             progress=False)
    data = gt.read_bytes()
    gt.write_bytes(data[: len(data) // 2])
    assert run(["eval", "kitti", "--split-file", str(TINY_SPLIT), "--gt-file", str(gt), "--baseline", "constant"]) == 1
    one_error_line(capsys, "not a depthda ground-truth file")
    bad = tmp_path / "split.txt"
    bad.write_bytes(b"2011_09_26/2011_09_26_drive_0023_sync 0000000000 l\n\xff\xfe\n")
    assert run(["eval", "kitti", "--data-root", str(REPO / "data/kitti/raw"), "--split-file", str(bad),
                "--gt", "annotated", "--baseline", "constant"]) == 1
    one_error_line(capsys, "not UTF-8")


@pytest.mark.slow
def test_killed_predict_leaves_temporaries_that_the_next_run_removes(tmp_path, ckpt):
    import signal
    import time

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "depthda", "predict", str(SAMPLE), "-o", str(out_dir / "v.mp4"),
                             "--depth-format", "npy", "--checkpoint", str(ckpt)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not any(out_dir.iterdir()) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run(["predict", str(SAMPLE), "-o", str(out_dir / "v.mp4"), "--depth-format", "npy", "--frames", "3",
                "--checkpoint", str(ckpt)]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["v.mp4", "v_depth"]


@pytest.mark.parametrize("target", ["/proc/depthda-out.png", "/proc/self/depthda/out.png"])
def test_an_output_folder_that_cannot_be_written_is_one_line(target, ckpt, capsys):
    # /proc refuses new files even to root, like a read-only folder does to a user
    assert run(["predict", str(FRAME), "-o", target, "--checkpoint", str(ckpt)]) == 1
    one_error_line(capsys, "/proc/")
