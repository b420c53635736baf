"""The depth model's resize policy (config.json "resize"): how every inference path fits a frame
to the networks. "stretch" resizes straight to the training size (the authors' 1024×256),
"keep_aspect" keeps the frame's shape at the training width and pads to the stride."""

import json
import re
import shutil

import numpy as np
import pytest
import torch

from depthda.bench.naive import naive_run
from depthda.bench.run import read_frames
from depthda.errors import DepthdaError
from depthda.infer.export import export_pipeline, sample_input
from depthda.infer.pipeline import DepthPipeline
from depthda.models import build_model
from depthda.models.configs import depth_model_config, style_model_config
from depthda.models.weights import load_exported
from depthda.paths import sample_video

from conftest import PIPELINE_SIZE as SIZE

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]

KITTI_FRAME = (375, 1242)  # KITTI raw image_02 frames
PRESET_SIZES = {"paper": (256, 1024), "small": (128, 416)}


def random_pipeline(preset: str, **depth_fields) -> DepthPipeline:
    """A pipeline of randomly initialised networks of a preset at its training size, as its
    config.json describes them (what random_pipeline.init_checkpoint writes, without the files)."""
    size = PRESET_SIZES[preset]
    depth_config = depth_model_config(preset, size=size, focal_px=500.0, **depth_fields)
    style_config = style_model_config(preset, size=size)
    return DepthPipeline(build_model(depth_config).eval(), depth_config,
                         build_model(style_config).eval(), style_config)


def padded_fraction(pipe: DepthPipeline, height: int, width: int) -> float:
    """The fraction of the network input that is padding for a height×width frame, measured on
    what the numpy path (predict, eval, video) and the tensor path (export) hand the networks."""
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    prepared = pipe.prepare(frame)
    x, hn, wn = pipe.network_input(torch.from_numpy(frame).permute(2, 0, 1)[None])
    assert tuple(x.shape[-2:]) == prepared.shape[:2]
    assert (hn, wn) == pipe.working_size(height, width)[:2]
    # The padding replicates the last image row: rows below hn repeat row hn - 1.
    assert (prepared[hn:] == prepared[hn - 1:hn]).all()
    return 1 - hn * wn / (prepared.shape[0] * prepared.shape[1])


@pytest.mark.parametrize("preset", ["paper", "small"])
def test_a_kitti_frame_is_at_most_an_eighth_padding_at_each_preset(preset):
    pipe = random_pipeline(preset)  # the preset's own policy, as training exports it
    assert pipe.resize_policy == {"paper": "stretch", "small": "keep_aspect"}[preset]
    assert padded_fraction(pipe, *KITTI_FRAME) <= 1 / 8


def test_keeping_the_aspect_at_the_paper_stride_would_be_mostly_padding():
    # Why the paper preset stretches: 375x1242 at 1024 wide is 309 rows, padded to 512 (stride 256).
    pipe = random_pipeline("paper", resize="keep_aspect")
    assert pipe.working_size(*KITTI_FRAME) == (309, 1024, 512, 1024)
    assert padded_fraction(pipe, *KITTI_FRAME) == pytest.approx(1 - 309 / 512)


@pytest.fixture(scope="module")
def stretch_ckpt(tmp_path_factory, ckpt):
    """The small random checkpoint with its depth config asking for "stretch"."""
    dst = tmp_path_factory.mktemp("stretch") / "ckpt"
    shutil.copytree(ckpt, dst)
    path = dst / "depth" / "config.json"
    config = json.loads(path.read_text())
    assert config["resize"] == "keep_aspect"  # what random small checkpoints record
    config["resize"] = "stretch"
    path.write_text(json.dumps(config))
    return dst


@pytest.fixture(scope="module")
def stretch(stretch_ckpt):
    return DepthPipeline.from_checkpoint(stretch_ckpt, device="cpu")


@pytest.mark.parametrize("shape", [(352, 1216), (540, 960), (100, 60), (1, 1), (64, 128)])
def test_stretch_runs_at_the_training_size_and_the_paths_agree(stretch, shape):
    h, w = shape
    assert stretch.working_size(h, w) == (*SIZE, *SIZE)
    frame = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame[: h // 2] //= 3  # some structure, so that a misplaced resize shows
    depth = stretch(frame)
    assert depth.shape == (h, w) and np.isfinite(depth).all()
    x = torch.from_numpy(frame).permute(2, 0, 1)[None]
    # The networks' inputs agree to one grey level (cv2's fixed-point rounding); (100, 60): rows
    # shrink while columns grow, each axis with its own filter on both paths.
    net_in, _, _ = stretch.network_input(x)
    prepared = torch.from_numpy(stretch.prepare(frame)).permute(2, 0, 1)[None].float() / 127.5 - 1
    assert (net_in - prepared).abs().max() <= 1.01 / 127.5
    with torch.inference_mode():
        from_tensor = stretch(x)[0].numpy()
    assert np.abs(from_tensor - depth).max() < 0.02 * depth.max()


def test_stretch_focal_scaling_is_the_horizontal_ratio(stretch, pipe):
    frame = np.random.default_rng(3).integers(0, 256, (375, 1242, 3), dtype=np.uint8)
    base = stretch(frame)
    focal = 900.0
    ratio = (focal * SIZE[1] / 1242) / stretch.train_focal_px
    assert stretch.focal_scale(focal, 1242) == pipe.focal_scale(focal, 1242) == pytest.approx(ratio)
    assert np.allclose(stretch(frame, focal_px=focal), base * ratio, rtol=1e-6)


def test_stretch_differs_from_keep_aspect(stretch, pipe):
    frame = np.random.default_rng(4).integers(0, 256, (375, 1242, 3), dtype=np.uint8)
    assert pipe.working_size(375, 1242)[:2] == (39, 128) and stretch.working_size(375, 1242)[:2] == SIZE
    assert np.abs(stretch(frame) - pipe(frame)).mean() > 1e-3


@pytest.mark.parametrize("resize, message", [
    (None, '"resize" is missing; add "resize": "keep_aspect"'),
    ("squash", "resize must be one of keep_aspect, stretch, got 'squash'"),
])
def test_a_depth_config_without_a_known_policy_is_one_line(tmp_path, ckpt, resize, message):
    dst = tmp_path / "bad"
    shutil.copytree(ckpt, dst)
    path = dst / "depth" / "config.json"
    config = json.loads(path.read_text())
    if resize is None:
        del config["resize"]
    else:
        config["resize"] = resize
    path.write_text(json.dumps(config))
    with pytest.raises(DepthdaError, match=re.escape(message)) as info:
        load_exported(dst / "depth")
    assert "\n" not in str(info.value) and "config.json" in str(info.value)
    with pytest.raises(DepthdaError, match="resize"):
        DepthPipeline.from_checkpoint(dst, device="cpu")


def test_the_shipped_model_keeps_a_kitti_frames_aspect():
    # As it always has: 126 rows at 416 wide, padded to the stride (docs/inference.md, "Working resolution").
    shipped = DepthPipeline.from_checkpoint(device="cpu", engine="torch")
    assert shipped.resize_policy == "keep_aspect" and shipped.working_size(*KITTI_FRAME) == (126, 416, 128, 416)


@pytest.mark.slow
def test_export_under_stretch(tmp_path, stretch_ckpt, stretch):
    # Default size: the training size, where the graph's resize is the identity.
    r = export_pipeline("torchscript", tmp_path / "default.pt", checkpoint=stretch_ckpt)
    assert r.size == SIZE and r.max_abs_diff < 1e-4
    # Another size is stretched to the training size inside the graph and back.
    r = export_pipeline("torchscript", tmp_path / "kitti.pt", checkpoint=stretch_ckpt, size=(75, 248))
    graph = torch.jit.load(str(tmp_path / "kitti.pt"))
    x = sample_input((75, 248), "uint8", batch=2)
    with torch.inference_mode():
        got, ref = graph(x).numpy(), stretch(x).numpy()
    assert got.shape == (2, 75, 248) and np.abs(got - ref).max() < 1e-3 * ref.max()
    frame = x[0].permute(1, 2, 0).numpy()
    assert np.abs(got[0] - stretch(frame)).max() < 0.02 * ref.max()


def test_bench_naive_loop_follows_the_policy(tmp_path, stretch_ckpt, stretch):
    frames, _ = read_frames(sample_video(), 2)
    _, depths = naive_run(sample_video(), 2, stretch_ckpt / "style", stretch_ckpt / "depth", tmp_path / "naive.avi",
                          1.0, 80.0, "magma")
    plain = DepthPipeline.from_checkpoint(stretch_ckpt, device="cpu", engine="torch")
    for frame, naive in zip(frames, depths):
        ref = plain(frame)
        assert naive.shape == frame.shape[:2]
        assert np.abs(naive - ref).max() < 1e-3 * ref.max()
