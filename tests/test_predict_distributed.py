"""`depthda predict FOLDER` under torchrun (2 gloo processes on CPU) writes what one process writes.

Run as real processes, as a user runs them: `python -m torch.distributed.run ... -m depthda
predict` against `python -m depthda predict`, compared file by file, byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from depthda.infer.distributed_predict import split_frames

# torchrun launches of several processes (the quick loop leaves them out; CI runs them).
pytestmark = pytest.mark.slow

KITTI_FRAMES = "kitti/raw/2011_09_26/2011_09_26_drive_0023_sync/image_02/data"


def depthda(*args, ranks: int = 1) -> subprocess.CompletedProcess:
    """`depthda <args> --device cpu`, in one process or in `ranks` processes under torchrun."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] if ranks > 1 else []
    cmd = [sys.executable, *launcher, "-m", "depthda", *map(str, args), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones included), by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def depthda_errors(stderr: str) -> list[str]:
    # torchrun adds its own report of a failed process; depthda's lines are these.
    return [line for line in stderr.splitlines() if line.startswith("depthda:")]


@pytest.fixture
def photos(tmp_path, test_data, repo_data):
    """Real frames of two sizes, one in a subfolder, and a file that is not an image:
    paper examples 1216×352 (1.png, 2.png, 3.png, LICENSE_MIT.txt) and KITTI frames 1242×375 (kitti/)."""
    folder = tmp_path / "photos"
    shutil.copytree(test_data / "paper_examples", folder)
    (folder / "kitti").mkdir()
    for name in ("0000000000.png", "0000000001.png", "0000000002.png"):
        shutil.copy(repo_data / KITTI_FRAMES / name, folder / "kitti" / name)
    return folder


@pytest.mark.parametrize("count, ranks, batch", [(6, 2, 1), (7, 3, 1), (1, 2, 1), (20, 4, 8), (9, 2, 8), (3, 4, 2)])
def test_shares_are_contiguous_whole_batches_covering_every_frame(count, ranks, batch):
    shares = split_frames(count, ranks, batch)
    assert len(shares) == ranks
    assert [i for share in shares for i in share] == list(range(count))
    assert all(share.start % batch == 0 for share in shares if share)
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= batch


def test_two_processes_write_what_one_process_writes(photos, tmp_path, ckpt):
    one, two = tmp_path / "one", tmp_path / "two"
    single = depthda("predict", photos, "-o", one, "--checkpoint", ckpt, "--depth-format", "npy")
    assert single.returncode == 0, single.stderr
    split = depthda("predict", photos, "-o", two, "--checkpoint", ckpt, "--depth-format", "npy", ranks=2)
    assert split.returncode == 0, split.stderr
    for a, b in ((one, two), (tmp_path / "one_depth", tmp_path / "two_depth")):
        expected = files(a)
        assert len(expected) == 6
        got = files(b)
        assert got.keys() == expected.keys()
        for name in expected:
            assert got[name] == expected[name], name
    # Rank 0 reports the totals, once.
    assert split.stdout.count("skipped 1 non-image file") == 1
    assert split.stdout.count("wrote 6 images to") == 1 and split.stdout.count("wrote depth (npy)") == 1
    assert not depthda_errors(split.stderr)
    # The staging folders of both processes are gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "one_depth", "photos", "two", "two_depth"]


def test_a_failing_process_fails_the_run_and_leaves_the_old_output(photos, tmp_path, ckpt):
    # The last frame of rank 1's share: rank 0's share succeeds, and rank 1's error has to reach
    # rank 0, which reports it and drops its complete staging folders.
    broken = "kitti/0000000002.png"
    (photos / broken).write_bytes(b"not a png")
    out = tmp_path / "out"
    (out / "kitti").mkdir(parents=True)
    (out / "kitti" / "0000000002.png").write_bytes(b"old colour")
    (tmp_path / "out_depth").mkdir()
    (tmp_path / "out_depth" / "1.npy").write_bytes(b"old depth")
    before = {"out": files(out), "out_depth": files(tmp_path / "out_depth")}

    r = depthda("predict", photos, "-o", out, "--checkpoint", ckpt, "--depth-format", "npy", ranks=2)
    assert r.returncode != 0
    errors = depthda_errors(r.stderr)
    assert len(errors) == 1 and errors[0].startswith("depthda: error: cannot decode image"), r.stderr[-3000:]
    assert broken in errors[0]
    assert {"out": files(out), "out_depth": files(tmp_path / "out_depth")} == before
    # Nothing half-written beside them either: every process removed its staging folders.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out_depth", "photos"]


def test_a_staging_folder_changed_mid_run_is_never_swapped_in(photos, tmp_path, ckpt):
    """The rule of one process (depthda.infer.checks.check_staged): before rank 0 renames its
    staging folder into place it counts the files against the planned outputs, so a staging
    folder another process wrote into during the run is not reported complete."""
    import threading
    import time

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_bytes(b"an earlier run")
    done, seen = threading.Event(), set()

    def write_into_staging():
        while not done.is_set():
            for p in tmp_path.iterdir():
                if p.name.startswith(".out.depthda-") and p.is_dir() and p not in seen:
                    seen.add(p)
                    with contextlib.suppress(OSError):
                        (p / "stray.png").write_bytes(b"not ours")
            time.sleep(0.01)

    thread = threading.Thread(target=write_into_staging)
    thread.start()
    try:
        r = depthda("predict", photos, "-o", out, "--checkpoint", ckpt, ranks=2)
    finally:
        done.set()
        thread.join()
    assert seen, "the staging folders were never seen"
    assert r.returncode != 0
    errors = depthda_errors(r.stderr)
    assert len(errors) == 1 and "holds 7 of the 6 files" in errors[0], r.stderr[-3000:]
    assert files(out) == {"old.png": b"an earlier run"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]
