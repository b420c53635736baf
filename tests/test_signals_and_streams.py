"""SIGTERM is Ctrl-C (exit 143, nothing half-written, no worker left running), native libraries
stay quiet unless --verbose, a closed stdout pipe is not an error, and odd paths fail early in one
line naming the user's file (issue 24). Real processes: signals and streams are what a shell sees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from depthda.cli import run
from depthda.utils.fsio import exclusive_lock
from processes import signal_when, staging_in, start

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "dashcam_3s.mp4"
FRAME = REPO / "data" / "kitti" / "raw" / "2011_09_26" / "2011_09_26_drive_0023_sync" / "image_02" / "data" / "0000000000.png"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "synth"])
def test_sigterm_exits_143_and_leaves_nothing(tmp_path, ckpt, command):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = (["predict", SAMPLE, "-o", out_dir / "v.mp4", "--depth-format", "npy", "--checkpoint", ckpt]
            if command == "predict" else
            ["synth", "--out", out_dir / "d", "--count", "10000", "--size", "32x64", "--device", "cpu"])
    # Terminated once the staging files exist beside the output (synth would take minutes).
    code, err = signal_when(start(args), staging_in(out_dir), signal.SIGTERM)
    assert code == 143, err
    assert err.strip().splitlines()[-1] == "depthda: terminated" and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


@pytest.mark.slow
def test_sigterm_to_prepare_stops_its_workers(tmp_path):
    from train_fixtures import make_synthia

    src = make_synthia(tmp_path / "src", count=60, size=(256, 512))
    proc = start(["data", "prepare", src, "--out", tmp_path / "out", "--workers", "2", "--no-progress"])

    def workers() -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    children: list[int] = []

    def working() -> bool:
        children[:] = workers()
        return len(children) >= 2 and (tmp_path / "out").parent.exists() and any(
            p.name.startswith(".out.") for p in tmp_path.iterdir())

    code, err = signal_when(proc, working, signal.SIGTERM)
    assert code == 143, err
    time.sleep(0.5)
    alive = []
    for pid in children:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            continue
        if state != "Z":  # exited, waiting to be reaped: holds no memory
            alive.append(pid)
    assert alive == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.slow
def test_native_library_noise_is_silenced_unless_verbose(tmp_path):
    clip = tmp_path / "no_header.mp4"
    clip.write_bytes(SAMPLE.read_bytes()[-150_000:])  # the moov atom is gone: FFmpeg complains
    # As a shell starts it: without the levels importing depthda.cli set in this test process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    quiet = subprocess.run([sys.executable, "-m", "depthda", "predict", clip, "-o", tmp_path / "o.mp4"],
                           capture_output=True, text=True, env=env)
    assert quiet.returncode == 1 and quiet.stderr.strip().splitlines() == [
        f"depthda: error: cannot decode video (corrupt, truncated or unsupported): {clip}"]
    loud = subprocess.run([sys.executable, "-m", "depthda", "--verbose", "predict", clip, "-o", tmp_path / "o.mp4"],
                          capture_output=True, text=True, env=env)
    assert loud.returncode == 1 and "moov atom not found" in loud.stderr


@pytest.mark.slow
def test_a_closed_stdout_pipe_is_not_an_error(tmp_path, ckpt):
    proc = subprocess.Popen([sys.executable, "-m", "depthda", "predict", FRAME, "-o", tmp_path / "o.png",
                             "--checkpoint", ckpt], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the result line is written (`| true`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert err == "" and (tmp_path / "o.png").stat().st_size > 0


@pytest.mark.slow
def test_progress_bars_stay_off_a_non_terminal_stderr(tmp_path, ckpt):
    r = subprocess.run([sys.executable, "-m", "depthda", "synth", "--out", tmp_path / "d", "--count", "2",
                        "--size", "32x64", "--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""


def _one_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: ") and needle in err[0], err


def test_binary_calibration_file_is_one_line(tmp_path, ckpt, capsys):
    calib = tmp_path / "calib.txt"
    calib.write_bytes(bytes(range(256)) * 4)
    assert run(["predict", str(FRAME), "-o", str(tmp_path / "o.png"), "--calib", str(calib),
                "--checkpoint", str(ckpt)]) == 1
    _one_line(capsys, "calibration file is not text")


def test_names_up_to_255_bytes_work_and_longer_ones_name_the_users_file(tmp_path, ckpt, capsys):
    legal = tmp_path / ("a" * 251 + ".png")
    assert run(["predict", str(FRAME), "-o", str(legal), "--checkpoint", str(ckpt)]) == 0
    assert legal.stat().st_size > 0
    capsys.readouterr()
    too_long = tmp_path / ("b" * 253 + ".png")
    assert run(["predict", str(FRAME), "-o", str(too_long), "--checkpoint", str(ckpt)]) == 1
    _one_line(capsys, "is 257 bytes")
    assert sorted(p.name for p in tmp_path.iterdir()) == [legal.name]


def test_a_symlinked_output_folder_is_refused_before_any_work(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "f.png").write_bytes(FRAME.read_bytes())
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert run(["predict", str(src), "-o", str(tmp_path / "link"), "--checkpoint", str(ckpt)]) == 1
    _one_line(capsys, "is a symbolic link")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert run(["predict", str(FRAME), "-o", str(loop / "o.png"), "--checkpoint", str(ckpt)]) == 1
    _one_line(capsys, "symbolic-link loop")


def test_a_second_training_into_the_same_folder_is_refused(tmp_path, capsys):
    from train_fixtures import make_synthia

    data = make_synthia(tmp_path / "synthia", count=4)
    out = tmp_path / "run"
    with exclusive_lock(out / "train.lock", "held by the test"):  # as a first training would
        assert run(["train-stage1", "--data-root", str(data), "--out", str(out), "--preset", "small",
                    "--size", "64x192", "--steps", "1", "--batch-size", "2", "--num-workers", "0",
                    "--no-progress"]) == 1
    _one_line(capsys, "another training is writing to")
    assert sorted(p.name for p in out.iterdir()) == ["train.lock"]


def test_a_file_name_that_is_not_utf8_in_an_input_folder_is_one_line(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "f.png").write_bytes(FRAME.read_bytes())
    with open(os.fsencode(src) + b"/bad\xff.png", "wb") as handle:  # OpenCV crashes on such a name
        handle.write(FRAME.read_bytes())
    assert run(["predict", str(src), "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt)]) == 1
    _one_line(capsys, "is not valid UTF-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
