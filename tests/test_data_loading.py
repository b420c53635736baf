"""Stage-1 data loading: `depthda bench data`, `depthda data prepare` copies (same samples as the
originals, or within the stated tolerance), the reading path, and clean errors. Fixtures are
written in SYNTHIA's exact on-disk format (8-bit RGB PNG, 16-bit 3-channel centimetre depth PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from depthda.bench.data_loading import run_data_bench
from depthda.data.augment import augment_pair, to_tensor
from depthda.cli import run
from depthda.data import prepare as prepare_module
from depthda.data.prepare import frame_size_for, prepare_synthia
from depthda.data.synthia import read_depth, read_depth_cm, read_synthia_rgb, write_synthia_sample
from depthda.data.synthia_dataset import SynthiaDataset
from depthda.errors import DepthdaError
from depthda.utils.images import read_rgb

# A fifth of SYNTHIA's 760×1280: the same aspect ratio (19:32) at a test-sized cost.
FRAME = (152, 256)
SIZE = (64, 192)  # 1:3, like 256×1024 at a quarter


@pytest.fixture(autouse=True)
def _one_thread():
    saved = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    yield
    cv2.setNumThreads(saved[0])
    torch.set_num_threads(saved[1])


def textured(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Street-like RGB: smooth shading plus blurred noise plus sharp-edged blocks."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([100 + 80 * x / w, 60 + 120 * y / h, 140 - 60 * x / w], axis=2)
    noise = cv2.GaussianBlur(rng.normal(0, 40, (h, w, 3)).astype(np.float32), (0, 0), 1.5)
    img = base + noise
    for _ in range(6):
        y0, x0 = rng.integers(0, h - 20), rng.integers(0, w - 30)
        img[y0:y0 + 20, x0:x0 + 30] = rng.uniform(0, 255, 3)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def street_depth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Ground plane, sky at SYNTHIA's 655.35 m, boxes, and an invalid (0) band."""
    v = np.arange(h, dtype=np.float32)[:, None] + 0.5
    horizon = h * 0.45
    depth = np.where(v > horizon + 1, 1.6 * h / np.maximum(v - horizon, 1e-3), 655.35) * np.ones((1, w), np.float32)
    for _ in range(4):
        y0, x0 = rng.integers(0, h - 20), rng.integers(0, w - 30)
        depth[y0:y0 + 20, x0:x0 + 30] = rng.uniform(3, 60)
    depth[-2:] = 0
    return np.minimum(depth, 655.35).astype(np.float32)


def make_synthia_root(root: Path, count: int = 5, frame=FRAME, layout: str = "rand", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(count):
        write_synthia_sample(root, i, textured(rng, *frame), street_depth(rng, *frame), layout=layout)
    return root


@pytest.fixture(scope="module")
def synthia(tmp_path_factory) -> Path:
    return make_synthia_root(tmp_path_factory.mktemp("synthia") / "root")


def same_item(a: dict, b: dict) -> bool:
    return (a["rgb"].shape == b["rgb"].shape and torch.equal(a["rgb"], b["rgb"])
            and torch.equal(a["depth"], b["depth"]) and torch.equal(a["focal_px"], b["focal_px"])
            and a["name"] == b["name"] and a["depth"].dtype == b["depth"].dtype == torch.float32)


def items(ds: SynthiaDataset, epochs=(0, 1, 2)) -> list[dict]:
    out = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        out += [ds[i] for i in range(len(ds))]
    return out


# --- the reading path -------------------------------------------------------------------------

def metres_first_item(ds: SynthiaDataset, index: int) -> dict:
    """dataset[index] computed the straightforward way: depth decoded to float metres before the
    augmentation, RGB through the generic reader."""
    rgb_path, depth_path = ds.pairs[index]
    rgb, depth = read_rgb(rgb_path), read_depth(depth_path, ds.max_depth)
    rng = ds.rng_for(index) if ds.augment else None
    full_width = rgb.shape[1]
    rgb, depth, scale = augment_pair(rgb, depth, ds.size, rng, train=ds.augment, view=ds.view)
    return {"rgb": to_tensor(rgb).contiguous(), "depth": torch.from_numpy(depth)[None].float(),
            "name": rgb_path.stem, "focal_px": torch.tensor(ds.focal_at(full_width * scale), dtype=torch.float32)}


@pytest.mark.parametrize("view", ["whole", "crop"])
@pytest.mark.parametrize("split,augment", [("all", True), ("val", False)])
def test_reader_gives_the_samples_of_decoding_to_metres_first(synthia, view, split, augment):
    """Depth kept in centimetres through the augmentation and RGB decoded straight to RGB order:
    the same tensors, bit for bit, as decoding to metres first and converting BGR afterwards."""
    for size in (SIZE, (40, 40), (200, 300)):  # shrinking, another aspect, enlarging
        ds = SynthiaDataset(synthia, split=split, size=size, augment=augment, view=view, seed=3)
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            for i in range(len(ds)):
                assert same_item(ds[i], metres_first_item(ds, i))


def test_rgb_and_depth_readers_match_the_generic_ones(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cases = {"rgb8.png": cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
             "rgba.png": cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA),
             "grey.png": rgb[:, :, 0],
             "rgb16.png": rgb.astype(np.uint16) * 257,
             "rgb.jpg": rgb}
    for name, img in cases.items():
        assert cv2.imwrite(str(tmp_path / name), img)
        assert np.array_equal(read_synthia_rgb(tmp_path / name), read_rgb(tmp_path / name)), name
    with pytest.raises(DepthdaError, match="nope.png"):
        read_synthia_rgb(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    with pytest.raises(DepthdaError, match="bad.png"):
        read_synthia_rgb(tmp_path / "bad.png")
    _, depth_path = write_synthia_sample(tmp_path, 0, rgb, rng.uniform(0, 700, (20, 30)).astype(np.float32))
    cm = read_depth_cm(depth_path)
    assert cm.dtype == np.uint16 and cm.shape == (20, 30) and cm.flags.c_contiguous
    assert np.array_equal(read_depth(depth_path, None), cm.astype(np.float32) / np.float32(100))


# --- prepared copies --------------------------------------------------------------------------

def test_frame_sizes_for_training_sizes():
    assert frame_size_for((760, 1280), None) == (760, 1280)
    assert frame_size_for((760, 1280), (256, 1024), "whole") == (256, 1024)
    # Crop view: the smallest 19:32 multiple covering 416 × 1.15 = 478.4 columns (284.05 rows) ...
    assert frame_size_for((760, 1280), (128, 416), "crop") == (285, 480)
    # ... but only when that saves a quarter of the pixels: 703×1184 for 1177.6 columns would not.
    assert frame_size_for((760, 1280), (256, 1024), "crop") == (760, 1280)
    assert frame_size_for((760, 1280), (256, 1024), "crop", max_zoom=1.0) == (608, 1024)
    assert frame_size_for((761, 1280), (256, 1024), "crop") == (761, 1280)  # no smaller exact ratio
    assert frame_size_for((760, 1280), (700, 1200), "crop") == (760, 1280)  # never enlarged


@pytest.mark.slow
@pytest.mark.parametrize("size,view", [(None, None), (SIZE, "whole")])
def test_prepared_copies_give_identical_samples(tmp_path, synthia, size, view):
    out = tmp_path / "prepared"
    summary = prepare_synthia(synthia, out, size=size, view=view)
    assert summary["identical"] and summary["pairs"] == 5
    manifest = json.loads((out / "prepared.json").read_text())
    assert manifest["size"] == (list(size) if size else None) and manifest["view"] == view
    # Same layout and names; RGB uncompressed 8-bit RGB, depth 16-bit one channel.
    assert sorted(p.name for p in (out / "RGB").iterdir()) == sorted(p.name for p in (synthia / "RGB").iterdir())
    depth_file = next((out / "Depth" / "Depth").iterdir())
    assert cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    views = ["whole", "crop"] if size is None else [view]
    for v in views:
        for split, augment in (("all", True), ("val", False), ("train", True)):
            for train_size in ([SIZE, (40, 40), (200, 300)] if size is None else [SIZE]):
                original = items(SynthiaDataset(synthia, split=split, size=train_size, augment=augment, view=v))
                copied = items(SynthiaDataset(out, split=split, size=train_size, augment=augment, view=v))
                assert len(original) == len(copied)
                assert all(same_item(a, b) for a, b in zip(original, copied)), (v, split, train_size)


def test_prepared_whole_frames_are_small_and_keep_the_depth_encoding(tmp_path, synthia):
    out = tmp_path / "prepared"
    prepare_synthia(synthia, out, size=SIZE, view="whole")
    for name in ("0000000.png", "0000003.png"):
        cm = read_depth_cm(out / "Depth" / "Depth" / name)
        assert cm.shape == SIZE and cm.dtype == np.uint16
        source_cm = read_depth_cm(synthia / "Depth" / "Depth" / name)
        assert np.isin(cm, source_cm).all()  # nearest neighbour: only centimetres the file holds
        assert cm.max() == 65535 and (cm == 0).any()  # sky at 655.35 m and invalid pixels survive
        assert read_synthia_rgb(out / "RGB" / name).shape == (*SIZE, 3)


def decode_position(depth: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    cm = np.round(depth.numpy()[0] * 100).astype(np.int64)
    return cm // 256, cm % 256


def test_prepared_crop_copies_stay_within_the_stated_tolerance(tmp_path):
    """Crop view, frames shrunk to 76×128 for 32×96: same geometry and random draws; each depth
    pixel is the original depth of a source pixel at most one pixel away from the originals'; RGB
    about a grey level apart on average and equal (±1) wherever the picture is flat."""
    rng = np.random.default_rng(5)
    h, w = FRAME
    y, x = np.mgrid[0:h, 0:w]
    coded = (x * 256 + y).astype(np.float32) / 100  # depth in cm = 256 x + y: the source pixel
    blocks = np.kron(rng.integers(0, 256, (h // 32 + 1, w // 32 + 1, 3)), np.ones((32, 32, 1)))
    blocks = np.ascontiguousarray(blocks[:h, :w]).astype(np.uint8)
    src = tmp_path / "src"
    for i in range(3):
        write_synthia_sample(src, i, textured(rng, h, w), coded)
        write_synthia_sample(src, 10 + i, blocks, coded)
    out = tmp_path / "prepared"
    size = (32, 96)
    summary = prepare_synthia(src, out, size=size, view="crop")
    assert summary["frame_sizes"] == {"152x256": "76x128"} and not summary["identical"]

    for split, augment in (("all", True), ("val", False)):
        a_set = SynthiaDataset(src, split=split, size=size, augment=augment, view="crop", max_depth=None)
        b_set = SynthiaDataset(out, split=split, size=size, augment=augment, view="crop", max_depth=None)
        diffs = []
        for epoch in range(4):
            a_set.set_epoch(epoch)
            b_set.set_epoch(epoch)
            for i in range(len(a_set)):
                a, b = a_set[i], b_set[i]
                assert a["rgb"].shape == b["rgb"].shape == (3, *size)
                assert float(a["focal_px"]) == pytest.approx(float(b["focal_px"]), rel=1e-6)
                (ax, ay), (bx, by) = decode_position(a["depth"]), decode_position(b["depth"])
                assert np.abs(ax - bx).max() <= 1 and np.abs(ay - by).max() <= 1
                # Same crop window and flip (one output pixel is 2-3 source pixels here): the mean
                # source position agrees within the half-pixel bias of sampling twice.
                assert abs(ax.mean() - bx.mean()) <= 1 and abs(ay.mean() - by.mean()) <= 1
                ra, rb = (t["rgb"].numpy() * 127.5 for t in (a, b))
                diff = np.abs(ra - rb)
                diffs.append(diff.mean())
                if a["name"] >= "0000010":  # 32×32 blocks: away from their edges the copy is exact
                    flat = np.ones(size, bool)
                    for c in range(3):
                        window = cv2.dilate(ra[c], np.ones((5, 5))) - cv2.erode(ra[c], np.ones((5, 5)))
                        flat &= window < 0.5
                    assert flat.mean() > 0.2 and diff.max(axis=0)[flat].max() <= 1.01
        assert np.mean(diffs) <= 2.0


def test_dataset_refuses_copies_made_for_another_size_or_view(tmp_path, synthia):
    out = tmp_path / "prepared"
    prepare_synthia(synthia, out, size=SIZE, view="whole")
    SynthiaDataset(out, split="all", size=SIZE, view="whole")
    for size, view in ((SIZE, "crop"), ((32, 96), "whole")):
        with pytest.raises(DepthdaError, match=r"prepared for the 'whole' view at 64x192.*depthda data prepare"):
            SynthiaDataset(out, split="all", size=size, view=view)
    (out / "prepared.json").write_text("{not json")
    with pytest.raises(DepthdaError, match="prepared.json"):
        SynthiaDataset(out, split="all", size=SIZE, view="whole")


@pytest.mark.slow
def test_prepare_keeps_seqs_layout_intrinsics_and_runs_in_parallel(tmp_path):
    src = make_synthia_root(tmp_path / "seqs", count=4, layout="seqs")
    (src / "intrinsics.json").write_text(json.dumps({"fx": 200.0, "width": 256}))
    out = tmp_path / "prepared"
    summary = prepare_synthia(src, out, size=SIZE, view="whole", workers=2)
    assert summary["layout"] == "seqs" and summary["workers"] == 2
    assert sorted(p.name for p in (out / "RGB" / "Stereo_Left" / "Omni_F").iterdir()) == \
        [f"{i:06d}.png" for i in range(4)]
    assert (out / "intrinsics.json").read_bytes() == (src / "intrinsics.json").read_bytes()
    a = items(SynthiaDataset(src, split="all", size=SIZE, view="whole"))
    b = items(SynthiaDataset(out, split="all", size=SIZE, view="whole"))
    assert all(same_item(x, y) for x, y in zip(a, b))
    assert float(b[0]["focal_px"]) == pytest.approx(200.0 * 192 / 256)


# --- errors and interruptions -----------------------------------------------------------------

def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depthda: error: "), err
    return err[0]


def test_prepare_bad_inputs_are_one_line_errors(tmp_path, synthia, capsys):
    out = tmp_path / "out"
    cases = [
        ([str(tmp_path / "missing"), "--out", str(out)], "not found"),
        ([str(tmp_path), "--out", str(out)], "no SYNTHIA layout"),
        ([str(synthia), "--out", str(synthia)], "would overwrite the input"),
        ([str(synthia), "--out", str(synthia.parent)], "would replace the folder that holds the input"),
        ([str(synthia), "--out", str(synthia / "RGB" / "copy")], "must not be inside the input folder"),
        ([str(synthia), "--out", str(out), "--size", "64x"], "size must be HxW"),
        ([str(synthia), "--out", str(out), "--view", "crop"], "needs --size"),
        ([str(synthia), "--out", str(out), "--size", "64x192", "--view", "side"], "view must be one of"),
        ([str(synthia), "--out", str(out), "--workers", "0"], "--workers must be at least 1"),
    ]
    for args, message in cases:
        assert run(["data", "prepare", *args, "--no-progress"]) == 1
        assert message in one_error_line(capsys)
        assert not out.exists()
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run(["data", "prepare", str(synthia), "--out", str(out), "--no-progress"]) == 1
    assert "not empty" in one_error_line(capsys) and (out / "keep.txt").read_text() == "mine"
    file_out = tmp_path / "file"
    file_out.write_text("x")
    assert run(["data", "prepare", str(synthia), "--out", str(file_out), "--no-progress"]) == 1
    assert "not a folder" in one_error_line(capsys)


@pytest.mark.parametrize("damage,message", [
    ("pillow", "1 of 5 depth files are unusable; first: .*0000002.png: 8-bit"),
    ("channels", "0000002.png has 3 different channels"),
    ("size", "RGB .*0000002.png is 255×152 but its depth"),
    ("rgb", "cannot decode image .*0000002.png"),
])
def test_prepare_stops_at_a_bad_file_and_writes_nothing(tmp_path, damage, message, capsys):
    src = make_synthia_root(tmp_path / "src", count=5)
    rgb_path, depth_path = src / "RGB" / "0000002.png", src / "Depth" / "Depth" / "0000002.png"
    cm = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
    if damage == "pillow":
        cv2.imwrite(str(depth_path), (cm // 256).astype(np.uint8))
    elif damage == "channels":
        cm[..., 1] += 1
        cv2.imwrite(str(depth_path), cm)
    elif damage == "size":
        cv2.imwrite(str(rgb_path), np.zeros((FRAME[0], FRAME[1] - 1, 3), np.uint8))
    else:
        rgb_path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    assert run(["data", "prepare", str(src), "--out", str(out), "--size", "64x192", "--no-progress"]) == 1
    import re
    assert re.search(message, one_error_line(capsys))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, no temporary left


def test_interrupted_prepare_leaves_no_output_and_keeps_the_old_one(tmp_path, synthia, monkeypatch):
    real = prepare_module.prepare_pair
    calls = []

    def interrupted(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(prepare_module, "prepare_pair", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        prepare_synthia(synthia, out, size=SIZE)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(prepare_module, "prepare_pair", real)
    prepare_synthia(synthia, out, size=SIZE)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls.clear()
    monkeypatch.setattr(prepare_module, "prepare_pair", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_synthia(synthia, out, size=(32, 96), overwrite=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_ctrl_c_in_the_cli_exits_130_and_writes_nothing(tmp_path, synthia, monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "prepare_pair", interrupted)
    assert run(["data", "prepare", str(synthia), "--out", str(tmp_path / "out"), "--no-progress"]) == 130
    assert list(tmp_path.iterdir()) == []


# --- the bench --------------------------------------------------------------------------------

VARIANTS = {"originals", "originals-cv2-threads", "prepared-full", "prepared-size"}


def test_bench_data_reports_every_variant_and_stage(tmp_path, synthia, capsys):
    out = tmp_path / "bench.json"
    assert run(["bench", "data", "--data-root", str(synthia), "--size", "64x192", "--frames", "3",
                "--samples", "4", "--rounds", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["size"] == [64, 192] and r["view"] == "whole" and r["frame_size"] == list(FRAME)
    assert r["frames"] == 3 and r["samples"] == 4 and r["rounds"] == 2 and r["data_root"] == str(synthia)
    assert r["cpu"] and r["cpu_count"] >= 1 and r["threads"]["opencv"] == 0 and r["threads"]["torch"] == 1
    names = {row["name"] for row in r["variants"]}
    assert names == (VARIANTS if r["cpu_count"] > 1 else VARIANTS - {"originals-cv2-threads"})
    assert r["best"] in names - {"originals-cv2-threads"}
    for row in r["variants"]:
        assert row["samples_per_s"] > 0 and row["ms_per_sample"] > 0 and row["cpu_ms_per_sample"] >= 0
        assert row["samples_per_cpu_s"] is None or row["samples_per_cpu_s"] > 0
        assert row["samples_per_s"] == pytest.approx(1e3 / row["ms_per_sample"], rel=0.01)
        assert set(row["stage_ms"]) == {"decode_rgb", "decode_depth", "augment", "to_tensor", "other"}
        assert all(v >= 0 for v in row["stage_ms"].values())
        assert sum(row["stage_ms"].values()) == pytest.approx(row["ms_per_sample"], rel=0.05, abs=0.05)
        assert len(row["samples_per_s_by_round"]) == 2 and row["bytes_per_frame"] > 0
        assert row["samples_vs_originals"]["identical"]  # whole view: every variant gives the same samples
        assert r["samples_per_s"][row["name"]] == row["samples_per_s"]
        assert row["name"] in printed
    by_name = {row["name"]: row for row in r["variants"]}
    assert by_name["prepared-size"]["prepare_ms_per_frame"] > 0 and by_name["originals"]["prepare_ms_per_frame"] is None
    assert "64x192" in by_name["prepared-size"]["description"]
    assert "samples/s" in r["summary"] and "samples/s" in printed and f"wrote {out}" in printed
    assert not list(tmp_path.glob(".*depthda-*"))


def test_bench_data_renders_its_own_synthia_files_and_crop_view_is_near(tmp_path):
    log = []
    r = run_data_bench(None, size=(32, 48), view="crop", frame_size=(76, 128), frames=1, samples=3, rounds=1,
                       cv2_threads_variant=False, log=log.append)
    assert r["frame_size"] == [76, 128] and r["data_root"] is None and "SYNTHIA" in r["data"]
    assert any("rendering" in line for line in log)
    by_name = {row["name"]: row for row in r["variants"]}
    assert set(by_name) == VARIANTS - {"originals-cv2-threads"}
    assert by_name["prepared-full"]["samples_vs_originals"]["identical"]
    near = by_name["prepared-size"]["samples_vs_originals"]
    frame = frame_size_for((76, 128), (32, 48), "crop")
    assert frame == (38, 64) and f"frames {frame[0]}x{frame[1]}" in by_name["prepared-size"]["description"]
    assert near["rgb_mean_abs_diff_levels"] <= 3.0 and near["focal_max_rel_diff"] < 1e-6


def test_bench_data_bad_inputs_are_one_line_errors(tmp_path, capsys):
    for args, message in ([["--data-root", str(tmp_path / "nope")], "not found"],
                          [["--data-root", str(tmp_path)], "no SYNTHIA layout"],
                          [["--samples", "0"], "--samples must be at least 1"],
                          [["--view", "side"], "view must be one of"],
                          [["--size", "big"], "size must be HxW"]):
        assert run(["bench", "data", *args]) == 1
        assert message in one_error_line(capsys)


@pytest.mark.slow
def test_ctrl_c_during_a_parallel_prepare_stops_the_workers_and_leaves_nothing(tmp_path):
    """A real SIGINT, as from a terminal, while two worker processes write into the staging folder."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    src = make_synthia_root(tmp_path / "src", count=1, frame=(380, 640))
    for i in range(1, 80):  # copies of one frame: many files at no rendering cost
        for folder in ("RGB", "Depth/Depth"):
            shutil.copyfile(src / folder / "0000000.png", src / folder / f"{i:07d}.png")
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "depthda", "data", "prepare", str(src), "--out", str(work / "out"),
                             "--workers", "2", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while not any(len(list(d.rglob("*.png"))) >= 2 for d in work.glob(".out.*")):
        if proc.poll() is not None:
            pytest.fail(f"prepare ended before it could be interrupted (exit {proc.returncode}): "
                        f"{proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "depthda: interrupted"
    assert "Traceback" not in err
    assert list(work.iterdir()) == []
