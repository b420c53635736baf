"""The paper preset end to end at its real size (256×1024) on CPU, as a multi-GPU user runs it:
both stages under torchrun with 2 gloo ranks (stage 1 stopped after one step and resumed for the
second; stage 2 one step: its exact resume under torchrun is test_ddp's, at a small size), then the
two runs exported as one graph and the pipeline run on a full KITTI frame (375×1242).

Nothing here is scaled down but the step count and the data: the networks are pix2pix's unet_256
and CycleGAN's resnet_9blocks, the views are whole frames resized to 256×1024, the critic takes a
fresh batch per step and the weights start from N(0, 0.02), as the preset says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthda.infer.pipeline import DepthPipeline
from train_fixtures import make_synthia

# Whole training runs (the quick loop leaves them out; CI runs them).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KITTI = REPO / "data" / "kitti" / "raw" / "2011_09_26" / "2011_09_26_drive_0023_sync" / "image_02" / "data"
PAPER_EXAMPLES = REPO / "tests" / "data" / "paper_examples"  # real frames; drive 0023 is an Eigen test drive
COMMON = ["--size", "256x1024", "--preset", "paper", "--batch-size", "1", "--num-workers", "0",
          "--checkpoint-every", "1", "--val-every", "1000", "--no-progress", "--device", "cpu"]


def depthda(*argv: str, ranks: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
              if ranks > 1 else [sys.executable])
    res = subprocess.run([*launch, "-m", "depthda", *argv], capture_output=True, text=True, env=env, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    synthia = make_synthia(root / "synthia", count=6, size=(96, 320))
    depth, style = root / "depth", root / "style"
    data = ["--data-root", str(synthia), "--out", str(depth), "--steps", "2", *COMMON]
    depthda("train-stage1", *data, "--stop-at", "1", ranks=2)
    assert json.loads((depth / "config.json").read_text())["step"] == 1
    depthda("train-stage1", *data, "--resume", ranks=2)
    assert json.loads((depth / "config.json").read_text())["step"] == 2
    depthda("train-stage2", "--real", str(PAPER_EXAMPLES), "--synthetic", str(synthia), "--out", str(style),
            "--steps", "1", *COMMON, ranks=2)
    assert json.loads((style / "config.json").read_text())["step"] == 1
    return root


def test_paper_runs_record_the_paper_recipe(trained):
    depth = json.loads((trained / "depth" / "config.json").read_text())
    assert depth["preset"] == "paper" and depth["size"] == [256, 1024] and depth["resize"] == "stretch"
    assert depth["arch_args"]["levels"] == 8  # pix2pix unet_256
    train = json.loads((trained / "depth" / "train_config.json").read_text())
    assert train["view"] == "whole" and train["fresh_critic_batches"] is True and train["init"] == "normal"


def test_paper_pipeline_on_a_full_kitti_frame_and_exported(trained, tmp_path):
    frame = cv2.imread(str(KITTI / "0000000003.png"))[..., ::-1].copy()
    assert frame.shape == (375, 1242, 3)
    pipe = DepthPipeline.from_checkpoint(style=trained / "style", depth=trained / "depth", device="cpu")
    hn, wn, hp, wp = pipe.working_size(375, 1242)
    assert (hp, wp) == (256, 1024) and (hp * wp - hn * wn) / (hp * wp) <= 1 / 8
    depth = pipe(frame)
    assert depth.shape == (375, 1242) and np.isfinite(depth).all() and (depth > 0).all()

    out = tmp_path / "frame_depth.png"
    depthda("predict", str(KITTI / "0000000003.png"), "-o", str(out), "--style", str(trained / "style"),
            "--depth", str(trained / "depth"), "--depth-format", "npy", "--device", "cpu")
    written = np.load(tmp_path / "frame_depth_depth.npy")
    np.testing.assert_allclose(written, depth, rtol=1e-3, atol=1e-3)

    graph = tmp_path / "paper.pt"
    depthda("export", "--format", "torchscript", "-o", str(graph), "--style", str(trained / "style"),
            "--depth", str(trained / "depth"), "--size", "375x1242")
    import torch
    module = torch.jit.load(str(graph))
    with torch.no_grad():
        exported = module(torch.from_numpy(frame).permute(2, 0, 1)[None])[0].numpy()
    assert exported.shape == (375, 1242)
    np.testing.assert_allclose(exported, depth, rtol=2e-2, atol=1e-2)
