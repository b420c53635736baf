"""`depthda bench data`: samples/s of one stage-1 data-loader worker, per loading variant, in one run.

A DataLoader worker is one process on one thread (depthda.train.engine._worker_init sets OpenCV
to no threads of its own and torch to one), so the bench runs the same way in this process and
times each stage of a sample (decode RGB, decode depth, resize/crop/flip/jitter, to tensors).
Variants, interleaved round by round (the best round of each is kept, so load from other
processes hits all of them alike; compare their ratios, not absolute numbers, on a busy machine,
or samples per CPU-second, what a worker gives with a core to itself):

  originals         SynthiaDataset on the original files (today's reading path)
  originals-cv2-threads   the same with OpenCV's own thread pool on (what a worker would do without
                    _worker_init; its threads then compete with the other workers for the cores)
  prepared-full     `depthda data prepare SRC --out DST` copies (full resolution; identical samples)
  prepared-size     `depthda data prepare SRC --out DST --size HxW --view VIEW` copies

Without --data-root the bench renders a few street scenes at SYNTHIA's 760×1280 with depthda's
own renderer and writes them in SYNTHIA's exact on-disk format (8-bit RGB PNG, 16-bit 3-channel
depth PNG, OpenCV's default compression), since decoding cost depends on the real size and
format; samples cycle over them. With --data-root it uses a few frames of that root. Files are
read from the page cache, as after the first epoch of a dataset that fits in memory.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from depthda.bench.checks import check_data_bench
from depthda.data.prepare import prepare_synthia
from depthda.data.synthia import (INTRINSICS_FILE, LAYOUT_DIRS, detect_layout, list_pairs, write_synthia_sample)
from depthda.data.synthia_dataset import SynthiaDataset
from depthda.errors import DepthdaError
from depthda.utils.fsio import write_text_atomic

STAGES = ("decode_rgb", "decode_depth", "augment", "to_tensor")
SYNTHIA_FRAME = (760, 1280)
DESCRIPTIONS = {
    "originals": "original files, SynthiaDataset as it reads today",
    "originals-cv2-threads": "original files, SynthiaDataset with OpenCV's thread pool on ({threads} threads); "
                             "not how loader workers run: their threads would compete for the same cores",
    "prepared-full": "`depthda data prepare SRC --out DST` copies: full resolution, uncompressed RGB, "
                     "1-channel depth; samples identical at every size and view",
    "prepared-size": "`depthda data prepare SRC --out DST --size {size} --view {view}` copies: frames {frame}",
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class _Laps:
    """The `lap` callback of SynthiaDataset.item: seconds per stage, summed over samples."""

    def __init__(self):
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.last = time.perf_counter()

    def start(self) -> None:
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.totals[stage] += now - self.last
        self.last = now


def synthetic_root(root: Path, frames: int, frame_size: tuple[int, int], log: Callable[[str], None]) -> Path:
    """`frames` rendered streets at `frame_size` in SYNTHIA-RAND-CITYSCAPES' exact format."""
    from depthda.synth.render import render_scene

    for i in range(frames):
        log(f"bench data: rendering street {i + 1}/{frames} at {frame_size[0]}x{frame_size[1]}")
        rgb, depth = render_scene(i, frame_size, None, "cpu")
        write_synthia_sample(root, i, rgb, depth, layout="rand")
    return root


def subset_root(src: Path, root: Path, frames: int) -> Path:
    """`frames` pairs spread over the SYNTHIA root `src`, linked into `root` in the same layout."""
    layout = detect_layout(src)
    pairs = list_pairs(src)
    picks = sorted({int(round(x)) for x in np.linspace(0, len(pairs) - 1, min(frames, len(pairs)))})
    rgb_dir, depth_dir = LAYOUT_DIRS[layout]
    (root / rgb_dir).mkdir(parents=True)
    (root / depth_dir).mkdir(parents=True)
    for i in picks:
        rgb, depth = pairs[i]
        for path, folder in ((rgb, rgb_dir), (depth, depth_dir)):
            target = root / folder / path.name
            try:
                target.symlink_to(path.resolve())
            except OSError:  # no symlinks here (some file systems): a copy reads the same
                shutil.copyfile(path, target)
    if (src / INTRINSICS_FILE).is_file():
        shutil.copyfile(src / INTRINSICS_FILE, root / INTRINSICS_FILE)
    return root


def _dataset(root: Path, size, view, seed: int = 0) -> SynthiaDataset:
    return SynthiaDataset(root, split="all", size=size, augment=True, view=view, seed=seed)


def _bytes_per_frame(ds: SynthiaDataset) -> int:
    total = sum(Path(r).stat().st_size + Path(d).stat().st_size for r, d in ds.pairs)
    return round(total / len(ds.pairs))


def _time_round(item: Callable, ds: SynthiaDataset, samples: int) -> dict:
    laps = _Laps()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(samples):
        ds.set_epoch(i // len(ds))
        laps.start()
        item(i % len(ds), laps)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"wall": wall, "cpu": cpu, "stages": laps.totals}


def _compare(ds_a: SynthiaDataset, item_a: Callable, ds_b: SynthiaDataset, item_b: Callable, n: int) -> dict:
    """How the samples of two variants differ, on the first `n` items of epochs 0 and 1."""
    identical, rgb_diff, depth_changed, focal_rel = True, [], [], 0.0
    for epoch in (0, 1):
        ds_a.set_epoch(epoch)
        ds_b.set_epoch(epoch)
        for i in range(min(n, len(ds_a))):
            a, b = item_a(i, lambda stage: None), item_b(i, lambda stage: None)
            if a["rgb"].shape != b["rgb"].shape:
                raise DepthdaError(f"sample shapes differ: {tuple(a['rgb'].shape)} vs {tuple(b['rgb'].shape)}")
            same = (torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["depth"], b["depth"])
                    and torch.equal(a["focal_px"], b["focal_px"]))
            identical &= same
            rgb_diff.append(float((a["rgb"] - b["rgb"]).abs().mean()) * 127.5)
            depth_changed.append(float((a["depth"] != b["depth"]).float().mean()))
            focal_rel = max(focal_rel, abs(float(a["focal_px"] / b["focal_px"]) - 1.0))
    return {"identical": bool(identical), "rgb_mean_abs_diff_levels": round(float(np.mean(rgb_diff)), 4),
            "depth_pixels_changed": round(float(np.mean(depth_changed)), 6), "focal_max_rel_diff": focal_rel}


def run_data_bench(data_root: str | Path | None = None, *, size: tuple[int, int] = (256, 1024), view: str = "whole",
                   samples: int = 48, frames: int = 4, rounds: int = 3,
                   frame_size: tuple[int, int] = SYNTHIA_FRAME, cv2_threads_variant: bool = True,
                   json_path: str | Path | None = None,
                   log: Callable[[str], None] = lambda message: None) -> dict:
    """Samples/s of one loader worker for each loading variant; see the module docstring."""
    size = check_data_bench(data_root, size=size, view=view, samples=samples, frames=frames, rounds=rounds,
                            json_path=json_path)

    saved = cv2.getNumThreads(), torch.get_num_threads()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="depthda-bench-data-") as tmp:
        tmp = Path(tmp)
        if data_root is None:
            source = synthetic_root(tmp / "originals", frames, frame_size, log)
            data = (f"{frames} streets rendered by depthda's renderer at {frame_size[0]}x{frame_size[1]}, written in "
                    "SYNTHIA-RAND-CITYSCAPES' format (8-bit RGB PNG, 16-bit 3-channel depth PNG)")
        else:
            source = subset_root(Path(data_root), tmp / "originals", frames)
            data = f"{len(list_pairs(source))} frames of {data_root}"
        log("bench data: preparing copies")
        full = prepare_synthia(source, tmp / "prepared-full")
        sized = prepare_synthia(source, tmp / "prepared-size", size=size, view=view)

        originals = _dataset(source, size, view)
        variants = {"originals": (originals, originals.item)}
        if cv2_threads_variant and cores > 1:
            variants["originals-cv2-threads"] = (originals, originals.item)
        prepared_full = _dataset(tmp / "prepared-full", size, view)
        prepared_size = _dataset(tmp / "prepared-size", size, view)
        variants["prepared-full"] = (prepared_full, prepared_full.item)
        variants["prepared-size"] = (prepared_size, prepared_size.item)
        prepare_ms = {"prepared-full": full["seconds"] / full["pairs"] * 1e3,
                      "prepared-size": sized["seconds"] / sized["pairs"] * 1e3}

        def threads_for(name: str) -> None:
            cv2.setNumThreads(cores if name == "originals-cv2-threads" else 0)

        try:
            torch.set_num_threads(1)
            for name, (ds, item) in variants.items():  # warm-up: imports, page cache, first allocations
                threads_for(name)
                item(0, lambda stage: None)
            best: dict[str, dict] = {}
            per_round: dict[str, list] = {name: [] for name in variants}
            names = list(variants)
            for r in range(rounds):
                order = names[r % len(names):] + names[:r % len(names)]  # who goes first rotates
                log(f"bench data: round {r + 1}/{rounds}")
                for name in order:
                    ds, item = variants[name]
                    threads_for(name)
                    result = _time_round(item, ds, samples)
                    per_round[name].append(round(samples / result["wall"], 2))
                    if name not in best or result["wall"] < best[name]["wall"]:
                        best[name] = result
            cv2.setNumThreads(0)
            log("bench data: comparing samples")
            checks = {name: _compare(originals, originals.item, ds, item, 4)
                      for name, (ds, item) in variants.items() if name != "originals"}
        finally:
            cv2.setNumThreads(saved[0])
            torch.set_num_threads(saved[1])

        frame = next(iter(sized["frame_sizes"].values()))
        rows = []
        for name, (ds, _) in variants.items():
            b = best[name]
            stage_ms = {k: round(v / samples * 1e3, 3) for k, v in b["stages"].items()}
            stage_ms["other"] = round(max(0.0, b["wall"] / samples * 1e3 - sum(stage_ms.values())), 3)
            rows.append({
                "name": name,
                "description": DESCRIPTIONS[name].format(threads=cores, size=f"{size[0]}x{size[1]}", view=view,
                                                         frame=frame),
                "samples_per_s": round(samples / b["wall"], 2),
                "ms_per_sample": round(b["wall"] / samples * 1e3, 3),
                "cpu_ms_per_sample": round(b["cpu"] / samples * 1e3, 3),
                # what the worker gives with a core to itself: the measure to trust on a busy machine
                "samples_per_cpu_s": round(samples / b["cpu"], 2) if b["cpu"] > 0 else None,
                "stage_ms": stage_ms,
                "samples_per_s_by_round": per_round[name],
                "bytes_per_frame": _bytes_per_frame(ds),
                "prepare_ms_per_frame": round(prepare_ms[name], 1) if name in prepare_ms else None,
                "samples_vs_originals": checks.get(name, {"identical": True}),
            })
        source_hw = [int(v) for v in next(iter(sized["frame_sizes"])).split("x")]

    by_name = {row["name"]: row for row in rows}
    fair = [row for row in rows if row["name"] != "originals-cv2-threads"]
    top = max(fair, key=lambda row: row["samples_per_s"])
    orig, prep = by_name["originals"], by_name["prepared-size"]
    exact = "identical samples" if prep["samples_vs_originals"]["identical"] else (
        f"samples within tolerance (RGB {prep['samples_vs_originals']['rgb_mean_abs_diff_levels']:.2f} grey levels "
        "apart on average)")
    summary = (f"One loader worker (one thread) on this {cpu_model()} gives {orig['samples_per_s']:.1f} samples/s at "
               f"{size[0]}x{size[1]} ({view} view) from {source_hw[0]}x{source_hw[1]} SYNTHIA-format files and "
               f"{prep['samples_per_s']:.1f} samples/s from `depthda data prepare --size {size[0]}x{size[1]} "
               f"--view {view}` copies ({prep['samples_per_s'] / orig['samples_per_s']:.1f}x, {exact}); "
               f"per CPU-second (a core to itself) {orig['samples_per_cpu_s']} and {prep['samples_per_cpu_s']}; "
               f"files in the page cache.")
    result = {
        "size": list(size), "view": view, "frame_size": list(source_hw), "data": data,
        "data_root": str(data_root) if data_root is not None else None,
        "samples": int(samples), "rounds": int(rounds), "frames": len(originals),
        "cpu": cpu_model(), "cpu_count": cores, "opencv": cv2.__version__, "torch": torch.__version__,
        "threads": {"opencv": 0, "torch": 1, "note": "as in a DataLoader worker (engine._worker_init)"},
        "variants": rows, "best": top["name"],
        "samples_per_s": {row["name"]: row["samples_per_s"] for row in rows},
        "summary": summary,
    }
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(result, indent=2) + "\n")
    return result


def format_data_result(r: dict) -> str:
    """The result as the lines `depthda bench data` prints."""
    lines = [f"data loading, one worker (1 thread), {r['size'][0]}x{r['size'][1]} {r['view']} view from "
             f"{r['frame_size'][0]}x{r['frame_size'][1]} frames; {r['samples']} samples x {r['rounds']} rounds "
             f"(best kept); {r['cpu']}, {r['cpu_count']} CPUs",
             f"  {'variant':22s} {'samples/s':>9s} {'/CPU-s':>7s} {'ms':>7s}  "
             + " ".join(f"{s:>12s}" for s in (*STAGES, "other"))
             + f" {'MB/frame':>8s}  samples"]
    for row in r["variants"]:
        check = row["samples_vs_originals"]
        same = "identical" if check["identical"] else f"~{check.get('rgb_mean_abs_diff_levels', 0):.2f} levels"
        per_cpu = row["samples_per_cpu_s"] or float("nan")
        lines.append(f"  {row['name']:22s} {row['samples_per_s']:9.1f} {per_cpu:7.1f} {row['ms_per_sample']:7.1f}  "
                     + " ".join(f"{row['stage_ms'][s]:12.2f}" for s in (*STAGES, "other"))
                     + f" {row['bytes_per_frame'] / 1e6:8.2f}  {same}")
    lines.append(r["summary"])
    return "\n".join(lines)
