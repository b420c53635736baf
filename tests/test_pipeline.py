"""DepthPipeline: geometry, scale, the frame-parallel runner, checkpoints; colour LUT."""

import threading

import cv2
import numpy as np
import pytest
import torch

from depthda.infer.colorize import DepthColorizer, colorize_reference
from depthda.errors import DepthdaError
from depthda.infer.pipeline import DepthPipeline, resize_matrix
from depthda.infer.scheduling import FrameParallel, run_overlapped
from depthda.models.random_pipeline import init_checkpoint
from depthda.utils.images import read_rgb

from conftest import PIPELINE_SIZE as SIZE

pytestmark = [pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def frame(test_data):
    return read_rgb(test_data / "paper_examples" / "1.png")  # 352x1216 KITTI-like street


def test_random_pipeline_runs_at_input_resolution(pipe, frame):
    depth = pipe(frame)
    assert depth.shape == frame.shape[:2] and depth.dtype == np.float32
    p = pipe.depth_param
    assert np.isfinite(depth).all() and depth.min() >= p.min_depth * 0.999 and depth.max() <= p.max_depth * 1.001


def test_working_size_keeps_aspect_and_pads_to_stride(pipe):
    assert pipe.multiple == 32  # lcm(2**5 U-Net levels, 4)
    assert pipe.working_size(352, 1216) == (37, 128, 64, 128)
    assert pipe.working_size(540, 960) == (72, 128, 96, 128)
    with pytest.raises(DepthdaError, match="too tall"):
        pipe.working_size(100000, 10)


@pytest.mark.parametrize("shape", [(8, 8, 3), (1, 1, 3), (5, 7), (9, 13, 4),
                                   pytest.param((31, 3, 3), marks=pytest.mark.slow)])
def test_tiny_and_odd_images_work(pipe, shape):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    depth = pipe(img)
    assert depth.shape == shape[:2] and np.isfinite(depth).all()


def test_tensor_path_matches_numpy_path(pipe, frame):
    x = torch.from_numpy(frame).permute(2, 0, 1)[None]
    with torch.inference_mode():
        from_uint8 = pipe(x)
        from_float = pipe(x.float() / 255)
    assert from_uint8.shape == (1, *frame.shape[:2]) and from_float.shape == from_uint8.shape
    ref = pipe(frame)
    # Same resize (cv2's area filter as matrices) and rounding; left: cv2 vs torch bilinear upsampling.
    assert np.abs(from_uint8[0].numpy() - ref).max() < 0.02 * ref.max()
    assert np.isfinite(from_float.numpy()).all()


def test_resize_matrix_is_cv2_resize():
    img = np.random.default_rng(0).random((50, 70))
    for (h, w) in [(20, 30), (50, 70), (80, 100)]:
        interp = cv2.INTER_AREA if w < 70 else cv2.INTER_LINEAR
        ref = cv2.resize(img, (w, h), interpolation=interp)
        got = resize_matrix(50, h, interp).double().numpy() @ img @ resize_matrix(70, w, interp).double().numpy().T
        assert np.abs(got - ref).max() < 1e-5


def test_frame_parallel_equals_single_calls(pipe, frame):
    frames = [frame, frame[:, ::-1].copy(), frame[::-1].copy()]
    h, w = frame.shape[:2]
    prepared = np.stack([pipe.prepare(f) for f in frames])
    cv_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
    with FrameParallel(pipe, workers=2, threads_per_worker=1) as run:
        assert cv2.getNumThreads() == 1 and torch.get_num_threads() == 1
        together = run(prepared, h, w)
        # Queued frame by frame, several batches in flight, results in submission order.
        pending = [run.submit(prepared[i:i + 2], h, w) for i in (0, 1)]
        in_flight = [p.result() for p in pending]
    assert (cv2.getNumThreads(), torch.get_num_threads()) == (cv_threads, torch_threads)
    alone = np.concatenate([pipe.run_prepared(prepared[i:i + 1], h, w) for i in range(3)])
    assert np.abs(together - alone).max() < 1e-5 * alone.max()
    for i, got in zip((0, 1), in_flight):
        assert np.abs(got - alone[i:i + 2]).max() < 1e-5 * alone.max()


def test_frame_parallel_runs_only_inside_its_block(pipe, frame):
    run = FrameParallel(pipe, workers=2, threads_per_worker=1)
    threads = cv2.getNumThreads(), torch.get_num_threads()
    run.__exit__(None, None, None)  # never entered: nothing to stop, nothing to restore
    assert (cv2.getNumThreads(), torch.get_num_threads()) == threads
    prepared = pipe.prepare(frame)[None]
    with pytest.raises(RuntimeError, match="with"):
        run.submit(prepared, *frame.shape[:2])
    with run:
        first = run(prepared, *frame.shape[:2])
    with run:  # reusable once left
        assert np.array_equal(run(prepared, *frame.shape[:2]), first)
    assert (cv2.getNumThreads(), torch.get_num_threads()) == threads


def test_no_style_differs_from_style(ckpt, pipe, frame):
    no_style = DepthPipeline.from_checkpoint(ckpt, device="cpu", use_style=False)
    assert no_style.style is None
    assert np.abs(no_style(frame) - pipe(frame)).mean() > 1e-3


def test_focal_scaling_multiplies_depth_by_the_ratio(pipe, frame):
    w = frame.shape[1]
    f_train = pipe.train_focal_px
    assert f_train == pytest.approx(721.5377 * SIZE[1] / 1242)
    base = pipe(frame)
    # A camera with the training camera's field of view: factor 1.
    assert np.allclose(pipe(frame, focal_px=f_train * w / SIZE[1]), base, rtol=1e-6)
    focal = 1000.0
    ratio = (focal * SIZE[1] / w) / f_train
    assert np.allclose(pipe(frame, focal_px=focal), base * ratio, rtol=1e-6)
    with pytest.raises(DepthdaError, match="positive"):
        pipe(frame, focal_px=-5)


def test_checkpoint_errors_name_the_problem(tmp_path, ckpt):
    with pytest.raises(DepthdaError, match="checkpoint folder not found"):
        DepthPipeline.from_checkpoint(tmp_path / "nope")
    broken = tmp_path / "broken"
    init_checkpoint(broken, size=SIZE)
    (broken / "depth" / "model.safetensors").unlink()
    with pytest.raises(DepthdaError, match="missing weights file: .*depth/model.safetensors"):
        DepthPipeline.from_checkpoint(broken)
    (broken / "depth" / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DepthdaError, match="corrupt weights file .*depth/model.safetensors"):
        DepthPipeline.from_checkpoint(broken)
    (broken / "style" / "config.json").write_text("{not json")
    with pytest.raises(DepthdaError, match="corrupt model config .*style/config.json"):
        DepthPipeline.from_checkpoint(style=broken / "style", depth=ckpt / "depth")
    with pytest.raises(DepthdaError, match="--no-style"):
        DepthPipeline.from_checkpoint(depth=ckpt / "depth")
    with pytest.raises(DepthdaError, match="not both"):
        DepthPipeline.from_checkpoint(ckpt, depth=ckpt / "depth")
    # Swapped stages: a style model given as the depth model.
    with pytest.raises(DepthdaError, match="not a depth model"):
        DepthPipeline.from_checkpoint(style=ckpt / "style", depth=ckpt / "style")


def test_colour_lut_matches_matplotlib_and_puts_near_bright():
    rng = np.random.default_rng(0)
    depth = np.exp(rng.uniform(np.log(0.2), np.log(150), (120, 160))).astype(np.float32)
    depth[0, 0] = np.nan
    col = DepthColorizer(0.5, 80, "magma")
    fast, ref = col(depth), colorize_reference(depth, 0.5, 80, "magma")
    assert fast.shape == (120, 160, 3) and fast.dtype == np.uint8
    assert (fast != ref).any(-1).mean() < 1e-3  # float32 vs float64 at bin edges only
    idx = col.index(np.array([[0.5, 0.1, 80.0, 500.0, np.nan]], np.float32))
    assert idx.tolist() == [[255, 255, 0, 0, 0]]
    assert col.lut[255].sum() > col.lut[0].sum()  # near = bright end of magma
    with pytest.raises(DepthdaError, match="colormap"):
        DepthColorizer(1, 80, "no-such-map")
    with pytest.raises(DepthdaError, match="MIN < MAX"):
        DepthColorizer(80, 1)
    with pytest.raises(DepthdaError, match="MIN < MAX <= 1e"):  # a colour scale spanning 60 decades
        DepthColorizer(1e-30, 1e30)


def test_overlapped_runner_propagates_errors_and_ends_threads():
    before = threading.active_count()

    def boom(item):
        if item == 5:
            raise ValueError("bad item")
        return item

    with pytest.raises(DepthdaError, match="colour failed: ValueError: bad item"):
        run_overlapped(iter(range(100)), lambda x: x, [("colour", boom), ("encode", lambda x: None)], queue_size=2)

    def bad_source():
        yield 1
        raise DepthdaError("decoder broke")

    with pytest.raises(DepthdaError, match="decoder broke"):
        run_overlapped(bad_source(), lambda x: x, [("encode", lambda x: None)])
    with pytest.raises(DepthdaError, match="model failed"):
        run_overlapped(iter(range(10)), lambda x: 1 / 0, [("encode", lambda x: None)])
    seen = []
    busy = run_overlapped(iter(range(20)), lambda x: x * 2, [("a", lambda x: x + 1), ("b", seen.append)])
    assert seen == [2 * i + 1 for i in range(20)] and set(busy) == {"decode", "model", "a", "b"}
    assert threading.active_count() == before
