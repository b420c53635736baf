"""ONNX Runtime as the CPU engine (depthda.infer.engine): agreement with torch on real frames and in
`eval kitti`, the graph cache and where it lives, the fallback to torch, and the --engine option."""

import json
import warnings

import numpy as np
import pytest
import torch

from depthda.cli import run
from depthda.errors import DepthdaError
from depthda.eval.kitti import evaluate_kitti
from depthda.infer.engine import EngineWarning, cache_dir, resolve_engine, user_cache_dir
from depthda.infer.pipeline import DepthPipeline
from depthda.paths import default_checkpoint, sample_video
from depthda.utils.images import read_rgb

from conftest import REPO_DATA

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_SPLIT = REPO_DATA / "splits" / "kitti_tiny_test_files.txt"
KITTI_RAW = REPO_DATA / "kitti" / "raw"
METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


def real_frames():
    """Dash-cam frames of the shipped clip and shipped KITTI frames (two sizes, two working sizes)."""
    import cv2

    cap = cv2.VideoCapture(str(sample_video()))
    frames = []
    for _ in range(3):
        ok, bgr = cap.read()
        assert ok
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    drive = KITTI_RAW / "2011_09_26" / "2011_09_26_drive_0023_sync" / "image_02" / "data"
    frames += [read_rgb(drive / "0000000000.png"), read_rgb(REPO_DATA / "kitti" / "object" / "image_2" / "000008.png")]
    return frames


@pytest.fixture(scope="module")
def frame(test_data):
    return read_rgb(test_data / "paper_examples" / "1.png")  # 352x1216 KITTI-like street


@pytest.fixture(scope="module")
def shipped_pipes():
    return {e: DepthPipeline.from_checkpoint(default_checkpoint(), device="cpu", engine=e)
            for e in ("onnxruntime", "torch")}


@pytest.mark.slow
def test_onnxruntime_agrees_with_torch_within_1cm_on_real_frames(shipped_pipes, onnx_cache):
    ort, ref = shipped_pipes["onnxruntime"], shipped_pipes["torch"]
    assert (ort.engine, ref.engine) == ("onnxruntime", "torch")
    for frame in real_frames():
        with warnings.catch_warnings():
            warnings.simplefilter("error", EngineWarning)  # a fallback to torch would make this test vacuous
            a = ort(frame)
        b = ref(frame)
        assert a.shape == b.shape == frame.shape[:2]
        assert np.abs(a - b).max() < 0.01
    # Each working size made one graph, checked against torch when it was made.
    graphs = sorted(p.name for p in onnx_cache.glob("*.onnx"))
    sizes = {name.split("-")[-2] for name in graphs}
    assert {"256x416", "128x416"} <= sizes
    assert all(d <= 0.01 for d in ort.ort.max_abs_diff.values())


def test_graph_is_made_once_and_reused_across_pipelines(ckpt, frame, onnx_cache):
    first = DepthPipeline.from_checkpoint(ckpt, device="cpu")
    a = first(frame)
    path = first.ort.graph_path(*first.prepare(frame).shape[:2])
    assert path.is_file() and path.parent == onnx_cache
    stamp = path.stat().st_mtime_ns
    second = DepthPipeline.from_checkpoint(ckpt, device="cpu")
    b = second(frame)
    assert second.ort.max_abs_diff == {}  # loaded from the cache, not exported again
    assert path.stat().st_mtime_ns == stamp and np.array_equal(a, b)
    # Other weights, another key: the cache never hands out a stale graph.
    other = DepthPipeline.from_checkpoint(ckpt, device="cpu", use_style=False)
    assert other.ort.graph_path(*first.prepare(frame).shape[:2]) != path


def test_working_sizes_that_pad_alike_share_a_graph_and_keep_their_own_size(ckpt, frame):
    ort = DepthPipeline.from_checkpoint(ckpt, device="cpu")
    ref = DepthPipeline.from_checkpoint(ckpt, device="cpu", engine="torch")
    crops = [frame[:100, :330], frame[:100, :345]]  # 39 and 37 working rows, padded to the same size
    padded = {ort.working_size(*c.shape[:2])[2:] for c in crops}
    assert len(padded) == 1 and len({ort.working_size(*c.shape[:2])[:2] for c in crops}) == 2
    for crop in crops:
        a, b = ort(crop), ref(crop)
        assert a.shape == b.shape == crop.shape[:2] and np.abs(a - b).max() < 0.01
    assert ort.ort.graph_path(*padded.pop()).is_file()


def test_cache_beside_a_writable_model_else_in_the_user_cache(tmp_path, ckpt, monkeypatch):
    monkeypatch.delenv("DEPTHDA_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir(ckpt) == ckpt / "onnx"
    # The shipped model's folder is the checkout or site-packages: never written to.
    assert cache_dir(default_checkpoint()) == user_cache_dir() == tmp_path / "xdg" / "depthda" / "onnx"
    monkeypatch.setenv("DEPTHDA_CACHE", str(tmp_path / "mine"))
    assert cache_dir(ckpt) == tmp_path / "mine"


def test_a_model_that_cannot_be_exported_falls_back_to_torch_with_one_warning(tmp_path, ckpt, frame, monkeypatch,
                                                                             capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    monkeypatch.setenv("DEPTHDA_CACHE", str(blocker))
    pipe = DepthPipeline.from_checkpoint(ckpt, device="cpu")
    with pytest.warns(EngineWarning, match="running it with torch"):
        got = pipe(frame)
    ref = DepthPipeline.from_checkpoint(ckpt, device="cpu", engine="torch")(frame)
    assert np.array_equal(got, ref)
    # The CLI says so in one line and still writes the output.
    image = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(image), frame[..., ::-1])
    assert run(["predict", str(image), "-o", str(tmp_path / "out.png"), "--checkpoint", str(ckpt), "--device", "cpu"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: warning: ") and "torch" in err[0]
    assert (tmp_path / "out.png").is_file()


def test_engine_choices(ckpt, capsys):
    assert resolve_engine("auto", torch.device("cpu")) == "onnxruntime"
    assert resolve_engine("auto", torch.device("cuda", 0)) == "torch"
    with pytest.raises(DepthdaError, match="--device cpu"):
        resolve_engine("onnxruntime", torch.device("cuda", 0))
    with pytest.raises(DepthdaError, match="unknown engine"):
        DepthPipeline.from_checkpoint(ckpt, device="cpu", engine="tensorrt")
    assert run(["predict", "x.png", "-o", "y.png", "--engine", "tensorrt"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("scaling", ["none", "median"])
def test_eval_kitti_gives_the_same_metrics_with_either_engine(tmp_path, scaling, monkeypatch):
    monkeypatch.setenv("DEPTHDA_CACHE", str(tmp_path / "cache"))  # empty: shows that eval made and ran a graph
    results = {}
    for engine in ("onnxruntime", "torch"):
        out = tmp_path / f"{engine}.json"
        assert run(["eval", "kitti", "--data-root", str(KITTI_RAW), "--split-file", str(TINY_SPLIT), "--gt", "annotated",
                    "--checkpoint", str(default_checkpoint()), "--device", "cpu", "--engine", engine,
                    "--scaling", scaling, "--json", str(out)]) == 0
        results[engine] = json.loads(out.read_text())
        if engine == "onnxruntime":
            assert [p.name.split("-")[-2] for p in (tmp_path / "cache").glob("*.onnx")] == ["128x416"]
    for k in METRICS:
        assert results["onnxruntime"][k] == pytest.approx(results["torch"][k], abs=1e-3), k
    # The Python API gives the same as the CLI.
    api = evaluate_kitti(data_root=KITTI_RAW, split=None, split_file=TINY_SPLIT, gt="annotated",
                         checkpoint=default_checkpoint(), device="cpu", engine="onnxruntime", progress=False,
                         protocol=_protocol(scaling))
    assert api.metrics["abs_rel"] == pytest.approx(results["onnxruntime"]["abs_rel"], abs=1e-9)


def _protocol(scaling):
    from depthda.eval.protocol import named_protocol

    return named_protocol("garg", crop=None, min_depth=1e-3, max_depth=80.0, scaling=scaling)


def test_compile_leaves_the_onnxruntime_engine_alone(ckpt, frame):
    # torch.compile applies to the torch engine; the ONNX graph is traced from the plain modules.
    compiled = DepthPipeline.from_checkpoint(ckpt, device="cpu", compile=True)
    assert compiled.engine == "onnxruntime"
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineWarning)
        got = compiled(frame)
    assert np.array_equal(got, DepthPipeline.from_checkpoint(ckpt, device="cpu")(frame))
