"""Temporal consistency: the `eval video` measure on scenes with known motion, and the filter that
steadies depth video without smearing what moves."""

import cv2
import numpy as np
import pytest

from depthda.eval.video import ConsistencyMeter
from depthda.infer.temporal import TemporalFilter, TemporalSettings

H, W = 120, 200


def texture(h, w, seed=0):
    """A grey-level texture with structure at several scales, which optical flow can lock on to."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for scale in (4, 8, 16):
        small = rng.random((h // scale + 2, w // scale + 2)).astype(np.float32)
        img += cv2.resize(small, (w + 2 * scale, h + 2 * scale), interpolation=cv2.INTER_CUBIC)[scale:scale + h,
                                                                                              scale:scale + w]
    img = (img - img.min()) / (img.max() - img.min())
    return np.repeat((img * 255).astype(np.uint8)[..., None], 3, axis=2)


def pan(n, shift=3):
    """n frames of a static textured scene seen by a camera panning `shift` px per frame, with
    the depth that belongs to each frame (a smooth function of scene position)."""
    canvas = texture(H, W + n * shift)
    xs = np.arange(W + n * shift, dtype=np.float32)
    scene_depth = 10 + 5 * np.sin(xs / 25)[None, :] + np.linspace(0, 8, H, dtype=np.float32)[:, None]
    frames = [np.ascontiguousarray(canvas[:, t * shift:t * shift + W]) for t in range(n)]
    depths = [np.ascontiguousarray(scene_depth[:, t * shift:t * shift + W]) for t in range(n)]
    return frames, depths


def pan_clip(path, n):
    """The `pan` scene's n frames as an MP4 at `path` (10 fps), for the evaluations that read video."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    for f in pan(n)[0]:
        writer.write(f)
    writer.release()
    return path


def score(frames, depths):
    meter = ConsistencyMeter()
    for f, d in zip(frames, depths):
        meter.add(f, d)
    return meter.result


def test_consistent_depth_of_a_pan_scores_near_zero_and_flicker_does_not():
    frames, depths = pan(6)
    steady = score(frames, depths)
    assert len(steady.errors) == 5 and steady.mean < 0.01
    flicker = score(frames, [d * (1.1 if t % 2 else 1.0) for t, d in enumerate(depths)])
    assert abs(flicker.mean - np.log(1.1)) < 0.02   # a 10 % jump every frame reads as ~0.095
    json = flicker.to_json()
    assert json["pairs"] == 5 and json["mean"] == pytest.approx(flicker.mean)


def test_filter_steadies_flicker_on_a_pan():
    frames, depths = pan(12)
    rng = np.random.default_rng(1)
    noisy = [d * np.exp(rng.normal(0, 0.08)).astype(np.float32) for d in depths]  # per-frame scale flicker
    filt = TemporalFilter()
    filtered = [filt(f, d) for f, d in zip(frames, noisy)]
    assert score(frames, filtered).mean < 0.5 * score(frames, noisy).mean


def test_filter_warps_history_along_a_known_shift():
    """The default (cheapest) flow still follows a 3 px pan: frame 1's depth, 20 % too far everywhere,
    is pulled towards frame 0's correct depth carried over by the warp, uniformly: by 1.2 ** (1 − keep)
    where brightness agrees. A warp off by a pixel or more leaves a ratio that varies with the scene."""
    frames, depths = pan(2, shift=3)
    filt = TemporalFilter()
    filt(frames[0], depths[0])
    ratio = (filt(frames[1], depths[1] * 1.2) / depths[1])[10:-10, 10:-10]
    expected = 1.2 ** (1 - TemporalSettings().keep)
    assert np.median(ratio) == pytest.approx(expected, rel=0.005)
    assert np.mean(np.abs(ratio / expected - 1) < 0.01) > 0.9


def straightforward_filter(preset, keep=0.7, tolerance=8.0):
    """The filter written as plainly as possible (its docstring's steps, one expression each)."""
    flow_engine = cv2.DISOpticalFlow_create(preset)
    state = {}

    def warp(image, flow):
        h, w = flow.shape[:2]
        xs = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
        ys = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
        return cv2.remap(image.astype(np.float32), xs, ys, interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))

    def step(rgb, depth):
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        log_depth = np.log(depth.astype(np.float32))
        if state:
            flow = flow_engine.calc(g, state["grey"], None)
            history = warp(state["log_depth"], flow)
            mismatch = np.abs(g.astype(np.float32) - warp(state["grey"], flow))
            weight = keep * np.exp(-np.square(mismatch / tolerance))
            weight[~np.isfinite(history)] = 0
            history = np.where(np.isfinite(history), history, log_depth)
            log_depth = log_depth + weight * (history - log_depth)
        first = not state
        state.update(grey=g, log_depth=log_depth)
        return depth if first else np.exp(log_depth)

    return step


@pytest.mark.parametrize("preset", [cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, cv2.DISOPTICAL_FLOW_PRESET_FAST,
                                    cv2.DISOPTICAL_FLOW_PRESET_MEDIUM])
def test_filter_computes_the_straightforward_expressions_bit_for_bit(preset):
    """The filter's in-place arithmetic and shared sampling map are only faster: same bits."""
    frames, depths = moving_square(8)
    rng = np.random.default_rng(4)
    noisy = [d * np.exp(rng.normal(0, 0.05, d.shape)).astype(np.float32) for d in depths]
    fast, plain = TemporalFilter(TemporalSettings(flow_preset=preset)), straightforward_filter(preset)
    for f, d in zip(frames, noisy):
        a, b = fast(f, d), plain(f, d)
        assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)


def moving_square(n, speed=4, near=5.0, far=20.0):
    """A textured square at `near` metres moving right over a static textured background at `far`."""
    background = texture(H, W, seed=2)
    patch = texture(40, 40, seed=3)
    frames, depths = [], []
    for t in range(n):
        img = background.copy()
        depth = np.full((H, W), far, np.float32)
        x = 40 + speed * t
        img[40:80, x:x + 40] = patch
        depth[40:80, x:x + 40] = near
        frames.append(img)
        depths.append(depth)
    return frames, depths


def test_filter_follows_a_moving_object_instead_of_smearing_it():
    frames, depths = moving_square(10)
    filt = TemporalFilter()
    out = [filt(f, d) for f, d in zip(frames, depths)]
    last = out[-1]
    x = 40 + 4 * 9
    inside = last[45:75, x + 5:x + 35]
    vacated = last[45:75, x - 12:x - 2]    # where the square was a few frames ago
    assert np.abs(inside / 5.0 - 1).max() < 0.05
    assert np.median(vacated) == pytest.approx(20.0, rel=0.05)

    # A filter that does not follow motion (plain running average of the maps) smears the square.
    keep = TemporalSettings().keep
    smeared = depths[0].copy()
    for d in depths[1:]:
        smeared = np.exp(keep * np.log(smeared) + (1 - keep) * np.log(d))
    assert not np.median(smeared[45:75, x - 12:x - 2]) == pytest.approx(20.0, rel=0.05)


@pytest.mark.slow
def test_eval_video_cli_reports_both_outputs(tmp_path, ckpt, capsys):
    import json

    from depthda.cli import run

    clip = pan_clip(tmp_path / "pan.mp4", 6)
    out = tmp_path / "tc.json"
    assert run(["eval", "video", str(clip), "--checkpoint", str(ckpt), "--json", str(out),
                "--plot", str(tmp_path / "tc.png")]) == 0
    printed = capsys.readouterr().out
    assert "per-frame" in printed and "smoothed" in printed
    r = json.loads(out.read_text())
    assert r["frames"] == 6 and r["per_frame"]["pairs"] == 5 and r["smoothed"]["pairs"] == 5
    assert np.isfinite(r["per_frame"]["mean"]) and np.isfinite(r["smoothed"]["mean"])
    assert r["temporal_filter"]["keep"] == TemporalSettings().keep
    assert (tmp_path / "tc.png").read_bytes()[:4] == b"\x89PNG"
    assert run(["eval", "video", str(clip), "--frames", "1"]) == 1


def test_first_frame_and_reset_pass_depth_through_unchanged():
    frames, depths = pan(3)
    filt = TemporalFilter()
    assert filt(frames[0], depths[0]) is depths[0]
    filt(frames[1], depths[1] * 1.2)
    filt.reset()
    assert filt(frames[2], depths[2]) is depths[2]
    with pytest.raises(ValueError):
        filt(frames[0], depths[0][:10])


@pytest.mark.slow
def test_eval_kitti_smooth_filters_runs_of_consecutive_frames(tmp_path, ckpt, capsys):
    from pathlib import Path

    from depthda.cli import run
    from depthda.data.kitti import KittiFrame
    from depthda.eval.kitti import consecutive_runs

    d = "2011_09_26/2011_09_26_drive_0023_sync"
    frames = [KittiFrame(d, 0, 2), KittiFrame(d, 1, 2), KittiFrame(d, 2, 2), KittiFrame(d, 5, 2),
              KittiFrame(d, 6, 3), KittiFrame("2011_09_26/2011_09_26_drive_0001_sync", 7, 2)]
    assert consecutive_runs(frames) == [range(0, 3), range(3, 4), range(4, 5), range(5, 6)]

    repo = Path(__file__).resolve().parents[1]
    args = ["eval", "kitti", "--data-root", str(repo / "data/kitti/raw"), "--gt", "annotated",
            "--split-file", str(repo / "data/splits/kitti_tiny_test_files.txt"), "--checkpoint", str(ckpt),
            "--device", "cpu", "--per-frame-csv"]
    assert run(args + [str(tmp_path / "raw.csv")]) == 0
    assert run(args + [str(tmp_path / "smooth.csv"), "--smooth"]) == 0
    raw = (tmp_path / "raw.csv").read_text().splitlines()
    smooth = (tmp_path / "smooth.csv").read_text().splitlines()
    assert raw[1] == smooth[1]            # the first frame of the run has no history
    assert raw[2:] != smooth[2:]          # later frames are filtered
    capsys.readouterr()
    gaps = tmp_path / "gaps.txt"
    gaps.write_text("".join(f"{d} {i:010d} l\n" for i in (0, 2, 4)))
    assert run(["eval", "kitti", "--data-root", str(repo / "data/kitti/raw"), "--gt", "annotated", "--split-file",
                str(gaps), "--checkpoint", str(ckpt), "--smooth"]) == 1
    assert "consecutive" in capsys.readouterr().err


@pytest.mark.slow
def test_the_evaluations_take_other_filter_settings(tmp_path, pipe, ckpt):
    """What a filter setting trades (steadiness against lag) is measured through the same two
    evaluations: keep 0 is no filter at all, a larger keep is steadier on a static scene."""
    from pathlib import Path

    from depthda.eval.kitti import evaluate_kitti
    from depthda.eval.protocol import EvalProtocol
    from depthda.eval.video import evaluate_video

    clip = pan_clip(tmp_path / "pan.mp4", 6)
    off, shipped, strong = (evaluate_video(clip, pipe, temporal=TemporalSettings(keep=k))
                            for k in (0.0, TemporalSettings().keep, 0.9))
    assert off.smoothed.errors == pytest.approx(off.per_frame.errors, rel=1e-4)
    assert strong.smoothed.mean < shipped.smoothed.mean < shipped.per_frame.mean
    assert strong.settings["keep"] == 0.9 and strong.per_frame.errors == shipped.per_frame.errors

    repo = Path(__file__).resolve().parents[1]
    tiny = dict(data_root=repo / "data/kitti/raw", split_file=repo / "data/splits/kitti_tiny_test_files.txt",
                gt="annotated", checkpoint=ckpt, protocol=EvalProtocol(scaling="median"), device="cpu",
                progress=False)
    raw = evaluate_kitti(**tiny)
    unfiltered = evaluate_kitti(**tiny, smooth=True, temporal=TemporalSettings(keep=0.0))
    filtered = evaluate_kitti(**tiny, smooth=True)
    assert unfiltered.metrics == pytest.approx(raw.metrics, rel=1e-4)
    assert filtered.metrics["abs_rel"] != pytest.approx(raw.metrics["abs_rel"], rel=1e-4)


@pytest.mark.slow
def test_the_model_cards_filter_tradeoff_script_measures_every_setting(tmp_path, ckpt):
    """checkpoints/default/filter_tradeoff.py (the model card's Video table) on the shipped clip and
    frames; the sets it reads from --shared are left out when absent."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "checkpoints/default/filter_tradeoff.py"
    out = tmp_path / "tradeoff.json"
    subprocess.run([sys.executable, str(script), "--checkpoint", str(ckpt), "--shared", str(tmp_path),
                    "--json", str(out), "--frames", "4"], check=True, capture_output=True)
    table = json.loads(out.read_text())["table"]
    assert list(table) == ["off (keep 0)", "shipped", "tolerance 16", "keep .85, tol 16, MEDIUM",
                           "keep .9, tol 24, MEDIUM"]
    assert all(set(row) == {"dashcam_3s video", "tiny median abs_rel", "tiny none abs_rel", "tiny none δ<1.25"}
               for row in table.values())
    assert table["keep .9, tol 24, MEDIUM"]["dashcam_3s video"] < table["off (keep 0)"]["dashcam_3s video"]
