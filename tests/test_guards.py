"""The probe of issue 24 in the suite: every command, pointed at its own inputs (or at two outputs
naming one file), refuses in one `depthda: error:` line with exit 1 before any work, and every
file of the user's is byte-identical afterwards (sha256 before and after).

New commands (a demo server, point-cloud output, a new engine) join CASES. Most cases run through
`depthda.cli.run`, the function `python -m depthda` calls, so each costs no torch import; a few
representative ones run as real processes to check what a shell sees.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthda.cli import run

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "dashcam_3s.mp4"
RAW = REPO / "data" / "kitti" / "raw"
TINY_SPLIT = REPO / "data" / "splits" / "kitti_tiny_test_files.txt"
DRIVE = "2011_09_26/2011_09_26_drive_0023_sync"
GT_PNG = f"raw/{DRIVE}/proj_depth/groundtruth/image_02/0000000000.png"


@pytest.fixture(scope="module")
def world(tmp_path_factory, ckpt) -> Path:
    """A user's folder: KITTI raw data, a split file, a clip, a pipeline checkpoint, a training
    run, a `depthda synth` dataset, a folder of photos, a folder of someone's files."""
    from depthda.synth.writer import synthesize

    w = tmp_path_factory.mktemp("world")
    shutil.copytree(RAW, w / "raw")
    shutil.copy(TINY_SPLIT, w / "split.txt")
    shutil.copy(SAMPLE, w / "clip.mp4")
    shutil.copytree(ckpt, w / "ck")
    shutil.copytree(ckpt / "depth", w / "run")
    synthesize(w / "synth", 2, (32, 64), progress=False, device="cpu")
    photos = w / "photos"
    photos.mkdir()
    frame = np.full((16, 24, 3), 90, np.uint8)
    cv2.imwrite(str(photos / "a.jpg"), frame)
    cv2.imwrite(str(photos / "a.png"), frame)
    mine = w / "mine"
    mine.mkdir()
    shutil.copy(SAMPLE, mine / "holiday.mp4")
    (mine / "notes.txt").write_text("mine")
    (w / "R.txt").write_text("an earlier report")
    (w / "out.mp4").mkdir()  # a folder where a video output is asked for, beside an earlier depth folder
    (w / "out_depth").mkdir()
    (w / "out_depth" / "000000.npy").write_bytes(b"old")
    (w / "cfgrun").mkdir()  # settings kept under the name a run writes its own settings to
    cv2.imwrite(str(w / "img.jpg"), np.full((48, 80, 3), 90, np.uint8))
    cv2.imwrite(str(w / "thin.png"), np.full((2, 80, 3), 90, np.uint8))
    (w / "afile").write_text("a file where a folder goes")
    (w / "cfgrun" / "train_config.json").write_text('{"preset": "small", "steps": 1}')
    return w


def sha256s(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


EVAL = ["eval", "kitti", "--data-root", "{w}/raw", "--split-file", "{w}/split.txt", "--gt", "annotated",
        "--baseline", "constant"]

# (id, arguments with {w} for the user's folder, a phrase the error line holds)
CASES = [
    ("eval-json-over-split", [*EVAL, "--json", "{w}/split.txt"], "would overwrite the input"),
    ("eval-json-over-gt-png", [*EVAL, "--json", "{w}/" + GT_PNG], "inside the input folder"),
    ("eval-csv-over-split", [*EVAL, "--per-frame-csv", "{w}/split.txt"], "would overwrite the input"),
    ("eval-json-and-csv-one-file", [*EVAL, "--json", "{w}/R.txt", "--per-frame-csv", "{w}/raw/../R.txt"],
     "two outputs name the same file"),
    ("eval-video-json-over-clip", ["eval", "video", "{w}/clip.mp4", "--checkpoint", "{w}/ck", "--json",
                                   "{w}/clip.mp4"], "would overwrite the input"),
    ("eval-video-plot-over-clip", ["eval", "video", "{w}/clip.mp4", "--checkpoint", "{w}/ck", "--plot",
                                   "{w}/./clip.mp4"], "would overwrite the input"),
    ("bench-json-over-clip", ["bench", "{w}/clip.mp4", "--checkpoint", "{w}/ck", "--json", "{w}/clip.mp4"],
     "would overwrite the input"),
    ("export-over-depth-weights", ["export", "--format", "torchscript", "--checkpoint", "{w}/ck", "-o",
                                   "{w}/ck/depth/model.safetensors"], "would overwrite the input"),
    ("export-over-style-config", ["export", "--format", "torchscript", "--checkpoint", "{w}/ck", "-o",
                                  "{w}/ck/style/config.json"], "would overwrite the input"),
    ("export-gt-over-split", ["data", "export-gt", "--data-root", "{w}/raw", "--split-file", "{w}/split.txt",
                              "--gt", "annotated", "-o", "{w}/split.txt"], "would overwrite the input"),
    ("export-gt-over-gt-png", ["data", "export-gt", "--data-root", "{w}/raw", "--split-file", "{w}/split.txt",
                               "--gt", "annotated", "-o", "{w}/" + GT_PNG], "inside the input folder"),
    ("train-out-is-init-from", ["train-stage1", "--data-root", "{w}/synth", "--init-from", "{w}/run", "--out",
                                "{w}/run", "--preset", "small", "--steps", "1"], "would overwrite the input"),
    ("train-out-is-data-root", ["train-stage1", "--data-root", "{w}/synth", "--out", "{w}/synth", "--preset",
                                "small", "--steps", "1"], "inside the input folder"),
    ("synth-overwrite-foreign-folder", ["synth", "--out", "{w}/mine", "--count", "1", "--size", "32x64",
                                        "--overwrite"], "--overwrite replaces only"),
    ("prepare-out-inside-src", ["data", "prepare", "{w}/synth", "--out", "{w}/synth/RGB/copy"],
     "inside the input folder"),
    ("prepare-overwrite-foreign-folder", ["data", "prepare", "{w}/synth", "--out", "{w}/mine", "--overwrite"],
     "--overwrite replaces only"),
    ("predict-two-inputs-one-output", ["predict", "{w}/photos", "-o", "{w}/photos_out", "--checkpoint", "{w}/ck"],
     "would both be written to"),
    ("predict-over-input", ["predict", "{w}/clip.mp4", "-o", "{w}/clip.mp4", "--checkpoint", "{w}/ck"],
     "would overwrite the input"),
    ("predict-video-output-is-a-folder", ["predict", "{w}/clip.mp4", "-o", "{w}/out.mp4", "--frames", "2",
                                          "--depth-format", "npy", "--checkpoint", "{w}/ck"], "is an existing folder"),
    ("train-config-is-a-run-file", ["train-stage1", "--data-root", "{w}/synth", "--config",
                                    "{w}/cfgrun/train_config.json", "--out", "{w}/cfgrun"], "would overwrite the input"),
]


def _args(template: list[str], w: Path) -> list[str]:
    return [a.replace("{w}", str(w)) for a in template]


@pytest.mark.parametrize("args, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_command_refuses_to_overwrite_its_inputs(world, capsys, args, needle):
    before = sha256s(world)
    assert run(_args(args, world)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: ") and needle in err[0], err
    assert sha256s(world) == before


# A handful as real processes: exit code and stderr exactly as a shell sees them.
PROCESS_CASES = ["eval-json-over-gt-png", "export-over-depth-weights", "synth-overwrite-foreign-folder"]


@pytest.mark.slow
@pytest.mark.parametrize("name", PROCESS_CASES)
def test_refusals_as_real_processes(world, name):
    _, args, needle = next(c for c in CASES if c[0] == name)
    before = sha256s(world)
    r = subprocess.run([sys.executable, "-m", "depthda", *_args(args, world)], capture_output=True, text=True,
                       timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("depthda: error: ") and needle in lines[0], r.stderr
    assert sha256s(world) == before


def _folder_run(tmp_path: Path, count: int) -> tuple[Path, Path]:
    src = tmp_path / "in"
    src.mkdir()
    frame = np.full((24, 40, 3), 120, np.uint8)
    for i in range(count):
        cv2.imwrite(str(src / f"{i:03d}.png"), frame)
    out = tmp_path / "out"
    for folder in (out, tmp_path / "out_depth"):
        folder.mkdir()
        (folder / "old.png").write_bytes(b"an earlier run")
    return src, out


def test_a_failing_folder_prediction_keeps_both_earlier_output_folders(tmp_path, ckpt, capsys):
    src, out = _folder_run(tmp_path, 6)
    (src / "999.png").write_bytes(b"not a png")  # the last image fails after the others were written
    before = sha256s(tmp_path)
    assert run(["predict", str(src), "-o", str(out), "--depth-format", "png16", "--checkpoint", str(ckpt)]) == 1
    assert "999.png" in capsys.readouterr().err
    assert sha256s(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "out_depth"]


def test_a_staging_folder_removed_mid_run_is_never_swapped_in(tmp_path, ckpt, capsys, monkeypatch):
    """The issue's `rm -rf` of the output's parent mid-run: writers re-create the staging folder
    with only the later files; the count before the swap catches it. The folder goes right after
    the third real write (a thread racing the run could miss it when the run finishes first)."""
    from depthda.infer import local_predict

    src, out = _folder_run(tmp_path, 12)
    before = sha256s(tmp_path)
    real_write, written = local_predict.write_rgb, []

    def write_then_remove(path, rgb):
        real_write(path, rgb)
        written.append(path)
        if len(written) == 3:
            shutil.rmtree(Path(path).parent)

    monkeypatch.setattr(local_predict, "write_rgb", write_then_remove)
    code = run(["predict", str(src), "-o", str(out), "--checkpoint", str(ckpt)])
    # Which check fires depends on the writer: one that finds the folder gone ("could not write"),
    # or the count before the swap ("holds"). Either way: one line, nothing swapped in.
    err = capsys.readouterr().err
    assert len(written) >= 3
    assert code == 1 and err.startswith("depthda: error:") and err.count("\n") == 1, err
    assert "holds" in err or "could not write" in err, err
    assert sha256s(tmp_path) == before


# An input that exists but cannot be read is a user error (exit 1, one line), not a usage error;
# a missing required argument stays a usage error (exit 2). Root reads any file, so as root the
# CLI runs without the capabilities that let it (setpriv drops CAP_DAC_OVERRIDE/READ_SEARCH).
UNREADABLE_CASES = [
    ("predict-image", ["predict", "{w}/img.jpg", "-o", "{w}/out.png"], 1, "cannot read"),
    ("predict-video", ["predict", "{w}/clip.mp4", "-o", "{w}/out.mp4"], 1, "cannot read"),
    ("predict-calib", ["predict", "{w}/ok.jpg", "-o", "{w}/out.png", "--calib", "{w}/calib.txt"], 1,
     "Permission denied"),
    ("eval-video", ["eval", "video", "{w}/clip.mp4"], 1, "cannot read"),
    ("eval-row-prior", ["eval", "row-prior", "{w}/img.jpg"], 1, "Permission denied"),
    ("bench", ["bench", "{w}/clip.mp4"], 1, "cannot read"),
    ("eval-kitti-split", ["eval", "kitti", "--split-file", "{w}/split.txt", "--data-root", "{w}",
                          "--baseline", "constant"], 1, "Permission denied"),
    ("missing-argument-is-usage", ["predict"], 2, "Missing argument"),
    ("missing-option-is-usage", ["predict", "{w}/img.jpg"], 2, "Missing option"),
]


@pytest.fixture(scope="module")
def unreadable(tmp_path_factory) -> tuple[Path, list[str]]:
    w = tmp_path_factory.mktemp("unreadable")
    frame = np.full((16, 24, 3), 90, np.uint8)
    cv2.imwrite(str(w / "img.jpg"), frame)
    cv2.imwrite(str(w / "ok.jpg"), frame)
    shutil.copy(SAMPLE, w / "clip.mp4")
    (w / "calib.txt").write_text("P_rect_02: 700 0 600 0 0 700 180 0 0 0 1 0\n")
    shutil.copy(TINY_SPLIT, w / "split.txt")
    for name in ("img.jpg", "clip.mp4", "calib.txt", "split.txt"):
        (w / name).chmod(0)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads every file, and setpriv (util-linux) is not here to drop that")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", "--bounding-set", caps, f"--inh-caps={caps}"]
    if subprocess.run([*prefix, "cat", str(w / "img.jpg")], capture_output=True).returncode == 0:
        pytest.skip("a file without read permission is readable here")
    return w, prefix


@pytest.mark.parametrize("args, code, needle", [c[1:] for c in UNREADABLE_CASES], ids=[c[0] for c in UNREADABLE_CASES])
def test_an_unreadable_input_is_exit_1_and_a_usage_error_exit_2(unreadable, args, code, needle):
    w, prefix = unreadable
    r = subprocess.run([*prefix, sys.executable, "-m", "depthda", *_args(args, w)], capture_output=True, text=True,
                       timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code and needle in r.stderr, r.stderr
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("depthda: error: "), r.stderr
    assert sorted(p.name for p in w.iterdir()) == ["calib.txt", "clip.mp4", "img.jpg", "ok.jpg", "split.txt"]


def test_a_pipe_named_as_an_image_is_refused_without_waiting_for_a_writer(tmp_path, capsys):
    os.mkfifo(tmp_path / "cam.jpg")
    assert run(["predict", str(tmp_path / "cam.jpg"), "-o", str(tmp_path / "out.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a regular file" in err[0], err


# The second probe (issue 24: "the next probe uses cases this issue does not list"): the newer
# commands and options. (id, arguments, $DEPTHDA_CACHE or None, a phrase the error line holds)
CK = ["--checkpoint", "{w}/ck"]
ORT = ["predict", "{w}/img.jpg", "-o", "{w}/x.png", "--engine", "onnxruntime", *CK]
PROBE2_CASES = [
    ("demo-port-negative", ["demo", "--port", "-1"], None, "--port must be from 1 to 65535"),
    ("demo-port-huge", ["demo", "--port", "70000"], None, "--port must be from 1 to 65535"),
    ("demo-max-frames-negative", ["demo", "--max-frames", "-5"], None, "--max-frames must be at least 1"),
    ("demo-checkpoint-is-a-file", ["demo", "--checkpoint", "{w}/afile"], None, "checkpoint folder not found"),
    ("cloud-stride-negative", ["predict", "{w}/img.jpg", "-o", "{w}/x.ply", "--stride", "-1", *CK], None, "--stride"),
    ("cloud-stride-huge", ["predict", "{w}/img.jpg", "-o", "{w}/x.ply", "--stride", "1000000000", *CK], None,
     "--stride must be a whole number from 1 to 1000"),
    ("cloud-stride-overflow", ["predict", "{w}/img.jpg", "-o", "{w}/x.ply", "--stride", "99999999999999999999", *CK],
     None, "--stride must be a whole number from 1 to 1000"),
    ("cloud-max-depth-nan", ["predict", "{w}/img.jpg", "-o", "{w}/x.ply", "--max-depth", "nan", *CK], None,
     "--max-depth"),
    ("cloud-max-depth-negative", ["predict", "{w}/img.jpg", "-o", "{w}/x.glb", "--max-depth", "-1", *CK], None,
     "--max-depth"),
    ("cloud-format-not-the-suffix", ["predict", "{w}/img.jpg", "-o", "{w}/x.ply", "--cloud", "glb", *CK], None,
     "name the output .glb"),
    ("cloud-side-by-side", ["predict", "{w}/img.jpg", "-o", "{w}/x.glb", "--side-by-side", *CK], None,
     "without --side-by-side"),
    ("cloud-of-a-video", ["predict", "{w}/clip.mp4", "-o", "{w}/x.mp4", "--cloud", "ply", *CK], None,
     "point clouds are made from images"),
    ("ort-cache-is-a-file", ORT, "{w}/afile", "it is a file, not a folder"),
    ("ort-cache-under-a-file", ORT, "{w}/afile/onnx", "cannot keep ONNX Runtime's graphs"),
    ("row-prior-shift-0", ["eval", "row-prior", "{w}/img.jpg", "--shift", "0", *CK], None, "--shift"),
    ("row-prior-shift-half", ["eval", "row-prior", "{w}/img.jpg", "--shift", "0.5", *CK], None, "--shift"),
    ("row-prior-shift-nan", ["eval", "row-prior", "{w}/img.jpg", "--shift", "nan", *CK], None, "--shift"),
    ("row-prior-shift-inf", ["eval", "row-prior", "{w}/img.jpg", "--shift", "inf", *CK], None, "--shift"),
    ("row-prior-image-too-short", ["eval", "row-prior", "{w}/thin.png", *CK], None, "too short"),
    ("synth-profile-unknown", ["synth", "--out", "{w}/s", "--profile", "nope"], None, "unknown --profile"),
    ("synth-profile-empty", ["synth", "--out", "{w}/s", "--profile", ""], None, "unknown --profile"),
    ("synth-count-overflow", ["synth", "--out", "{w}/s", "--count", "99999999999999999999"], None, "--count"),
    ("train-arch-unknown", ["train-stage1", "--data-root", "{w}/synth", "--out", "{w}/r", "--arch", "nope"], None,
     "arch must be one of"),
    ("eval-video-plot-not-png", ["eval", "video", "{w}/clip.mp4", "--plot", "{w}/p.txt", *CK], None, "name it .png"),
]


@pytest.mark.parametrize("args, cache, needle", [c[1:] for c in PROBE2_CASES], ids=[c[0] for c in PROBE2_CASES])
def test_the_second_probe_is_refused_in_one_line(world, capsys, monkeypatch, args, cache, needle):
    if cache is not None:
        monkeypatch.setenv("DEPTHDA_CACHE", cache.replace("{w}", str(world)))
    before = sha256s(world)
    assert run(_args(args, world)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: ") and needle in err[0], err
    assert sha256s(world) == before
    assert not any(p.name in ("x.ply", "x.glb", "x.png", "x.mp4", "s", "r", "p.txt") for p in world.iterdir())


def test_a_corrupted_cached_graph_is_made_again_not_trusted(tmp_path, ckpt, monkeypatch):
    """A graph whose bytes changed on disk (here: 1000 words of its weights) still loads in ONNX
    Runtime and gives wrong depth; it must be rebuilt (same depth as a fresh cache)."""
    monkeypatch.setenv("DEPTHDA_CACHE", str(tmp_path / "cache"))
    frame = tmp_path / "img.png"
    cv2.imwrite(str(frame), np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8))

    def depth(name: str) -> np.ndarray:
        assert run(["predict", str(frame), "-o", str(tmp_path / f"{name}.png"), "--depth-format", "npy",
                    "--engine", "onnxruntime", "--checkpoint", str(ckpt)]) == 0
        return np.load(tmp_path / f"{name}_depth.npy")

    fresh = depth("fresh")
    (graph,) = (tmp_path / "cache").glob("*.onnx")
    data = bytearray(graph.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 4000, 4):
        data[i] ^= 0x55
    graph.write_bytes(bytes(data))
    np.testing.assert_array_equal(depth("again"), fresh)
