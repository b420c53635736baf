from pathlib import Path

import cv2
import numpy as np
import pytest

from depthda.data.kitti import (KittiCalib, load_calib, load_velodyne, project_velodyne, read_annotated_depth,
                                read_split)
from depthda.errors import DepthdaError
from kitti_fixtures import OBJECT_DRIVE, build_object_as_raw


@pytest.fixture(scope="module")
def object_root(tmp_path_factory, repo_data):
    return build_object_as_raw(repo_data / "kitti" / "object", tmp_path_factory.mktemp("kitti_raw"))


def test_split_parsing_padded_unpadded_and_sides(tmp_path):
    path = tmp_path / "split.txt"
    path.write_text("2011_09_26/2011_09_26_drive_0002_sync 0000000069 l\n"
                    "2011_09_26/2011_09_26_drive_0002_sync 54 r\n\n")
    frames = read_split(path)
    assert [(f.folder, f.index, f.camera) for f in frames] == [
        ("2011_09_26/2011_09_26_drive_0002_sync", 69, 2), ("2011_09_26/2011_09_26_drive_0002_sync", 54, 3)]
    assert frames[1].image_path(Path("/k")) == Path(
        "/k/2011_09_26/2011_09_26_drive_0002_sync/image_03/data/0000000054.png")
    assert str(frames[1]) == "2011_09_26/2011_09_26_drive_0002_sync 0000000054 r"


def test_shipped_splits_have_published_sizes(repo_data):
    eigen = read_split(repo_data / "splits" / "eigen_test_files.txt")
    bench = read_split(repo_data / "splits" / "eigen_benchmark_test_files.txt")
    assert len(eigen) == 697 and len(bench) == 652
    assert str(eigen[0]) == "2011_09_26/2011_09_26_drive_0002_sync 0000000069 l"
    assert len({f.drive for f in eigen}) == 28  # the 28 Eigen test drives
    assert {str(f) for f in bench} <= {str(f) for f in eigen}


def test_split_errors(tmp_path):
    with pytest.raises(DepthdaError, match="not found"):
        read_split(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("2011_09_26/drive 12 x\n")
    with pytest.raises(DepthdaError, match="bad.txt:1"):
        read_split(bad)


def test_raw_calibration_matches_published_intrinsics(repo_data):
    calib = load_calib(repo_data / "kitti" / "raw" / "2011_09_26", camera=2)
    assert calib.image_size == (375, 1242)
    assert calib.focal_px == pytest.approx(721.5377)
    assert calib.velo_to_image.shape == (3, 4)


def test_projection_matches_reference_pixels_and_sensor_offset(object_root, repo_data):
    """The reference PNG stores camera z: same pixels, values differ by the velodyne→camera offset."""
    calib = load_calib(object_root / "2011_09_26", camera=2)
    scan = load_velodyne(object_root / OBJECT_DRIVE / "velodyne_points" / "data" / "0000000000.bin")
    depth = project_velodyne(scan, calib)
    camera_z = project_velodyne(scan, calib, use_velodyne_x=False)
    reference = cv2.imread(str(repo_data / "kitti/object/proj_depth_velodyne/000008.png"), cv2.IMREAD_UNCHANGED)
    reference = reference.astype(np.float32) / 256
    assert depth.shape == reference.shape == (375, 1242)
    assert np.array_equal(depth > 0, reference > 0)
    valid = reference > 0
    assert valid.sum() > 10000
    assert np.abs(camera_z[valid] - reference[valid]).max() <= 1 / 256
    # The camera sits ~0.27 m behind the scanner (T_z of Tr_velo_to_cam); small rotations spread it.
    offset = depth[valid] - reference[valid]
    assert abs(np.median(offset) - 0.27) < 0.02
    assert np.abs(offset - 0.27).max() < 0.06


def test_projection_keeps_closest_point_and_drops_rear_points():
    calib = KittiCalib(
        p_rect=np.array([[100.0, 0, 50, 0], [0, 100, 25, 0], [0, 0, 1, 0]]),
        r_rect=np.eye(4),
        # velodyne x forward, y left, z up -> camera x right, y down, z forward
        velo_to_cam=np.array([[0, -1.0, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]),
        image_size=(50, 100),
    )
    points = np.array([[10.0, 0, 0, 1], [5.0, 0, 0, 1], [20.0, 0, 0, 1], [-10.0, 0, 0, 1]], dtype=np.float32)
    depth = project_velodyne(points, calib)
    # all three forward points land on u=50, v=25 -> pixel (24, 49) after round() - 1
    assert depth[24, 49] == 5.0
    assert (depth > 0).sum() == 1


def test_annotated_depth_reading(repo_data, test_data, tmp_path):
    path = repo_data / "kitti/raw/2011_09_26/2011_09_26_drive_0023_sync/proj_depth/groundtruth/image_02/0000000000.png"
    depth = read_annotated_depth(path)
    # The packnet-sfm float32 original that the shipped PNG was encoded from.
    raw = np.load(test_data / "kitti_raw_tiny_velodyne" / "0000000000.npz")["velodyne_depth"]
    assert depth.shape == (375, 1242)
    assert np.array_equal(depth > 0, raw > 0)
    assert np.abs(depth - raw).max() <= 1 / 512 + 1e-6
    eight_bit = tmp_path / "8bit.png"
    cv2.imwrite(str(eight_bit), np.zeros((4, 4), np.uint8))
    with pytest.raises(DepthdaError, match="16-bit"):
        read_annotated_depth(eight_bit)

