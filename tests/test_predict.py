"""`depthda predict` on real footage (dash-cam clip, paper example frames) and on bad input."""

import shutil
from pathlib import Path
import subprocess

import cv2
import numpy as np
import pytest
import torch

from depthda.cli import run
from depthda.data.kitti import read_annotated_depth
from depthda.errors import DepthdaError
from depthda.eval.kitti import evaluate_kitti
from depthda.eval.protocol import EvalProtocol
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.predict import predict_path
from depthda.infer.video_io import CPU_DECODER, CPU_ENCODER, VideoReader, VideoWriter
from depthda.paths import default_checkpoint
from depthda.utils.images import read_rgb


pytestmark = [pytest.mark.usefixtures("one_thread")]


def read_video(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def write_clip(path, frames, fps=25.0):
    """An independent writer (cv2, MPEG-4 part 2) for test clips."""
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    return path


@pytest.fixture(scope="module")
def sample_frames(repo_data):
    cap = cv2.VideoCapture(str(repo_data / "samples" / "dashcam_3s.mp4"))
    frames = []
    for _ in range(8):
        ok, f = cap.read()
        assert ok
        frames.append(cv2.cvtColor(cv2.resize(f, (480, 270), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory, sample_frames):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip8.mp4", sample_frames)


def cli(*args):
    return run(["predict", *map(str, args)])


def one_error_line(capsys, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error:"), err
    assert pattern in err[0], err[0]


def test_sample_video_is_shipped_as_described(repo_data):
    path = repo_data / "samples" / "dashcam_3s.mp4"
    assert path.stat().st_size < 1.5e6
    cap = cv2.VideoCapture(str(path))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (960, 540)
    assert cap.get(cv2.CAP_PROP_FPS) == 25 and cap.get(cv2.CAP_PROP_FRAME_COUNT) == 75
    cap.release()


def test_video_keeps_frames_rate_and_size_and_writes_depth(tmp_path, clip, ckpt, pipe, sample_frames, capsys):
    out = tmp_path / "depth.mp4"
    assert cli(clip, "-o", out, "--checkpoint", ckpt, "--depth-format", "npy", "--batch-size", "3") == 0
    assert "wrote 8 frames" in capsys.readouterr().out
    frames, fps = read_video(out)
    assert len(frames) == 8 and fps == 25 and frames[0].shape == (270, 480, 3)
    depth_files = sorted((tmp_path / "depth_depth").iterdir())
    assert [p.name for p in depth_files] == [f"{i:06d}.npy" for i in range(8)]
    # The CLI's lossless depth is the API's output on the same decoded frames: the temporal filter
    # by default, every frame on its own with --no-smooth.
    decoded, _ = read_video(clip)
    smoothed = list(pipe.predict_sequence(decoded))
    for i in range(8):
        np.testing.assert_allclose(np.load(depth_files[i]), smoothed[i], rtol=1e-5, atol=1e-5)
    assert cli(clip, "-o", tmp_path / "raw.mp4", "--checkpoint", ckpt, "--depth-format", "npy", "--no-smooth") == 0
    raw = [np.load(p) for p in sorted((tmp_path / "raw_depth").iterdir())]
    for i in range(8):
        np.testing.assert_array_equal(raw[i], pipe(decoded[i]))  # bit for bit: the filter is off
    assert np.array_equal(raw[0], np.load(depth_files[0]))          # nothing to filter against yet
    assert not np.array_equal(raw[7], np.load(depth_files[7]))      # the filter changed later frames


def test_side_by_side_doubles_width_and_png16_round_trip(tmp_path, clip, ckpt, pipe):
    out = tmp_path / "sbs.mp4"
    assert cli(clip, "-o", out, "--checkpoint", ckpt, "--side-by-side", "--depth-format", "png16",
               "--frames", "3", "--range", "2", "50", "--cmap", "inferno") == 0
    frames, fps = read_video(out)
    assert len(frames) == 3 and frames[0].shape == (270, 960, 3) and fps == 25
    decoded, _ = read_video(clip)
    # Left half is the input (up to H.264 loss).
    assert np.abs(frames[0][:, :480].astype(int) - decoded[0]).mean() < 6
    png = tmp_path / "sbs_depth" / "000002.png"
    raw = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (270, 480)
    expected = list(pipe.predict_sequence(decoded[:3]))[2]
    assert np.abs(read_annotated_depth(png) - expected).max() <= 0.5 / 256 + 1e-4


def test_odd_sized_video_is_padded_to_even(tmp_path, ckpt):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    odd = tmp_path / "odd.mkv"  # cv2's writers round sizes to even, so ffmpeg makes this one (lossless FFV1)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=161x91:rate=10",
                    "-frames:v", "2", "-c:v", "ffv1", str(odd)], check=True)
    assert read_video(odd)[0][0].shape == (91, 161, 3)
    out = tmp_path / "odd_out.mkv"
    assert cli(odd, "-o", out, "--checkpoint", ckpt) == 0
    frames, fps = read_video(out)
    assert len(frames) == 2 and fps == 10 and frames[0].shape == (92, 162, 3)


def test_paper_examples_folder(tmp_path, test_data, ckpt, capsys):
    src = test_data / "paper_examples"  # 1.png, 2.png, 3.png and their licence, LICENSE_MIT.txt
    out = tmp_path / "pe"
    assert cli(src, "-o", out, "--checkpoint", ckpt, "--depth-format", "png16") == 0
    printed = capsys.readouterr().out
    assert "skipped 1 non-image file" in printed and "wrote 3 images" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i}.png" for i in range(1, 4)]
    for name in names:
        assert read_rgb(out / name).shape == (352, 1216, 3)
        assert cv2.imread(str(tmp_path / "pe_depth" / name), cv2.IMREAD_UNCHANGED).shape == (352, 1216)


def test_single_image_api_equals_cli_and_png16(tmp_path, test_data, ckpt, pipe):
    img = test_data / "paper_examples" / "3.png"
    assert cli(img, "-o", tmp_path / "a.png", "--checkpoint", ckpt, "--depth-format", "npy") == 0
    api = pipe(read_rgb(img))
    np.testing.assert_allclose(np.load(tmp_path / "a_depth.npy"), api, rtol=1e-6, atol=1e-6)
    # No suffix: OUTPUT is a folder.
    assert cli(img, "-o", tmp_path / "folder", "--checkpoint", ckpt, "--depth-format", "png16") == 0
    assert read_rgb(tmp_path / "folder" / "3.png").shape == (352, 1216, 3)
    png = read_annotated_depth(tmp_path / "folder" / "3_depth.png")
    assert np.abs(png - api).max() <= 0.5 / 256 + 1e-5
    result = predict_path(img, tmp_path / "b.jpg", pipeline=pipe, focal_px=1000.0, progress=False)
    assert result.kind == "image" and (tmp_path / "b.jpg").is_file()


def test_predict_path_takes_one_options_object_or_its_fields(test_data, tmp_path, pipe):
    from depthda.infer.checks import PredictOptions

    img = test_data / "paper_examples" / "3.png"
    predict_path(img, tmp_path / "a.png", PredictOptions(pipeline=pipe, focal_px=1000.0, progress=False,
                                                         depth_format="npy"))
    predict_path(img, tmp_path / "b.png", pipeline=pipe, focal_px=1000.0, progress=False, depth_format="npy")
    assert np.array_equal(np.load(tmp_path / "a_depth.npy"), np.load(tmp_path / "b_depth.npy"))
    with pytest.raises(TypeError):
        predict_path(img, tmp_path / "c.png", PredictOptions(pipeline=pipe), progress=False)


def test_a_library_call_inside_a_torchrun_job_is_this_process_alone(test_data, tmp_path, pipe, monkeypatch):
    # Rank 1 of a torchrun launch, with no process group to join: a library call must not become a
    # collective operation (only the CLI splits a run across a launch), so it writes its output.
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "9"}.items():
        monkeypatch.setenv(key, value)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(test_data / "paper_examples" / "3.png", folder / "3.png")
    result = predict_path(folder, tmp_path / "out", pipeline=pipe, progress=False)
    assert result.frames == 1 and (tmp_path / "out" / "3.png").is_file()


def test_grey_rgba_16bit_and_tiny_images_are_converted(tmp_path, test_data, ckpt):
    rgb = read_rgb(test_data / "paper_examples" / "2.png")[:120, :300]
    src = tmp_path / "in" / "sub"
    src.mkdir(parents=True)
    cv2.imwrite(str(src / "grey.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(src / "rgba.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA))
    cv2.imwrite(str(src / "deep.png"), rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "in" / "tiny.jpg"), rgb[:8, :8])
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert cli(tmp_path / "in", "-o", out, "--checkpoint", ckpt, "--no-style") == 0
    for rel, shape in (("sub/grey.png", (120, 300)), ("sub/rgba.png", (120, 300)),
                       ("sub/deep.png", (120, 300)), ("tiny.png", (8, 8))):
        assert read_rgb(out / rel).shape == (*shape, 3)


def test_focal_from_calib_scales_depth(tmp_path, repo_data, ckpt, pipe):
    img = repo_data / "kitti" / "raw" / "2011_09_26" / "2011_09_26_drive_0023_sync" / "image_02" / "data" / "0000000000.png"
    calib = repo_data / "kitti" / "raw" / "2011_09_26" / "calib_cam_to_cam.txt"
    assert cli(img, "-o", tmp_path / "k.png", "--checkpoint", ckpt, "--calib", calib, "--depth-format", "npy") == 0
    rgb = read_rgb(img)
    # KITTI's own camera is what init_checkpoint's focal assumes: the factor is P_rect_02[0,0]/721.5377.
    scale = pipe.focal_scale(721.5377, rgb.shape[1])
    np.testing.assert_allclose(np.load(tmp_path / "k_depth.npy"), pipe(rgb) * scale, rtol=1e-5)


def test_bad_inputs_give_one_error_line(tmp_path, ckpt, capsys, clip):
    out = tmp_path / "o.png"
    assert cli(tmp_path / "missing.png", "-o", out, "--checkpoint", ckpt) == 1
    one_error_line(capsys, "input not found")
    (tmp_path / "empty.png").write_bytes(b"")
    assert cli(tmp_path / "empty.png", "-o", out, "--checkpoint", ckpt) == 1
    one_error_line(capsys, "empty")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    assert cli(tmp_path / "corrupt.png", "-o", out, "--checkpoint", ckpt) == 1
    one_error_line(capsys, "cannot decode image")
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    assert cli(tmp_path / "corrupt.mp4", "-o", tmp_path / "o.mp4", "--checkpoint", ckpt) == 1
    one_error_line(capsys, "cannot decode video")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    assert cli(tmp_path / "docs", "-o", tmp_path / "docs_out", "--checkpoint", ckpt) == 1
    one_error_line(capsys, "no images in")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    assert cli(tmp_path / "x.gif", "-o", out, "--checkpoint", ckpt) == 1
    one_error_line(capsys, "unsupported input")
    assert cli(clip, "-o", tmp_path / "v.png", "--checkpoint", ckpt) == 1
    one_error_line(capsys, "video output must end in")
    assert cli(clip, "-o", tmp_path / "v.mp4", "--checkpoint", tmp_path / "nockpt") == 1
    one_error_line(capsys, "checkpoint folder not found")
    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    (broken / "style" / "model.safetensors").write_bytes(b"junk")
    assert cli(clip, "-o", tmp_path / "v.mp4", "--checkpoint", broken) == 1
    one_error_line(capsys, "style/model.safetensors")
    (broken / "style" / "model.safetensors").unlink()
    assert cli(clip, "-o", tmp_path / "v.mp4", "--checkpoint", broken) == 1
    one_error_line(capsys, "missing weights file")


def test_failed_runs_leave_existing_outputs_untouched(tmp_path, repo_data, ckpt, capsys, test_data):
    sample = (repo_data / "samples" / "dashcam_3s.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(sample[: len(sample) // 2])
    out = tmp_path / "existing.mp4"
    out.write_bytes(b"previous complete output")
    assert cli(truncated, "-o", out, "--checkpoint", ckpt, "--depth-format", "png16") == 1
    one_error_line(capsys, "truncated")
    assert out.read_bytes() == b"previous complete output"
    assert not (tmp_path / "existing_depth").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.mp4", "truncated.mp4"]
    # A folder with one corrupt image: no output file changes, no staging left behind.
    src = tmp_path / "imgs"
    src.mkdir()
    shutil.copy(test_data / "paper_examples" / "1.png", src / "1.png")
    (src / "2.png").write_bytes(b"not a png")
    dst = tmp_path / "imgs_out"
    dst.mkdir()
    (dst / "1.png").write_bytes(b"old")
    assert cli(src, "-o", dst, "--checkpoint", ckpt) == 1
    one_error_line(capsys, "2.png")
    assert (dst / "1.png").read_bytes() == b"old" and sorted(p.name for p in dst.iterdir()) == ["1.png"]


def test_shipped_default_model_runs_without_flags(tmp_path, clip):
    # README's first command, on a few frames: the default checkpoint ships in checkpoints/default.
    out = tmp_path / "v.mp4"
    assert cli(clip, "-o", out, "--frames", "3") == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


@pytest.mark.parametrize("scaling", ["median", "none"])
@pytest.mark.parametrize("frames", ["drive_0023", "object_000008"])
def test_shipped_default_model_beats_the_baselines_on_real_kitti_frames(repo_data, tmp_path, frames, scaling):
    if frames == "drive_0023":
        data = dict(data_root=repo_data / "kitti" / "raw", gt="annotated",
                    split_file=repo_data / "splits" / "kitti_tiny_test_files.txt")
    else:  # the object frame through its velodyne scan, laid out as a raw drive (as measure.sh does)
        root = tmp_path / "object_as_raw"
        assert run(["data", "object-as-raw", "--object-root", str(repo_data / "kitti" / "object"),
                    "--frame", "000008", "--out", str(root)]) == 0
        split = tmp_path / "split.txt"
        split.write_text("2011_09_26/2011_09_26_drive_9000_sync 0000000000 l\n")
        data = dict(data_root=root, split_file=split, gt="velodyne")
    common = dict(**data, protocol=EvalProtocol(scaling=scaling), progress=False)
    model = evaluate_kitti(checkpoint=default_checkpoint(), device="cpu", **common).metrics
    for baseline in ("constant", "ground-plane"):
        ref = evaluate_kitti(baseline=baseline, **common).metrics
        assert model["abs_rel"] < ref["abs_rel"] and model["a1"] > ref["a1"], (baseline, model, ref)


def test_shipped_default_model_beats_a_constant_guess_on_obstacles_in_traffic():
    # Eight frames of a KITTI traffic queue (tests/data/kitti_queue: every 13th, plus 20 and 40 with a
    # tanker 3 m away), where the row of a pixel says little about its depth: the obstacle pixels
    # must come out better than one constant depth does (issue 23's floor, on a sample of its set).
    root = Path(__file__).parent / "data" / "kitti_queue"
    common = dict(data_root=root, split_file=root / "split.txt", gt="annotated", breakdown=True,
                  protocol=EvalProtocol(scaling="median"), progress=False)
    model = evaluate_kitti(checkpoint=default_checkpoint(), device="cpu", **common)
    constant = evaluate_kitti(baseline="constant", **common)
    obstacle = lambda result: result.breakdown["obstacle"]["abs_rel"]  # noqa: E731
    assert obstacle(model) < obstacle(constant), (obstacle(model), obstacle(constant))
    assert model.metrics["abs_rel"] < constant.metrics["abs_rel"]


def test_h264_output_when_imageio_ffmpeg_is_present(tmp_path, clip, ckpt):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "h.mp4"
    assert cli(clip, "-o", out, "--checkpoint", ckpt, "--frames", "2") == 0
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(out)],
                           capture_output=True, text=True)
    assert "Video: h264" in probe.stderr and "yuv420p" in probe.stderr


def test_cpu_codec_settings_read_and_write_the_same_frames(tmp_path, clip):
    default = list(VideoReader(clip))
    one_thread = list(VideoReader(clip, **CPU_DECODER))
    assert len(one_thread) == len(default) and all(np.array_equal(a, b) for a, b in zip(default, one_thread))
    out = tmp_path / "fast.mp4"
    with VideoWriter(out, default[0].shape[1], default[0].shape[0], 10.0, **CPU_ENCODER) as writer:
        for frame in default:
            writer.write(frame)
    back = list(VideoReader(out))
    assert len(back) == len(default)
    # x264 records its settings in the stream: the CPU preset and thread count reached the encoder.
    settings = out.read_bytes()
    assert b"subme=0" in settings and b"threads=1 " in settings
    # crf 20 whatever the preset: the frames come back close to what went in.
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(back, default)]) < 4


def test_model_worker_failure_is_one_error_and_leaves_nothing(tmp_path, clip, ckpt, monkeypatch):
    pipe = DepthPipeline.from_checkpoint(ckpt, device="cpu")
    real, calls = pipe.run_prepared, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipe, "run_prepared", flaky)
    threads = cv2.getNumThreads(), torch.get_num_threads()
    out = tmp_path / "v.mp4"
    with pytest.raises(DepthdaError, match="model failed: RuntimeError: worker broke"):
        predict_path(clip, out, pipeline=pipe, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert (cv2.getNumThreads(), torch.get_num_threads()) == threads
