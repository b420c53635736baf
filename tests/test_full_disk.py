"""A full disk is one line and leaves what was there (issue 24), on a real full file system: a
small tmpfs mounted for the test (skipped where mounting is not permitted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from depthda.cli import run
from depthda.errors import DepthdaError
from depthda.train.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
FRAME = REPO / "data" / "kitti" / "raw" / "2011_09_26" / "2011_09_26_drive_0023_sync" / "image_02" / "data" / "0000000000.png"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _one_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: ") and needle in err[0], err


def test_a_checkpoint_that_does_not_fit_keeps_the_previous_one(small_disk):
    path = small_disk / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "w": torch.zeros(1000)})
    before = path.read_bytes()
    with pytest.raises(DepthdaError, match="could not write the checkpoint .*the previous checkpoint is intact"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(10**6)})
    assert path.read_bytes() == before and sorted(p.name for p in small_disk.iterdir()) == ["checkpoint.pt"]


@pytest.mark.slow
def test_an_export_that_cannot_fit_is_refused_before_writing(small_disk, ckpt, capsys):
    big = small_disk / "filler"
    big.write_bytes(b"\0" * 200_000)
    assert run(["export", "--format", "torchscript", "--checkpoint", str(ckpt), "-o", str(small_disk / "g.pt")]) == 1
    _one_line(capsys, "MB free")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_a_folder_prediction_on_a_full_disk_is_one_line_and_keeps_the_old_output(small_disk, tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        (src / f"{i:03d}.png").write_bytes(FRAME.read_bytes())
    out = small_disk / "out"
    out.mkdir()
    (out / "old.png").write_bytes(b"an earlier run")
    assert run(["predict", str(src), "-o", str(out), "--depth-format", "npy", "--checkpoint", str(ckpt)]) == 1
    _one_line(capsys, "no space left on device")
    assert sorted(p.name for p in small_disk.iterdir()) == ["out"]
    assert [p.name for p in out.iterdir()] == ["old.png"] and (out / "old.png").read_bytes() == b"an earlier run"


SAMPLE = REPO / "data" / "samples" / "dashcam_3s.mp4"


@pytest.mark.parametrize("depth_format, named", [(None, "out.mp4"), ("png16", "out_depth/000000.png"),
                                                 ("npy", "out_depth/000000.npy")])
def test_a_video_prediction_on_a_full_disk_names_the_users_file(small_disk, ckpt, capfd, depth_format, named):
    """The error names the file the user asked for, never the hidden temporary it was written to;
    and libpng's own "Write Error" line does not precede it (captured at the file descriptor)."""
    (small_disk / "filler").write_bytes(b"\0" * 200_000)
    extra = ["--depth-format", depth_format] if depth_format else []
    assert run(["predict", str(SAMPLE), "-o", str(small_disk / "out.mp4"), "--frames", "40", "--checkpoint", str(ckpt),
                *extra]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: no space left on device"), err
    assert str(small_disk / named) in err[0] and ".depthda-" not in err[0], err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_onnx_runtime_with_a_full_cache_is_one_line_and_auto_falls_back(small_disk, tmp_path, ckpt, capsys,
                                                                         monkeypatch):
    monkeypatch.setenv("DEPTHDA_CACHE", str(small_disk))
    args = ["predict", str(FRAME), "-o", str(tmp_path / "out.png"), "--checkpoint", str(ckpt)]
    assert run([*args, "--engine", "onnxruntime"]) == 1
    _one_line(capsys, f"cannot keep ONNX Runtime's graphs in {small_disk}: No space left on device")
    assert not (tmp_path / "out.png").exists()
    assert run([*args, "--engine", "auto"]) == 0  # not asked for by name: the model runs on torch
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: warning: ") and "running it with torch" in err[0], err
    assert (tmp_path / "out.png").is_file() and list(small_disk.iterdir()) == []
