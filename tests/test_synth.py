"""The procedural street renderer: exact depth, determinism, SYNTHIA output format, cost, CLI errors."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
import typer
from torch.utils._python_dispatch import TorchDispatchMode

from depthda.cli import synth as synth_cli
from depthda.errors import DepthdaError
from depthda.synth.camera import KITTI_HFOV_DEG, Camera
from depthda.synth.render import SKY_DEPTH_M, render, render_scene
from depthda.synth.scene import Kind, Mat, Primitive, Scene, random_scene
from depthda.synth.writer import image_seed, synthesize
from depthda.utils.size import parse_size


def _ray_dirs(cam: Camera, h: int, w: int) -> np.ndarray:
    """World ray directions (H×W×3, camera-frame z = 1) in float64, independent of the renderer."""
    fx, fy, cx, cy = cam.intrinsics(h, w)
    u, v = np.meshgrid((np.arange(w) + 0.5 - cx) / fx, (np.arange(h) + 0.5 - cy) / fy)
    return np.stack([u, v, np.ones_like(u)], -1) @ cam.rotation().T


def test_camera_matches_kitti():
    assert KITTI_HFOV_DEG == pytest.approx(81.44, abs=0.01)
    fx, fy, cx, cy = Camera().intrinsics(375, 1242)
    assert fx == pytest.approx(721.5377, rel=1e-6) and fy == fx
    assert (cx, cy) == (621.0, 187.5)


def test_flat_road_depth_is_exact():
    h, H, W = 1.5, 64, 96
    cam = Camera(height_m=h)
    _, depth = render(Scene(camera=cam), (H, W))
    fx, fy, cx, cy = cam.intrinsics(H, W)
    v = np.arange(H) + 0.5 - cy
    below = v > 0
    expected = h * fy / v[below]
    assert np.all(expected < SKY_DEPTH_M)
    np.testing.assert_allclose(depth[below], np.repeat(expected[:, None], W, 1), rtol=1e-3)
    assert np.all(depth[~below] == np.float32(SKY_DEPTH_M))  # sky


def test_tilted_camera_road_depth_is_exact():
    cam = Camera(height_m=1.7, pitch_deg=3.0, roll_deg=-2.0, yaw_deg=10.0, x_m=1.2)
    H, W = 48, 80
    _, depth = render(Scene(camera=cam), (H, W))
    d = _ray_dirs(cam, H, W)
    down = d[..., 1] < 0
    expected = np.where(down, cam.height_m / np.where(down, -d[..., 1], 1), SKY_DEPTH_M)
    expected = np.minimum(expected, SKY_DEPTH_M)
    np.testing.assert_allclose(depth, expected, rtol=1e-3)
    assert down.any() and (~down).any()


def test_box_face_depth_is_exact():
    cam = Camera(height_m=1.65)
    box = Primitive(Kind.BOX, (-2.0, 0.0, 10.0), (2.0, 3.0, 12.5), Mat.CONCRETE, (0.5, 0.5, 0.5))
    H, W = 64, 128
    _, depth = render(Scene(camera=cam, prims=[box]), (H, W))
    d = _ray_dirs(cam, H, W)
    x, y = d[..., 0] * 10.0, cam.height_m + d[..., 1] * 10.0
    face = (np.abs(x) < 1.99) & (y > 0.01) & (y < 2.99)
    assert face.sum() > 100
    np.testing.assert_allclose(depth[face], 10.0, rtol=1e-6)
    assert np.all(depth[~face & (d[..., 1] > 0)] > 10.0)  # above and beside the box: sky


def test_round_primitives_depth_is_exact():
    """Sphere and vertical cylinder against a float64 reference solved per pixel."""
    cam = Camera(height_m=1.6)
    c, r = np.array([-1.0, 1.6, 8.0]), 1.0
    sphere = Primitive(Kind.ELLIPSOID, tuple(c - r), tuple(c + r), Mat.FOLIAGE, (0.2, 0.4, 0.1))
    pole_c, pole_r = np.array([1.5, 0.0, 6.0]), 0.3
    pole = Primitive(Kind.CYLINDER, (pole_c[0] - pole_r, 0.0, pole_c[2] - pole_r),
                     (pole_c[0] + pole_r, 4.0, pole_c[2] + pole_r), Mat.METAL, (0.3, 0.3, 0.3))
    H, W = 64, 128
    _, depth = render(Scene(camera=cam, prims=[sphere, pole]), (H, W))
    d = _ray_dirs(cam, H, W)
    o = cam.origin()
    # sphere: |o + t d - c|^2 = r^2
    oc = o - c
    a, b, cc = (d * d).sum(-1), 2 * (d @ oc), oc @ oc - r * r
    disc = b * b - 4 * a * cc
    t_s = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    # cylinder side: (x - cx)^2 + (z - cz)^2 = r^2 with 0 <= y <= 4
    ox, oz = o[0] - pole_c[0], o[2] - pole_c[2]
    a2 = d[..., 0] ** 2 + d[..., 2] ** 2
    b2 = 2 * (ox * d[..., 0] + oz * d[..., 2])
    disc2 = b2 * b2 - 4 * a2 * (ox * ox + oz * oz - pole_r ** 2)
    t_c = np.where(disc2 > 0, (-b2 - np.sqrt(np.maximum(disc2, 0))) / (2 * a2), np.inf)
    y_c = o[1] + t_c * d[..., 1]
    t_c = np.where((y_c > 0) & (y_c < 4), t_c, np.inf)
    t_ref = np.minimum(t_s, t_c)
    sure = np.isfinite(t_ref) & (disc > 1e-3) | (disc2 > 1e-3) & np.isfinite(t_c)
    assert (np.isfinite(t_s) & sure).sum() > 50 and (np.isfinite(t_c) & sure).sum() > 20
    np.testing.assert_allclose(depth[sure], t_ref[sure], rtol=1e-4)


def test_render_is_deterministic_per_seed():
    a_rgb, a_depth = render_scene(3, (48, 160))
    b_rgb, b_depth = render_scene(3, (48, 160))
    c_rgb, c_depth = render_scene(4, (48, 160))
    assert a_rgb.dtype == np.uint8 and a_rgb.shape == (48, 160, 3)
    assert a_depth.dtype == np.float32 and a_depth.shape == (48, 160)
    np.testing.assert_array_equal(a_rgb, b_rgb)
    np.testing.assert_array_equal(a_depth, b_depth)
    assert not np.array_equal(a_rgb, c_rgb) and not np.array_equal(a_depth, c_depth)
    assert a_depth.min() > 0.5 and (a_depth < 80).mean() > 0.5  # a street, not an empty plain
    assert a_rgb.std() > 10  # not a flat colour


def _near_cars_ahead(scene) -> int:
    """Car bodies 3-30 m ahead whose middle is within 2 m of the camera's line of sight."""
    return sum(1 for p in scene.prims if p.material == Mat.CAR_BODY and 3 <= (p.lo[2] + p.hi[2]) / 2 <= 30
               and abs((p.lo[0] + p.hi[0]) / 2 - scene.camera.x_m) < 2.0)


def test_obstacles_profile_adds_to_the_same_street():
    plain_near = extra_near = jpeg = 0
    for seed in range(30):
        plain, extra = random_scene(seed), random_scene(seed, profile="obstacles")
        assert extra.prims[:len(plain.prims)] == plain.prims  # the street itself is unchanged
        assert extra.camera == plain.camera and extra.light == plain.light
        plain_near += _near_cars_ahead(plain)
        extra_near += _near_cars_ahead(extra)
        jpeg += extra.post.jpeg_quality > 0
        assert plain.post.jpeg_quality == 0
    assert extra_near > 1.5 * plain_near
    assert 5 < jpeg < 25
    with pytest.raises(ValueError, match="profile"):
        random_scene(0, profile="nope")


@pytest.mark.slow
def test_traffic_profile_fills_the_view_with_near_vehicles_from_varied_poses():
    heights, pitches, rolls, near_traffic, near_obstacles = [], [], [], [], []
    for seed in range(12):
        obstacles, traffic = random_scene(seed, profile="obstacles"), random_scene(seed, profile="traffic")
        assert traffic.prims[:len(obstacles.prims)] == obstacles.prims  # the same street and obstacles
        assert sum(p.material == Mat.CAR_BODY for p in traffic.prims) > sum(
            p.material == Mat.CAR_BODY for p in obstacles.prims)
        heights.append(traffic.camera.height_m)
        pitches.append(traffic.camera.pitch_deg)
        rolls.append(traffic.camera.roll_deg)
        if seed < 4:
            # the upper half of the view, where the road seldom is: what stands there
            near_traffic.append(float((render(traffic, (48, 160))[1][:24] < 10).mean()))
            near_obstacles.append(float((render(obstacles, (48, 160))[1][:24] < 10).mean()))
    assert 1.2 <= min(heights) and max(heights) <= 2.4 and max(heights) - min(heights) > 0.5
    assert max(map(abs, pitches)) <= 6 and max(pitches) - min(pitches) > 4
    assert max(map(abs, rolls)) <= 4 and max(rolls) - min(rolls) > 3
    # queues: more of the upper view is nearer than 10 m than on the same streets without them
    assert np.mean(near_traffic) > 1.5 * np.mean(near_obstacles), (near_traffic, near_obstacles)


def test_jpeg_quality_changes_colour_not_depth():
    scene = random_scene(2)
    rgb, depth = render(scene, (48, 160))
    rgb_j, depth_j = render(replace(scene, post=replace(scene.post, jpeg_quality=30)), (48, 160))
    np.testing.assert_array_equal(depth, depth_j)
    assert 0 < np.abs(rgb.astype(int) - rgb_j).mean() < 20


class CountTensorWork(TorchDispatchMode):
    """Counts the tensor operations run inside the block and the elements they output."""

    def __init__(self):
        super().__init__()
        self.ops = self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        self.elements += sum(t.numel() for t in (out if isinstance(out, (tuple, list)) else (out,))
                             if isinstance(t, torch.Tensor))
        return out


def render_work(seed: int, size: tuple[int, int]) -> CountTensorWork:
    with CountTensorWork() as work:
        render_scene(seed, size)
    return work


@pytest.mark.slow
def test_render_cost_at_training_size_is_linear_in_pixels():
    # Work counted, not timed, so the check does not depend on the machine or on what else runs.
    # The renderer is vectorised over pixels: the same tensor operations at any size (a per-pixel
    # or per-row Python loop would multiply them), with output elements growing no faster than the
    # pixel count, and a bounded amount of it per pixel (today about 1,500-2,300 elements).
    small, full = (48, 160), (192, 640)  # the training size has 16× the pixels
    for seed in range(4):
        a, b = render_work(seed, small), render_work(seed, full)
        assert abs(b.ops - a.ops) <= 0.01 * a.ops, (seed, a.ops, b.ops)
        assert b.elements < 16 * a.elements, (seed, a.elements, b.elements)
        assert b.elements < 3000 * full[0] * full[1], (seed, b.elements / (full[0] * full[1]))


def test_synthesize_writes_synthia_format(tmp_path):
    out = tmp_path / "synth"
    summary = synthesize(out, 3, (48, 160), seed=5, progress=False)
    assert summary["count"] == 3 and summary["images_per_s"] > 0
    for i in range(3):
        rgb, depth = render_scene(image_seed(5, i), (48, 160))
        png = cv2.imread(str(out / "Depth" / "Depth" / f"{i:07d}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16 and png.shape == (48, 160, 3)
        assert np.array_equal(png[..., 0], png[..., 1]) and np.array_equal(png[..., 0], png[..., 2])
        assert np.abs(png[..., 0].astype(np.float64) - depth * 100.0).max() <= 1.0  # centimetres
        sky = depth >= SKY_DEPTH_M
        assert sky.any() and np.all(png[..., 0][sky] == 65535)
        bgr = cv2.imread(str(out / "RGB" / f"{i:07d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(bgr[..., ::-1], rgb)
    meta = json.loads((out / "intrinsics.json").read_text())
    fx, fy, cx, cy = Camera().intrinsics(48, 160)
    assert (meta["width"], meta["height"], meta["count"], meta["seed"]) == (160, 48, 3, 5)
    assert meta["fx"] == pytest.approx(fx) and meta["fy"] == pytest.approx(fy)
    assert (meta["cx"], meta["cy"]) == (80.0, 24.0)
    assert meta["hfov_deg"] == pytest.approx(KITTI_HFOV_DEG)
    assert meta["camera_height_m"] == 1.65 and meta["sky_depth_m"] == pytest.approx(655.35)
    assert meta["generator"]["name"] == "depthda.synth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]  # no temporary folder left


def test_parse_size():
    assert parse_size("192x640") == (192, 640)
    assert parse_size(" 64X96 ") == (64, 96)
    for bad in ("abc", "192", "192x", "0x640", "8x640", "-1x5", "192x640x3", "1.5x2"):
        with pytest.raises(DepthdaError):
            parse_size(bad)


def _cli():
    app = typer.Typer()
    synth_cli.register(app)

    @app.callback()
    def _root() -> None:  # keeps `synth` a named subcommand, as in the real app
        pass

    return app


def _invoke(args):
    _cli()(args=["synth", *args, "--no-progress"], prog_name="depthda", standalone_mode=False)


def test_cli_renders_small_dataset(tmp_path, capsys):
    out = tmp_path / "d"
    _invoke(["--out", str(out), "--count", "2", "--size", "32x64", "--seed", "1", "--device", "cpu"])
    assert sorted(p.name for p in (out / "RGB").iterdir()) == ["0000000.png", "0000001.png"]
    assert "images/s" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "--count"),
    (["--count", "-3"], "--count"),
    (["--size", "abc"], "HEIGHTxWIDTH"),
    (["--size", "8x64"], "too small"),
    (["--size", "0x64"], "too small"),
    (["--profile", "fancy"], "profile"),
])
def test_cli_rejects_bad_input(tmp_path, args, message):
    out = tmp_path / "d"
    with pytest.raises(DepthdaError, match=message):
        _invoke(["--out", str(out), "--count", "1", "--size", "32x64", *args])
    assert not out.exists()


def test_cli_refuses_non_empty_out_without_overwrite(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    keep = out / "keep.txt"
    keep.write_text("mine")
    with pytest.raises(DepthdaError, match="--overwrite"):
        _invoke(["--out", str(out), "--count", "1", "--size", "32x64"])
    assert keep.read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    # --overwrite replaces only a dataset synth wrote: a folder of the user's files is refused (issue 24)
    with pytest.raises(DepthdaError, match="intrinsics.json of `depthda synth`"):
        _invoke(["--out", str(out), "--count", "1", "--size", "32x64", "--overwrite"])
    assert keep.read_text() == "mine"
    keep.unlink()
    _invoke(["--out", str(out), "--count", "1", "--size", "32x64"])
    _invoke(["--out", str(out), "--count", "2", "--size", "32x64", "--overwrite"])
    assert (out / "RGB" / "0000001.png").is_file()
    (out / "RGB" / "clip.mp4").write_bytes(b"not synth's")  # a foreign file inside synth's own dataset
    with pytest.raises(DepthdaError, match="did not write"):
        _invoke(["--out", str(out), "--count", "1", "--size", "32x64", "--overwrite"])
    assert (out / "RGB" / "clip.mp4").read_bytes() == b"not synth's"


def test_registered_command_exit_codes(tmp_path, capsys):
    from depthda.cli import COMMAND_MODULES, run

    if "synth" not in COMMAND_MODULES:
        pytest.skip("synth is not registered in depthda.cli yet")
    assert run(["synth", "--out", str(tmp_path / "d"), "--count", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("depthda: error:") and len(err.strip().splitlines()) == 1
    assert run(["synth", "--out", str(tmp_path / "d"), "--count", "1", "--size", "32x64", "--no-progress"]) == 0
