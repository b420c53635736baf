"""Point clouds: back-projection geometry, PLY/GLB files read back by independent readers, and
`depthda predict ... -o cloud.ply|glb` on real frames (KITTI with its calibration)."""

import json
import struct

import numpy as np
import pytest

from depthda.cli import run
from depthda.data.kitti import read_annotated_depth
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.pointcloud import (CloudOptions, Intrinsics, back_project, depth_to_cloud, principal_from_calib,
                                      project, write_cloud)
from depthda.infer.checks import focal_from_calib
from depthda.utils.images import read_rgb

plyfile = pytest.importorskip("plyfile", reason="plyfile (test extra) reads the PLY files back")

pytestmark = [pytest.mark.usefixtures("one_thread")]

K = Intrinsics(fx=700.0, fy=690.0, cx=300.5, cy=110.25)
H, W = 240, 640


def plane_depth(normal, offset):
    """z-depth of the plane normal·X = offset seen through K (0 where a ray misses it)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], axis=-1)
    denom = rays @ np.asarray(normal, np.float64)
    z = np.where(denom > 1e-9, offset / np.where(denom > 1e-9, denom, 1), 0.0)
    return np.where(z < 200, z, 0.0)


@pytest.mark.parametrize("normal,offset", [((0, 1, 0), 1.65), ((0.1, 0.9, 0.2), 2.0), ((0.2, -0.1, 1.0), 15.0)])
def test_plane_comes_back(normal, offset):
    normal = np.asarray(normal) / np.linalg.norm(normal)
    depth = plane_depth(normal, offset)
    rows, cols = np.nonzero(depth > 0)
    assert len(rows) > 1000
    points = back_project(depth, K, rows, cols)
    assert np.abs(points @ normal - offset).max() < 1e-5
    # The float32 cloud: a least-squares plane through it is the same plane.
    cloud = depth_to_cloud(depth.astype(np.float32), None, K)
    p = cloud.points.astype(np.float64)
    centroid = p.mean(0)
    fitted = np.linalg.svd(p - centroid, full_matrices=False)[2][-1]
    fitted *= np.sign(fitted @ normal)
    assert np.abs(fitted - normal).max() < 1e-5
    assert abs(centroid @ fitted - offset) < 1e-5 * max(1.0, offset)


def test_points_reproject_to_their_pixels():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 80, (H, W)).astype(np.float32)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cloud = depth_to_cloud(depth, rgb, K)
    assert len(cloud) == H * W
    uv = project(cloud.points, K)
    assert np.abs(uv - cloud.pixels[:, ::-1]).max() < 1e-3  # float32 points: ~1e-7 relative
    np.testing.assert_array_equal(cloud.colors, rgb[cloud.pixels[:, 0], cloud.pixels[:, 1]])
    np.testing.assert_array_equal(cloud.points[:, 2], depth[cloud.pixels[:, 0], cloud.pixels[:, 1]])


def test_stride_max_depth_and_sky():
    depth = np.full((H, W), 10.0, np.float32)
    depth[:50] = 80.0      # sky: the model's far limit
    depth[50:60] = 30.0
    depth[60:62] = np.nan  # no depth
    depth[62:64] = 0.0
    cloud = depth_to_cloud(depth, None, K, CloudOptions(), sky_depth=80.0)
    assert cloud.points[:, 2].max() == 30.0 and len(cloud) == (H - 50 - 4) * W
    assert len(depth_to_cloud(depth, None, K, CloudOptions(keep_sky=True), sky_depth=80.0)) == (H - 4) * W
    near = depth_to_cloud(depth, None, K, CloudOptions(max_depth=20), sky_depth=80.0)
    assert near.points[:, 2].max() == 10.0
    thin = depth_to_cloud(depth, None, K, CloudOptions(stride=4), sky_depth=80.0)
    kept_rows = [r for r in range(0, H, 4) if 50 <= r < 60 or r >= 64]
    assert (thin.pixels % 4 == 0).all() and len(thin) == len(kept_rows) * len(range(0, W, 4))


def read_glb_points(path):
    """POSITION and COLOR_0 of a GLB's first primitive, parsed by hand from the glTF 2.0 spec."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    gltf = json.loads(data[20:20 + json_len])
    bin_start = 20 + json_len + 8
    assert data[20 + json_len + 4:bin_start] == b"BIN\0"
    prim = gltf["meshes"][0]["primitives"][0]
    assert prim.get("mode") == 0  # POINTS

    def accessor(index, dtype, width):
        acc = gltf["accessors"][index]
        view = gltf["bufferViews"][acc["bufferView"]]
        start = bin_start + view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        return np.frombuffer(data, dtype, acc["count"] * width, start).reshape(-1, width), acc

    xyz, acc = accessor(prim["attributes"]["POSITION"], "<f4", 3)
    assert acc["componentType"] == 5126
    colour_acc = gltf["accessors"][prim["attributes"]["COLOR_0"]]
    assert colour_acc["componentType"] == 5121 and colour_acc.get("normalized")
    rgba, _ = accessor(prim["attributes"]["COLOR_0"], "u1", 4)
    return xyz, rgba


def test_ply_and_glb_read_back(tmp_path):
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 50, (30, 40)).astype(np.float32)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    cloud = depth_to_cloud(depth, rgb, Intrinsics.centred(50.0, 30, 40))
    write_cloud(tmp_path / "c.ply", cloud)
    ply = plyfile.PlyData.read(str(tmp_path / "c.ply"))
    assert ply.text is False and ply.byte_order == "<"
    v = ply["vertex"].data
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), cloud.points)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), cloud.colors)
    write_cloud(tmp_path / "c.glb", cloud)
    xyz, rgba = read_glb_points(tmp_path / "c.glb")
    np.testing.assert_allclose(xyz, cloud.points * [1, -1, -1])  # glTF: y up, looking down -z
    np.testing.assert_array_equal(rgba[:, :3], cloud.colors)


def ply_points(path):
    v = plyfile.PlyData.read(str(path))["vertex"].data
    return np.stack([v["x"], v["y"], v["z"]], 1)


def test_predict_writes_clouds(ckpt, test_data, tmp_path):
    example = test_data / "paper_examples" / "1.png"
    assert run(["predict", str(example), "-o", str(tmp_path / "a.ply"), "--checkpoint", str(ckpt),
                "--focal", "500", "--keep-sky"]) == 0
    pts = ply_points(tmp_path / "a.ply")
    h, w = read_rgb(example).shape[:2]
    assert len(pts) == h * w and (pts[:, 2] > 0).all()
    # Intrinsics: focal 500, principal point at the centre, so the corners' rays are known.
    assert np.allclose(pts[0, :2] / pts[0, 2], [-(w - 1) / 2 / 500, -(h - 1) / 2 / 500], rtol=1e-5)
    assert run(["predict", str(example), "-o", str(tmp_path / "a.glb"), "--checkpoint", str(ckpt),
                "--stride", "3", "--keep-sky"]) == 0
    xyz, _ = read_glb_points(tmp_path / "a.glb")
    assert len(xyz) == len(range(0, h, 3)) * len(range(0, w, 3))
    # A folder: one cloud per image, mirrored names; the side output still works.
    assert run(["predict", str(test_data / "paper_examples"), "-o", str(tmp_path / "clouds"), "--checkpoint",
                str(ckpt), "--cloud", "ply", "--stride", "8", "--depth-format", "npy"]) == 0
    assert sorted(p.name for p in (tmp_path / "clouds").iterdir()) == ["1.ply", "2.ply", "3.ply"]
    assert len(ply_points(tmp_path / "clouds" / "2.ply")) > 0
    assert sorted(p.name for p in (tmp_path / "clouds_depth").iterdir()) == ["1.npy", "2.npy", "3.npy"]


def test_predict_cloud_bad_requests(ckpt, test_data, repo_data, tmp_path, capsys):
    example = test_data / "paper_examples" / "1.png"
    video = repo_data / "samples" / "dashcam_3s.mp4"
    cases = [
        [str(video), "-o", str(tmp_path / "v.ply")],
        [str(example), "-o", str(tmp_path / "a.ply"), "--stride", "0"],
        [str(example), "-o", str(tmp_path / "a.ply"), "--max-depth", "-3"],
        [str(example), "-o", str(tmp_path / "a.ply"), "--side-by-side"],
        [str(example), "-o", str(tmp_path / "a.png"), "--cloud", "glb"],
        [str(example), "-o", str(tmp_path / "a.ply"), "--max-depth", "0.01"],  # nothing left to write
    ]
    (tmp_path / "a.ply").write_bytes(b"keep me")
    for args in cases:
        capsys.readouterr()
        assert run(["predict", *args, "--checkpoint", str(ckpt)]) == 1, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("depthda: error: "), (args, err)
    assert (tmp_path / "a.ply").read_bytes() == b"keep me"  # a failed run leaves the old output
    # The output guards cover the new kind: a folder's clouds may not go inside it.
    inside = tmp_path / "in"
    inside.mkdir()
    (inside / "x.png").write_bytes(example.read_bytes())
    assert run(["predict", str(inside), "-o", str(inside / "clouds"), "--cloud", "ply", "--checkpoint", str(ckpt)]) == 1
    assert sorted(p.name for p in inside.iterdir()) == ["x.png"]


def test_kitti_road_height(repo_data):
    """The shipped model's cloud of a KITTI frame, with its calibration: the road ahead lies
    about where the LiDAR puts it (camera ~1.65 m above the road, y down)."""
    raw = repo_data / "kitti" / "raw" / "2011_09_26"
    calib = raw / "calib_cam_to_cam.txt"
    drive = raw / "2011_09_26_drive_0023_sync"
    focal, principal = focal_from_calib(calib), principal_from_calib(calib)
    pipe = DepthPipeline.from_checkpoint(device="cpu")
    cloud = pipe.point_cloud(read_rgb(drive / "image_02" / "data" / "0000000000.png"), focal_px=focal,
                             options=CloudOptions(principal=principal))
    lidar = depth_to_cloud(read_annotated_depth(drive / "proj_depth" / "groundtruth" / "image_02" / "0000000000.png"),
                           None, Intrinsics(focal, focal, *principal))

    def road(c):  # the lane ahead: bottom rows, middle columns
        r, col = c.pixels[:, 0], c.pixels[:, 1]
        p = c.points[(r >= 300) & (col >= 450) & (col <= 800)]
        fit = np.linalg.lstsq(np.c_[p[:, 0], p[:, 2], np.ones(len(p))], p[:, 1], rcond=None)
        return float(np.median(p[:, 1])), float(np.sqrt(fit[1][0] / len(p)))

    height, spread = road(cloud)
    lidar_height, _ = road(lidar)
    assert 1.55 < lidar_height < 1.8  # the reference itself
    assert abs(height - lidar_height) < 0.3
    assert spread < 0.2  # flat: points within a few cm of a plane
