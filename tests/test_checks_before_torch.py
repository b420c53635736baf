"""Issue 24: a bad argument or path is refused before the heavy imports (torch, Gradio), which take
seconds. Each case runs the CLI in a fresh interpreter and then reports which of those modules
were imported: the refusal must be one `depthda: error:` line, exit 1, with neither loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "dashcam_3s.mp4"

# Runs the CLI in-process (as `python -m depthda` does), then says what it imported.
PROBE = """
import json, sys
from depthda.cli import run
code = run(sys.argv[1:])
print(json.dumps({"code": code, "heavy": [m for m in ("torch", "gradio", "onnxruntime") if m in sys.modules]}))
"""

# (id, arguments, a phrase the error line holds)
CASES = [
    ("predict-missing-input", ["predict", "missing.jpg", "-o", "x.png"], "input not found"),
    ("predict-batch-size-0", ["predict", "img.jpg", "-o", "x.png", "--batch-size", "0"], "--batch-size"),
    ("predict-focal-0", ["predict", "img.jpg", "-o", "x.png", "--focal", "0"], "focal length"),
    ("predict-missing-checkpoint", ["predict", "img.jpg", "-o", "x.png", "--checkpoint", "missing"],
     "checkpoint folder not found"),
    ("predict-cloud-stride-0", ["predict", "img.jpg", "-o", "x.ply", "--stride", "0"], "--stride"),
    ("predict-over-input", ["predict", "img.jpg", "-o", "img.jpg"], "would overwrite the input"),
    ("eval-video-missing", ["eval", "video", "missing.mp4"], "input not found"),
    ("eval-video-frames-1", ["eval", "video", "clip.mp4", "--frames", "1"], "--frames"),
    ("eval-video-focal-nan", ["eval", "video", "clip.mp4", "--focal", "nan"], "focal length"),
    ("eval-row-prior-shift", ["eval", "row-prior", "img.jpg", "--shift", "5"], "--shift"),
    ("eval-row-prior-checkpoint", ["eval", "row-prior", "img.jpg", "--checkpoint", "missing"],
     "checkpoint folder not found"),
    ("eval-kitti-min-depth-0", ["eval", "kitti", "--min-depth", "0"], "min-depth"),
    ("bench-frames-0", ["bench", "clip.mp4", "--frames", "0"], "--frames"),
    ("bench-batch-size-0", ["bench", "clip.mp4", "--batch-size", "0"], "--batch-size"),
    ("bench-not-a-video", ["bench", "img.jpg"], "not a video"),
    ("bench-data-samples-0", ["bench", "data", "--samples", "0"], "--samples"),
    ("bench-data-missing-root", ["bench", "data", "--data-root", "missing"], "not found"),
    ("export-huge-size", ["export", "--format", "onnx", "-o", "x.onnx", "--size", "100000x100000"], "needs about"),
    ("export-missing-checkpoint", ["export", "--format", "torchscript", "-o", "x.pt", "--checkpoint", "missing"],
     "checkpoint folder not found"),
    ("synth-count-0", ["synth", "--out", "s", "--count", "0"], "--count"),
    ("synth-unknown-profile", ["synth", "--out", "s", "--profile", "nope"], "--profile"),
    ("synth-huge-size", ["synth", "--out", "s", "--size", "100000x100000"], "needs about"),
    ("prepare-missing-root", ["data", "prepare", "missing", "--out", "q"], "not found"),
    ("prepare-workers-0", ["data", "prepare", "missing", "--out", "q", "--workers", "0"], "--workers"),
    ("demo-port-0", ["demo", "--port", "0"], "--port"),
    ("demo-port-huge", ["demo", "--port", "70000"], "--port"),
    ("demo-max-frames-0", ["demo", "--max-frames", "0"], "--max-frames"),
    ("demo-missing-checkpoint", ["demo", "--checkpoint", "missing"], "checkpoint folder not found"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("before_torch")
    cv2.imwrite(str(w / "img.jpg"), np.full((16, 24, 3), 90, np.uint8))
    shutil.copy(SAMPLE, w / "clip.mp4")
    return w


@pytest.mark.slow
@pytest.mark.parametrize("args, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_run_is_refused_before_torch_is_imported(folder, args, needle):
    r = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=folder, capture_output=True, text=True, timeout=120)
    report = json.loads(r.stdout.strip().splitlines()[-1])
    lines = r.stderr.strip().splitlines()
    assert report["code"] == 1 and len(lines) == 1 and lines[0].startswith("depthda: error: "), r.stderr
    assert needle in lines[0], lines
    assert report["heavy"] == [], f"imported {report['heavy']} before refusing"
    assert sorted(p.name for p in folder.iterdir()) == ["clip.mp4", "img.jpg"]
