"""SYNTHIA reader, split and paired augmentation, on files written in SYNTHIA's real format."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from depthda.data.augment import augment_pair, color_jitter, paired_resize_crop, resize_to, to_tensor
from depthda.data.synthia import (SYNTHIA_FOCAL_PX, detect_layout, list_pairs, read_depth, split_pairs,
                                  write_synthia_sample)
from depthda.data.synthia_dataset import SynthiaDataset
from depthda.data.unpaired import synthetic_image_paths
from depthda.errors import DepthdaError
from depthda.utils.images import read_rgb

H, W = 40, 64


def coded_pair(h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    """RGB and depth that both encode the pixel position: depth = 1 m + x m + y cm, R = 4x, G = 6y."""
    y, x = np.mgrid[0:h, 0:w]
    depth = (100 + 100 * x + y).astype(np.float32) / 100
    rgb = np.stack([4 * x, 6 * y, np.full_like(x, 128)], axis=2).astype(np.uint8)
    return rgb, depth


def decode_depth(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cm = np.round(depth * 100).astype(np.int64) - 100
    return cm // 100, cm % 100


def make_root(root: Path, n: int, layout: str = "rand", h: int = H, w: int = W) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        depth = rng.uniform(0.5, 120.0, (h, w)).astype(np.float32)
        depth[:3] = 0  # an invalid band, as 0 marks "no depth"
        write_synthia_sample(root, i, rgb, depth, layout=layout)
    return root


# --- layout and listing -----------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["rand", "seqs"])
def test_both_layouts_detected_and_paired_by_name(tmp_path, layout):
    root = make_root(tmp_path / layout, 3, layout)
    assert detect_layout(root) == layout
    pairs = list_pairs(root)
    assert len(pairs) == 3
    for rgb_path, depth_path in pairs:
        assert rgb_path.name == depth_path.name
        assert "Depth" in depth_path.parts and "Depth" not in rgb_path.parts


def test_unknown_root_lists_both_layouts_and_contents(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DepthdaError) as err:
        detect_layout(tmp_path)
    msg = str(err.value)
    for part in ("RGB/ + Depth/Depth/", "RAND-CITYSCAPES", "RGB/Stereo_Left/Omni_F/",
                 "Depth/Stereo_Left/Omni_F/", "SEQS", "images/", "readme.txt"):
        assert part in msg
    with pytest.raises(DepthdaError, match="not found"):
        list_pairs(tmp_path / "missing")
    (tmp_path / "RGB").mkdir()
    (tmp_path / "Depth" / "Depth").mkdir(parents=True)
    with pytest.raises(DepthdaError, match="no PNG"):
        list_pairs(tmp_path)


def test_count_mismatch_names_counts_and_a_missing_file(tmp_path):
    root = make_root(tmp_path, 3)
    (root / "Depth" / "Depth" / "0000001.png").unlink()
    with pytest.raises(DepthdaError, match=r"3 RGB and 2 depth.*0000001\.png"):
        list_pairs(root)


# --- depth decoding ---------------------------------------------------------------------------

def test_depth_in_metres_to_the_centimetre_and_capped(tmp_path):
    values = np.array([[0.0, 0.01, 1.23, 2.56, 2.57, 9.99],
                       [42.42, 79.99, 80.0, 80.01, 654.99, 700.0]], dtype=np.float32)
    _, depth_path = write_synthia_sample(tmp_path, 0, np.zeros((2, 6, 3), np.uint8), values)
    raw = read_depth(depth_path, max_depth=None)
    assert raw.dtype == np.float32 and raw.shape == (2, 6)
    # 700 m does not fit the format: the writer saturates at 65535 cm.
    np.testing.assert_allclose(raw, np.minimum(values, 655.35), atol=0.005)
    capped = read_depth(depth_path)
    np.testing.assert_allclose(capped, np.minimum(values, 80.0), atol=0.005)
    assert capped[0, 0] == 0.0 and capped.max() == np.float32(80.0)


def test_depth_resaved_through_pillow_is_refused(tmp_path):
    from PIL import Image

    rgb, depth = coded_pair()
    _, depth_path = write_synthia_sample(tmp_path, 0, rgb, depth)
    resaved = tmp_path / "resaved.png"
    Image.open(depth_path).save(resaved)
    with pytest.raises(DepthdaError, match="8-bit depth.*16-bit.*Pillow"):
        read_depth(resaved)


def test_other_bad_depth_files(tmp_path):
    eight_bit = tmp_path / "d8.png"
    cv2.imwrite(str(eight_bit), np.full((4, 4, 3), 200, np.uint8))
    with pytest.raises(DepthdaError, match="8-bit depth"):
        read_depth(eight_bit)
    mixed = tmp_path / "mixed.png"
    cv2.imwrite(str(mixed), np.dstack([np.full((4, 4), v, np.uint16) for v in (100, 200, 300)]))
    with pytest.raises(DepthdaError, match="3 different channels"):
        read_depth(mixed)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    with pytest.raises(DepthdaError, match="corrupt.png"):
        read_depth(corrupt)
    with pytest.raises(DepthdaError, match="nope.png"):
        read_depth(tmp_path / "nope.png")
    single = tmp_path / "single.png"
    cv2.imwrite(str(single), np.full((4, 4), 1234, np.uint16))
    np.testing.assert_allclose(read_depth(single), 12.34, atol=1e-5)


# --- split ------------------------------------------------------------------------------------

def fake_pairs(names):
    return [(Path("RGB") / f"{n}.png", Path("Depth/Depth") / f"{n}.png") for n in names]


def test_split_is_by_name_only():
    names = [f"{i:07d}" for i in range(200)]
    pairs = fake_pairs(names)
    train, val = split_pairs(pairs, 0.05)
    # crc32(stem) mod 1000 < 50: pinned so the split is identical on every machine and version.
    assert [p[0].stem for p in val] == ["0000012", "0000035", "0000075", "0000124", "0000129",
                                       "0000134", "0000136", "0000138", "0000143", "0000153"]
    assert len(train) == 190 and not set(train) & set(val)
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    assert split_pairs(shuffled, 0.05) == (train, val)
    # Membership does not depend on which other files exist.
    _, val_subset = split_pairs(pairs[100:], 0.05)
    assert val_subset == [p for p in val if p in pairs[100:]]


def test_split_small_sets_keep_a_validation_image():
    for names in (["a", "b"], ["0000000", "0000001", "0000002"]):
        train, val = split_pairs(fake_pairs(names), 0.05)
        assert len(val) == 1 and len(train) == len(names) - 1
        assert split_pairs(fake_pairs(names[::-1]), 0.05) == (train, val)
    assert split_pairs(fake_pairs(["only"]), 0.05) == (fake_pairs(["only"]), [])
    assert split_pairs(fake_pairs(["a", "b"]), 0.0) == (fake_pairs(["a", "b"]), [])
    with pytest.raises(DepthdaError):
        split_pairs(fake_pairs(["a"]), 1.0)


# --- augmentation -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(16, 24), (48, 80)])  # shrinking and enlarging
def test_augmentation_keeps_rgb_and_depth_aligned(size):
    rgb, depth = coded_pair()
    flips = set()
    for seed in range(12):
        out_rgb, out_depth, _ = augment_pair(rgb, depth, size, np.random.default_rng(seed),
                                             train=True, jitter=False)
        assert out_rgb.shape == (*size, 3) and out_depth.shape == size
        x_d, y_d = decode_depth(out_depth)
        x_r, y_r = out_rgb[..., 0] / 4.0, out_rgb[..., 1] / 6.0
        # Within one source pixel: nearest vs. area/bilinear sampling of the same spot.
        assert np.abs(x_d - x_r).max() <= 1.0 and np.abs(y_d - y_r).max() <= 1.0
        flips.add(bool(x_d[0, 0] > x_d[0, -1]))
    assert flips == {True, False}


def test_validation_crop_is_centred_and_deterministic():
    rgb, depth = coded_pair()
    out_rgb, out_depth, scale = paired_resize_crop(rgb, depth, (20, 20), None, train=False)
    assert scale == pytest.approx(0.5)  # cover scale max(20/40, 20/64)
    x_d, y_d = decode_depth(out_depth)
    assert x_d[0, 0] + x_d[0, -1] == pytest.approx(W - 1, abs=2)  # symmetric about the centre
    assert y_d[0, 0] <= 1 and y_d[-1, 0] >= H - 2  # full height kept
    again = paired_resize_crop(rgb, depth, (20, 20), None, train=False)
    assert np.array_equal(again[0], out_rgb) and np.array_equal(again[1], out_depth)


@pytest.mark.parametrize("size", [(16, 24), (48, 80)])
def test_augmented_depth_values_are_original_values(size):
    rng = np.random.default_rng(3)
    depth = rng.choice(np.array([0.0, 1.5, 7.25, 30.0, 80.0], np.float32), size=(H, W))
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    for seed in range(6):
        _, out, _ = augment_pair(rgb, depth, size, np.random.default_rng(seed))
        assert np.isin(out, depth).all()  # nothing interpolated, zeros not smeared
        assert (out == 0).any()


def test_jitter_changes_rgb_only():
    rgb, depth = coded_pair()
    changed = 0
    for seed in range(8):
        with_j = augment_pair(rgb, depth, (16, 24), np.random.default_rng(seed), jitter=True)
        without = augment_pair(rgb, depth, (16, 24), np.random.default_rng(seed), jitter=False)
        assert np.array_equal(with_j[1], without[1])
        changed += not np.array_equal(with_j[0], without[0])
    assert 0 < changed < 8  # applied to about half the samples
    jittered = color_jitter(rgb, np.random.default_rng(0))
    assert jittered.dtype == np.uint8 and jittered.shape == rgb.shape
    assert not np.array_equal(jittered, rgb)


@pytest.mark.parametrize("size", [(16, 24), (48, 80), (20, 96)])  # shrinking, enlarging, rows shrink + columns grow
def test_whole_view_is_the_whole_frame_at_the_training_size_aligned_with_depth(size):
    rgb, depth = coded_pair()  # 40x64: every size above changes the aspect ratio
    flips = set()
    for seed in range(12):
        out_rgb, out_depth, scale = augment_pair(rgb, depth, size, np.random.default_rng(seed), train=True,
                                                 jitter=False, view="whole")
        assert out_rgb.shape == (*size, 3) and out_depth.shape == size
        assert scale == pytest.approx(size[1] / W)  # the horizontal scale: what the focal length follows
        assert np.isin(out_depth, depth).all()  # nearest neighbour: only depths of the scene
        x_d, y_d = decode_depth(out_depth)
        x_r, y_r = out_rgb[..., 0] / 4.0, out_rgb[..., 1] / 6.0
        assert np.abs(x_d - x_r).max() <= 1.0 and np.abs(y_d - y_r).max() <= 1.0
        # The whole frame, edge to edge, nothing cropped: the outer output pixels' centres sample
        # the source pixels under them.
        first_x, last_x = int(0.5 * W / size[1]), int((size[1] - 0.5) * W / size[1])
        first_y, last_y = int(0.5 * H / size[0]), int((size[0] - 0.5) * H / size[0])
        assert {x_d[0, 0], x_d[0, -1]} == {first_x, last_x} and (y_d[0, 0], y_d[-1, 0]) == (first_y, last_y)
        flips.add(bool(x_d[0, 0] > x_d[0, -1]))
    assert flips == {True, False}
    # A crop of the same frame at the same size keeps the aspect ratio, so it loses columns or rows.
    _, crop_depth, _ = augment_pair(rgb, depth, size, np.random.default_rng(0), train=True, jitter=False)
    x_c, y_c = decode_depth(crop_depth)
    assert np.ptp(x_c) < np.ptp(x_d) or np.ptp(y_c) < np.ptp(y_d)


def test_resize_to_filters_each_axis_like_cv2():
    img = np.random.default_rng(0).integers(0, 256, (40, 64, 3), dtype=np.uint8)
    # Both axes alike: one cv2.resize with the training loaders' filter.
    assert np.array_equal(resize_to(img, (20, 32)), cv2.resize(img, (32, 20), interpolation=cv2.INTER_AREA))
    assert np.array_equal(resize_to(img, (80, 100)), cv2.resize(img, (100, 80), interpolation=cv2.INTER_LINEAR))
    # Rows shrink, columns grow: area along rows, then bilinear along columns.
    rows = cv2.resize(img, (64, 20), interpolation=cv2.INTER_AREA)
    assert np.array_equal(resize_to(img, (20, 96)), cv2.resize(rows, (96, 20), interpolation=cv2.INTER_LINEAR))
    assert resize_to(img, (40, 64)) is img


# --- dataset ----------------------------------------------------------------------------------

def test_dataset_items_focal_and_epochs(tmp_path):
    root = make_root(tmp_path, 6)
    size = (16, 24)
    val = SynthiaDataset(root, split="val", size=size)
    train = SynthiaDataset(root, split="train", size=size)
    everything = SynthiaDataset(root, split="all", size=size, augment=False)
    assert len(val) + len(train) == len(everything) == 6 and len(val) >= 1
    assert {s.stem for s, _ in val.pairs}.isdisjoint(s.stem for s, _ in train.pairs)

    item = val[0]
    assert item["rgb"].shape == (3, *size) and item["rgb"].dtype == torch.float32
    assert -1.0 <= item["rgb"].min() and item["rgb"].max() <= 1.0
    assert item["depth"].shape == (1, *size) and item["depth"].dtype == torch.float32
    assert item["depth"].max() <= 80.0 and (item["depth"] == 0).any()
    assert isinstance(item["name"], str) and item["name"] == val.pairs[0][0].stem
    # Val: resized by the cover scale max(16/40, 24/64) = 0.4 -> 25.6 px-wide frame, no zoom.
    assert float(item["focal_px"]) == pytest.approx(SYNTHIA_FOCAL_PX * round(W * 0.4) / 1280, rel=1e-6)
    assert torch.equal(val[0]["rgb"], item["rgb"])  # no randomness in validation

    train.set_epoch(0)
    a = train[0]
    assert torch.equal(train[0]["rgb"], a["rgb"])
    train.set_epoch(1)
    assert not torch.equal(train[0]["rgb"], a["rgb"])
    train.set_epoch(0)
    assert torch.equal(train[0]["depth"], a["depth"])
    assert SYNTHIA_FOCAL_PX * 0.4 * W / 1280 <= float(a["focal_px"]) <= SYNTHIA_FOCAL_PX * 0.47 * W / 1280

    (root / "intrinsics.json").write_text(json.dumps({"fx": 100.0, "width": 64}))
    assert SynthiaDataset(root, split="val", size=size).focal_at(32) == pytest.approx(50.0)
    (root / "intrinsics.json").write_text("{}")
    with pytest.raises(DepthdaError, match="intrinsics.json"):
        SynthiaDataset(root, split="val", size=size)


def test_whole_view_dataset_items(tmp_path):
    root = make_root(tmp_path, 6)
    size = (16, 24)  # 40x64 frames: a different aspect ratio
    train = SynthiaDataset(root, split="train", size=size, view="whole")
    val = SynthiaDataset(root, split="val", size=size, view="whole")
    for item in (train[0], val[0]):
        assert item["rgb"].shape == (3, *size) and item["depth"].shape == (1, *size)
        # Every whole view has the focal length of the frame resized to the training width.
        assert float(item["focal_px"]) == pytest.approx(SYNTHIA_FOCAL_PX * size[1] / 1280, rel=1e-6)
    rgb, depth = read_rgb(val.pairs[0][0]), read_depth(val.pairs[0][1])
    expected = cv2.resize(depth, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    assert np.array_equal(val[0]["depth"][0].numpy(), expected)  # validation: no flip, no jitter
    assert torch.equal(val[0]["rgb"], to_tensor(resize_to(rgb, size)))
    with pytest.raises(DepthdaError, match="view must be one of crop, whole"):
        SynthiaDataset(root, split="val", size=size, view="tiles")


def test_dataset_rejects_rgb_depth_size_mismatch(tmp_path):
    root = make_root(tmp_path, 2)
    rgb_path = root / "RGB" / "0000001.png"
    cv2.imwrite(str(rgb_path), np.zeros((H + 2, W, 3), np.uint8))
    ds = SynthiaDataset(root, split="all", size=(16, 24))
    with pytest.raises(DepthdaError, match="0000001.png"):
        ds[1]
    with pytest.raises(DepthdaError, match="split"):
        SynthiaDataset(root, split="test")


def test_rgb_paths_for_stage2_need_no_depth(tmp_path):
    root = make_root(tmp_path / "seqs", 5, "seqs")
    paths = synthetic_image_paths(root)
    assert [p.name for p in paths] == [f"{i:06d}.png" for i in range(5)]
    # Stage 1's train/val split is made of the same RGB images.
    train = [rgb for rgb, _ in SynthiaDataset(root, split="train").pairs]
    val = [rgb for rgb, _ in SynthiaDataset(root, split="val").pairs]
    assert sorted(train + val) == paths and len(val) >= 1
    import shutil
    shutil.rmtree(root / "Depth")
    assert synthetic_image_paths(root) == paths
    # Pointed at the RGB folder itself, it is an ordinary folder of images: the same ones.
    assert synthetic_image_paths(root / "RGB") == paths


def test_dataloader_workers_follow_set_epoch(tmp_path):
    root = make_root(tmp_path, 6, "seqs")
    ds = SynthiaDataset(root, split="all", size=(16, 24))
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[2]["rgb"], ds[2]["rgb"])

    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        batches = list(loader)
        rgb = torch.cat([b["rgb"] for b in batches])
        names = [n for b in batches for n in b["name"]]
        assert rgb.shape == (6, 3, 16, 24) and names == [p.stem for p, _ in ds.pairs]
        # Workers see the epoch set here, and produce what the main process would.
        expected = torch.stack([ds[i]["rgb"] for i in range(len(ds))])
        assert torch.equal(rgb, expected)
        if epoch == 0:
            first = rgb
    assert not torch.equal(first, rgb)


class EpochStream(torch.utils.data.Dataset):
    """Position k -> (epoch k // n, index k % n), setting the epoch inside the worker per item."""

    def __init__(self, dataset):
        self.dataset, self.n = dataset, len(dataset)

    def __len__(self):
        return 2 * self.n

    def __getitem__(self, k):
        self.dataset.set_epoch(k // self.n)
        return self.dataset[k % self.n]


def test_epoch_set_per_item_inside_workers_is_exact(tmp_path):
    ds = SynthiaDataset(make_root(tmp_path, 4), split="all", size=(16, 24))
    got = torch.cat([b["rgb"] for b in DataLoader(EpochStream(ds), batch_size=1, num_workers=2)])
    expected = []
    for k in range(8):
        ds.set_epoch(k // 4)
        expected.append(ds[k % 4]["rgb"])
    assert torch.equal(got, torch.stack(expected))


def test_bad_depth_files_are_counted_before_training_starts(tmp_path, capsys):
    """Two broken depth files among many stop a 1-step run before it starts, with their count and
    the first path, whichever split they fall in (a loader worker would reach them much later)."""
    import cv2

    from depthda.cli import run
    from train_fixtures import make_synthia

    root = make_synthia(tmp_path / "synthia", count=12)
    depths = sorted((root / "Depth" / "Depth").glob("*.png"))
    img = cv2.imread(str(depths[3]), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(depths[3]), (img // 256).astype(np.uint8))  # 8-bit, as Pillow would save it
    depths[7].write_bytes(b"not a png at all")
    code = run(["train-stage1", "--data-root", str(root), "--out", str(tmp_path / "run"), "--preset", "small",
                "--size", "64x192", "--steps", "1", "--batch-size", "2", "--num-workers", "0", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 of 12 depth files are unusable; first: " in err[0] and depths[3].name in err[0]
    assert "8-bit PNG" in err[0]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
