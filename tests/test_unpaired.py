"""Stage-2 unpaired data (real KITTI frames, dash-cam video, SYNTHIA-format renders) and the image pool."""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from depthda.data.kitti import read_split
from depthda.data.synthia import write_synthia_sample
from depthda.data.unpaired import (UnpairedDataset, collect_images, collect_synthetic, eigen_test_drives,
                                   random_resize_crop, read_video_frames, synthetic_image_paths)
from depthda.errors import DepthdaError
from depthda.models.image_pool import ImagePool
from depthda.utils.images import read_rgb

TEST_DRIVE = "2011_09_26_drive_0023_sync"  # the drive of the shipped KITTI frames
TRAIN_DRIVE = "2011_09_26_drive_0001_sync"  # an Eigen training drive
VIDEO_FRAMES = 75  # data/samples/dashcam_3s.mp4


def render_street(seed: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A flat-shaded synthetic street (sky, road, boxes) and its depth, like a crude SYNTHIA frame."""
    rng = np.random.default_rng(seed)
    rgb = np.empty((h, w, 3), np.uint8)
    horizon = int(h * rng.uniform(0.35, 0.5))
    rgb[:horizon] = (np.array([110, 160, 230]) * np.linspace(0.7, 1.0, horizon)[:, None]).astype(np.uint8)[:, None]
    rgb[horizon:] = rng.integers(70, 110)
    depth = np.full((h, w), 1000.0)
    rows = np.arange(horizon, h)
    depth[horizon:] = (1.65 * h / np.maximum(rows - horizon + 1, 1))[:, None]
    for _ in range(6):
        x0, bw = int(rng.integers(0, w - w // 8)), int(rng.integers(w // 30, w // 6))
        top, bottom = int(rng.integers(horizon // 3, horizon)), int(rng.integers(horizon + 2, h))
        rgb[top:bottom, x0:x0 + bw] = rng.integers(30, 230, 3)
        depth[top:bottom, x0:x0 + bw] = rng.uniform(5, 60)
    return rgb, depth


@pytest.fixture(scope="module")
def kitti_root(repo_data) -> Path:
    return repo_data / "kitti" / "raw"


@pytest.fixture(scope="module")
def synthia_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthia")
    for i, (h, w) in enumerate([(190, 320), (240, 320), (120, 400)]):  # mixed sizes on purpose
        write_synthia_sample(root, i, *render_street(i, h, w), layout="rand")
    return root


@pytest.fixture(scope="module")
def video(repo_data) -> Path:
    return repo_data / "samples" / "dashcam_3s.mp4"


@pytest.fixture(scope="module")
def kitti_clip(kitti_root, tmp_path_factory) -> Path:
    """The 7 shipped left frames of drive 0023 as a 10 fps MPEG-4 clip (KITTI's frame rate), written by OpenCV."""
    frames = sorted((kitti_root / "2011_09_26" / TEST_DRIVE / "image_02" / "data").glob("*.png"))
    first = cv2.imread(str(frames[0]))
    path = tmp_path_factory.mktemp("clip") / "drive_0023_image_02_10fps.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (first.shape[1], first.shape[0]))
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    assert len(decode_all(path)) == 7
    return path


def copy_drive(src_root: Path, dst_root: Path, drive: str) -> Path:
    src = src_root / "2011_09_26" / TEST_DRIVE
    shutil.copytree(src / "image_02", dst_root / "2011_09_26" / drive / "image_02")
    return dst_root


# --- KITTI raw roots and test-drive exclusion -------------------------------------------------

def test_eigen_test_drives_come_from_the_shipped_split_file(repo_data):
    drives = {f.drive for f in read_split(repo_data / "splits" / "eigen_test_files.txt")}
    assert drives == eigen_test_drives() and len(drives) == 28 and TEST_DRIVE in drives


def test_kitti_root_takes_left_frames_and_excludes_eigen_test_drives(kitti_root, tmp_path):
    # Drive 0023 is an Eigen test drive: by default nothing of the shipped root may be used.
    with pytest.raises(DepthdaError, match=f"no images left in .*7 frames belong to test drives .*{TEST_DRIVE}"):
        collect_images([kitti_root])
    kept = collect_images([kitti_root], exclude_eigen_test=False)
    # Only image_02/data: not the 16-bit proj_depth/groundtruth/image_02 PNGs beside them.
    assert len(kept) == 7 and all(p.parent.parent.name == "image_02" and p.parent.name == "data"
                                  for p in kept.items)
    assert kept.excluded_frames == 0 and kept.unreadable == 0

    # A custom split: its drives are excluded, other drives are not.
    own = tmp_path / "own_split.txt"
    own.write_text(f"2011_09_26/{TEST_DRIVE} 5 l\n")
    with pytest.raises(DepthdaError, match="belong to test drives"):
        collect_images([kitti_root], exclude_eigen_test=False, exclude_split=own)
    other = tmp_path / "other_split.txt"
    other.write_text("2011_09_26/2011_09_26_drive_0002_sync 69 l\n")
    assert len(collect_images([kitti_root], exclude_eigen_test=False, exclude_split=other)) == 7

    # A root mixing a training drive and a test drive keeps only the training drive's frames.
    mixed = copy_drive(kitti_root, tmp_path / "mixed", TRAIN_DRIVE)
    copy_drive(kitti_root, mixed, TEST_DRIVE)
    images = collect_images([mixed])
    assert len(images) == 7 and all(TRAIN_DRIVE in str(p) for p in images.items)
    assert images.excluded_frames == 7 and images.excluded_drives == [TEST_DRIVE]
    assert "7 frames of 1 test drive(s) excluded" in images.describe()
    # A single drive folder is recognised too, and still excluded.
    with pytest.raises(DepthdaError, match="belong to test drives"):
        collect_images([mixed / "2011_09_26" / TEST_DRIVE])


def test_kitti_root_ignores_right_camera(kitti_root, tmp_path):
    # A full raw root has image_03 (right camera) beside image_02; the shipped root has only the left
    # frames, so the right camera's folder is filled with copies of them (real KITTI PNGs either way).
    root = tmp_path / "stereo"
    shutil.copytree(kitti_root, root)
    drive = root / "2011_09_26" / TEST_DRIVE
    shutil.copytree(drive / "image_02" / "data", drive / "image_03" / "data")
    assert len(list((drive / "image_03" / "data").glob("*.png"))) == 7
    images = collect_images([root], exclude_eigen_test=False)
    assert len(images) == 7 and all("image_02" in str(p) for p in images.items)


# --- videos --------------------------------------------------------------------------------------

def decode_all(path: Path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def test_video_frames_are_evenly_sampled_bounded_and_downscaled(video):
    every = decode_all(video)
    assert len(every) == VIDEO_FRAMES
    frames = read_video_frames(video, max_frames=10)
    stride = -(-VIDEO_FRAMES // 10)  # 23
    assert len(frames) == len(range(0, VIDEO_FRAMES, stride)) == 10
    for k in (0, 5, 9):
        assert np.array_equal(frames[k], every[k * stride])
    # An explicit stride that would keep too many frames is thinned, still evenly.
    thinned = read_video_frames(video, stride=1, max_frames=10)
    assert 5 <= len(thinned) <= 10
    step = [i for i, f in enumerate(every) if np.array_equal(f, thinned[1])][0]
    assert step > 1 and np.array_equal(thinned[3], every[3 * step])
    # Cached frames keep twice the resolution a 64×128 crop needs, not the 960×540 original.
    small = read_video_frames(video, max_frames=4, size=(64, 128))
    assert small[0].shape == (round(540 * 256 / 960), 256, 3)


def write_unreadable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    good = (folder / "a_good.png")
    (folder / "b_empty.png").write_bytes(b"")
    (folder / "c_text.jpg").write_text("not an image")
    data = good.read_bytes()
    (folder / "d_truncated.png").write_bytes(data[: len(data) // 2])
    # Right signature and end chunk, destroyed pixel data: only a real decode notices.
    corrupt = bytearray(data)
    corrupt[100:-100] = bytes(len(corrupt) - 200)
    (folder / "e_corrupt.png").write_bytes(bytes(corrupt))


def test_folder_mixing_images_videos_and_unreadable_files(tmp_path, test_data, kitti_clip):
    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copy(test_data / "paper_examples" / "1.png", folder / "a_good.png")
    shutil.copy(test_data / "paper_examples" / "2.png", folder / "sub_good.png")
    shutil.copy(kitti_clip, folder / "clip.mp4")
    (folder / "notes.txt").write_text("not an image, not counted")
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    write_unreadable(folder)
    images = collect_images([folder])
    # 2 images + the 7 frames of the clip; empty, text, truncated, corrupt PNG and broken video skipped.
    assert len(images) == 9 and images.unreadable == 5
    assert "9 images from 1 source (5 unreadable skipped" in images.describe()
    assert sum(isinstance(x, np.ndarray) for x in images.items) == 7

    # Large sets skip the full decode: the corrupt PNG passes the cheap checks and is replaced and
    # counted when read.
    lazy = collect_images([folder], decode_check_limit=0)
    assert len(lazy) == 10 and lazy.unreadable == 4
    corrupt = [i for i, p in enumerate(lazy.items) if isinstance(p, Path) and p.name == "e_corrupt.png"][0]
    replacement = lazy.read(corrupt)
    assert lazy.runtime_failures == 1 and replacement.shape[2] == 3
    lazy.read(corrupt)
    assert lazy.runtime_failures == 1  # a known-bad file is not retried


def test_nothing_left_single_image_empty_and_missing(tmp_path, test_data):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"")
    (broken / "y.jpg").write_text("nope")
    with pytest.raises(DepthdaError, match=r"no readable images in .*broken \(2 unreadable skipped\)"):
        collect_images([broken])
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(test_data / "paper_examples" / "3.png", single)
    with pytest.raises(DepthdaError, match="needs at least 2 images per domain"):
        collect_images([single])
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(DepthdaError, match="no images or videos found in .*empty_folder"):
        collect_images([empty, single])
    with pytest.raises(DepthdaError, match="not found"):
        collect_images([tmp_path / "missing"])
    with pytest.raises(DepthdaError, match="no images found in"):
        collect_synthetic(empty)
    one_synth = tmp_path / "one_synth"
    write_synthia_sample(one_synth, 0, *render_street(0, 64, 96))
    with pytest.raises(DepthdaError, match="synthetic domain has 1 image"):
        collect_synthetic(one_synth)


# --- synthetic domain ----------------------------------------------------------------------------

def test_synthetic_layouts(tmp_path, synthia_root, test_data):
    assert [p.name for p in synthetic_image_paths(synthia_root)] == ["0000000.png", "0000001.png", "0000002.png"]
    seqs = tmp_path / "SYNTHIA-SEQS-01-SPRING"
    for i in range(3):
        write_synthia_sample(seqs, i, *render_street(i, 60, 100), layout="seqs")
    paths = synthetic_image_paths(seqs)
    assert len(paths) == 3 and all(p.parent.parts[-3:] == ("RGB", "Stereo_Left", "Omni_F") for p in paths)
    # A folder of several sequences; the 16-bit depth PNGs are never taken as RGB.
    shutil.copytree(seqs, tmp_path / "SYNTHIA-SEQS-02-SUMMER")
    assert len(synthetic_image_paths(tmp_path)) == 6
    assert len(synthetic_image_paths(test_data / "paper_examples")) == 3  # its licence text is not an image
    with pytest.raises(DepthdaError, match="not found"):
        synthetic_image_paths(tmp_path / "nope")


# --- the dataset ---------------------------------------------------------------------------------

def test_dataset_items_mixed_sizes_reproducible_and_picklable(synthia_root, test_data, kitti_root, video):
    size = (64, 160)
    # 1216×352 examples, 1242×375 KITTI frames, 960×540 video frames; 3 synthetic sizes.
    sources = [test_data / "paper_examples", kitti_root, video]
    # Every 15th of the clip's 75 frames: 0, 15, 30, 45, 60.
    ds = UnpairedDataset(sources, synthia_root, size, seed=3, exclude_eigen_test=False, video_stride=15)
    assert len(ds.real) == 3 + 7 + 5 and len(ds.synthetic) == 3 and len(ds) == 15
    assert ds.summary().startswith("real: 15 images from 3 sources") and "synthetic: 3 images" in ds.summary()
    shapes = set()
    for i in range(len(ds)):
        item = ds[i]
        for key in ("A", "B"):
            x = item[key]
            assert x.dtype == torch.float32 and x.shape == (3, *size)
            assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
        shapes.add(ds.real.read(i).shape)
    assert len(shapes) == 3

    again = ds[4]
    assert torch.equal(ds[4]["A"], again["A"]) and torch.equal(ds[4]["B"], again["B"])
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["A"], again["A"])
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[4]["A"], ds[4]["A"]) and torch.equal(clone[4]["B"], ds[4]["B"])

    # Without augmentation A is the centre crop of real image i, scaled to cover the crop.
    plain = ds.variant(seed=0, augment=False)
    assert plain.real is ds.real and ds.augment and ds.seed == 3  # shares the decoded sets, leaves ds alone
    expected = random_resize_crop(read_rgb(test_data / "paper_examples" / "2.png"), size, None, augment=False)
    assert torch.equal(plain[1]["A"], torch.from_numpy(expected).permute(2, 0, 1).float() / 127.5 - 1)
    with pytest.raises(IndexError):
        plain[len(plain)]


def test_dataset_b_draws_cover_the_synthetic_set_and_loader_works(synthia_root, kitti_root):
    ds = UnpairedDataset([kitti_root], synthia_root, (32, 96), exclude_eigen_test=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1)
    batches = list(loader)
    assert sum(b["A"].shape[0] for b in batches) == 7 and batches[0]["B"].shape == (4, 3, 32, 96)
    # B is random: over the epoch several synthetic images are drawn.
    firsts = {tuple(ds[i]["B"][:, 0, 0].tolist()) for i in range(len(ds))}
    assert len(firsts) >= 2


def test_dataset_wraps_the_smaller_real_domain(tmp_path, synthia_root, test_data):
    real = tmp_path / "two"
    real.mkdir()
    for name in ("2.png", "3.png"):
        shutil.copy(test_data / "paper_examples" / name, real / name)
    ds = UnpairedDataset([real], synthia_root, (32, 96), augment=False)
    assert len(ds) == 3
    assert torch.equal(ds[2]["A"], ds[0]["A"]) and not torch.equal(ds[1]["A"], ds[0]["A"])
    # B is drawn by default_rng([seed, epoch, index]), independently of A's position.
    synthetic = [random_resize_crop(ds.synthetic.read(j), (32, 96), None, augment=False) for j in range(3)]
    drawn = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(3):
            j = int(np.random.default_rng([0, epoch, i]).integers(3))
            assert np.array_equal(((ds[i]["B"] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy(), synthetic[j])
            drawn.append(j)
    assert drawn != [i % 3 for i in range(3)] * 4


# --- the image pool ------------------------------------------------------------------------------

def fake_batches(n: int, batch: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return [torch.rand(batch, 3, 4, 4, generator=g) for _ in range(n)]


def run(pool: ImagePool, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    return [pool.query(b) for b in batches]


def test_image_pool_fills_then_mixes_history():
    pool = ImagePool(4, torch.Generator().manual_seed(0))
    batches = fake_batches(40)
    out = run(pool, batches)
    assert torch.equal(out[0], batches[0]) and torch.equal(out[1], batches[1])  # filling: pass-through
    seen = torch.cat(batches)
    returned = torch.cat(out[2:])
    fresh = [torch.equal(r, b) for r, b in zip(returned, torch.cat(batches[2:]))]
    # Once full about half the returned images are older fakes, and every one is a fake seen before.
    assert 0.3 < 1 - np.mean(fresh) < 0.7
    assert all(any(torch.equal(r, s) for s in seen) for r in returned)
    assert len(pool) == 4
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    assert not pool.query(x).requires_grad
    assert torch.equal(ImagePool(0).query(x), x)
    with pytest.raises(ValueError, match="differs"):
        pool.query(torch.rand(1, 3, 8, 8))


def test_image_pool_is_deterministic_and_resumes_exactly():
    batches = fake_batches(30)
    a = run(ImagePool(5, torch.Generator().manual_seed(7)), batches)
    b = run(ImagePool(5, torch.Generator().manual_seed(7)), batches)
    c = run(ImagePool(5, torch.Generator().manual_seed(8)), batches)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))

    interrupted = ImagePool(5, torch.Generator().manual_seed(7))
    run(interrupted, batches[:12])
    buffer = io.BytesIO()
    torch.save(interrupted.state_dict(), buffer)
    run(interrupted, batches[12:14])  # work after the checkpoint that the resumed run must not see
    buffer.seek(0)
    resumed = ImagePool(5, torch.Generator().manual_seed(999))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert all(torch.equal(x, y) for x, y in zip(run(resumed, batches[12:]), a[12:]))

    empty = ImagePool(5).state_dict()
    fresh = ImagePool(5)
    fresh.load_state_dict(empty)
    assert len(fresh) == 0
    with pytest.raises(ValueError, match="pool size"):
        ImagePool(3).load_state_dict(empty)
