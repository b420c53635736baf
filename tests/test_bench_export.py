"""`depthda bench` (pipeline vs naive, one run) and `depthda export` (ONNX, TorchScript)."""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from depthda.bench.ablation import model_ablation
from depthda.bench.run import read_frames
from depthda.cli import run
from depthda.errors import DepthdaError
from depthda.infer.export import export_pipeline, sample_input
from depthda.infer.pipeline import DepthPipeline
from depthda.paths import sample_video

# torch.jit is deprecated in favour of torch.export, but TorchScript is the format asked for here.
pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]


@pytest.mark.slow
def test_bench_reports_speed_stages_flops_and_agreement(tmp_path, ckpt, capsys):
    out = tmp_path / "bench.json"
    assert run(["bench", "--frames", "4", "--checkpoint", str(ckpt), "--json", str(out), "--rounds", "1",
                "--no-ablation"]) == 0
    r = json.loads(out.read_text())
    assert r["frames"] == 4 and r["input_size"] == [540, 960] and r["working_size"] == [72, 128]
    assert r["engine"] == "onnxruntime"  # auto on a CPU
    assert r["fps"] > 0 and r["naive_fps"] > 0 and r["speedup"] == pytest.approx(r["fps"] / r["naive_fps"], rel=0.01)
    assert {"decode", "style", "depth", "colorize", "encode"} <= set(r["stage_ms_per_frame"]["naive"])
    assert {"decode", "model", "networks", "colorize", "encode"} <= set(r["stage_ms_per_frame"]["pipeline"])
    # The temporal filter's row: what predict runs on video by default, and its own speedup.
    assert r["speedup_smoothed"] == pytest.approx(r["fps_smoothed"] / r["naive_fps"], rel=0.01)
    assert set(r["stage_ms_per_frame"]["pipeline_smoothed"]) == set(r["stage_ms_per_frame"]["pipeline"])
    # fps is rounded to 3 decimals, an error 1e3 / fps² times larger in ms per frame
    rounding = 0.5 * (1 / r["fps_smoothed"] ** 2 + 1 / r["fps"] ** 2) + 1e-3
    assert r["temporal_filter_ms_per_frame"] == pytest.approx(1e3 / r["fps_smoothed"] - 1e3 / r["fps"], abs=rounding)
    stages = r["stage_ms_per_frame"]
    assert r["temporal_filter_busy_ms_per_frame"] == pytest.approx(
        stages["pipeline_smoothed"]["colorize"] - stages["pipeline"]["colorize"], abs=0.01)
    assert set(r["rounds"][0]) == {"naive_fps", "pipeline_fps", "pipeline_smoothed_fps", "pipeline_torch_fps", "order"}
    # A row per engine, with its share of the measured peak, and the versions of both.
    assert set(r["engines"]) == {"onnxruntime", "torch"} and r["engines"]["onnxruntime"]["fps"] == r["fps"]
    assert all(0 < e["networks_fraction_of_peak"] < 1.5 and e["networks_ms_per_frame"] > 0 for e in r["engines"].values())
    assert r["versions"] == {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}
    assert r["flops_per_frame"]["style"] > 1e8 and r["flops_per_frame"]["depth"] > 1e7
    assert r["peak_matmul_flops"] > 1e9 and 0 < r["model_stage_fraction_of_peak"] < 1.5
    assert set(r["peak_matmul_flops_by_threads"]) >= {"1"}
    # Same frames, same preprocessing: only the engines' float arithmetic separates the paths.
    assert r["max_rel_depth_diff"] < 1e-3 and r["engines"]["torch"]["max_rel_depth_diff"] < 1e-3
    out = capsys.readouterr().out
    assert "speedup" in out and "onnxruntime" in out and "of peak" in out


@pytest.mark.slow
def test_bench_ablation_lists_each_engine(ckpt):
    frames, _ = read_frames(sample_video(), 2)
    pipes = {e: DepthPipeline.from_checkpoint(ckpt, device="cpu", engine=e) for e in ("onnxruntime", "torch")}
    rows = model_ablation(pipes, frames, threads_options=[1], flops_per_frame=1e9, peaks={1: 1e10}, rounds=1)
    assert rows[0]["variant"].startswith("naive models")
    assert {(row["engine"], row["threads"]) for row in rows} >= {("onnxruntime", 1), ("torch", 1)}
    assert all(row["model_ms_per_frame"] > 0 for row in rows)
    one = [row for row in rows if row["threads"] == 1]
    assert all(row["fraction_of_peak"] == pytest.approx(1e9 / (row["model_ms_per_frame"] / 1e3) / 1e10, rel=0.01)
               for row in one)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_matches_pytorch(tmp_path, ckpt, fmt, suffix, capsys):
    out = tmp_path / f"model{suffix}"
    assert run(["export", "--format", fmt, "-o", str(out), "--checkpoint", str(ckpt), "--size", "90x150"]) == 0
    assert "max |export - pytorch|" in capsys.readouterr().out
    pipe = DepthPipeline.from_checkpoint(ckpt, device="cpu")
    x = sample_input((90, 150), "uint8", batch=2)  # batch 2: the batch axis is free
    with torch.inference_mode():
        ref = pipe(x).numpy()
    if fmt == "onnx":
        import onnxruntime

        got = onnxruntime.InferenceSession(str(out)).run(None, {"image": x.numpy()})[0]
    else:
        got = torch.jit.load(str(out))(x).detach().numpy()
    assert got.shape == (2, 90, 150)
    assert np.abs(got - ref).max() < 1e-3 * ref.max()


@pytest.mark.slow
def test_export_float_input_and_returned_difference(tmp_path, ckpt):
    r = export_pipeline("torchscript", tmp_path / "f.pt", checkpoint=ckpt, size=(40, 60), input_type="float")
    assert r.max_abs_diff < 1e-4 and r.size == (40, 60)
    graph = torch.jit.load(str(tmp_path / "f.pt"))
    assert graph(torch.rand(1, 3, 40, 60)).shape == (1, 40, 60)


def test_export_errors(tmp_path, ckpt, capsys):
    assert run(["export", "--format", "onnx", "-o", str(tmp_path / "m.onnx"), "--checkpoint", str(ckpt),
                "--size", "12-34"]) == 1
    assert "HxW" in capsys.readouterr().err
    with pytest.raises(DepthdaError, match="format"):
        export_pipeline("tflite", tmp_path / "m.tflite", checkpoint=ckpt)
    assert not (tmp_path / "m.onnx").exists()
