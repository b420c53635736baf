"""What the temporal filter's settings trade: steadier video against depth that lags real change.

For each setting: the temporal error of two dash-cam clips (`depthda eval video`, smoothed) and the
accuracy of the filtered depth on runs of consecutive KITTI frames (`depthda eval kitti --smooth`),
median-scaled and metric; lag shows in the metric figures, which median scaling hides. Prints the
table of MODEL_CARD.md (Video) and writes it as JSON.

    python checkpoints/default/filter_tradeoff.py [--shared ../shared/data] [--json out.json] [--frames N]

The queue set and the CarND clip come from --shared (not shipped); without them only the shipped
clip and frames are measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from depthda.eval.kitti import evaluate_kitti
from depthda.eval.protocol import EvalProtocol
from depthda.eval.video import evaluate_video
from depthda.infer.pipeline import DepthPipeline
from depthda.infer.temporal import TemporalSettings
from depthda.utils.fsio import write_text_atomic

REPO = Path(__file__).resolve().parents[2]
ULTRAFAST, MEDIUM = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
SETTINGS = {
    "off (keep 0)": TemporalSettings(keep=0.0),
    "shipped": TemporalSettings(),
    "tolerance 16": TemporalSettings(tolerance=16.0),
    "keep .85, tol 16, MEDIUM": TemporalSettings(keep=0.85, tolerance=16.0, flow_preset=MEDIUM),
    "keep .9, tol 24, MEDIUM": TemporalSettings(keep=0.9, tolerance=24.0, flow_preset=MEDIUM),
}


def sets(shared: Path) -> tuple[dict, dict]:
    clips = {"dashcam_3s": REPO / "data/samples/dashcam_3s.mp4",
             "carnd": shared / "dashcam_extra/carnd_vehicle_detection/test_video.mp4"}
    kitti = {"tiny": dict(data_root=REPO / "data/kitti/raw", gt="annotated",
                          split_file=REPO / "data/splits/kitti_tiny_test_files.txt"),
             "queue": dict(data_root=shared / "kitti_raw_queue", gt="velodyne",
                           split_file=shared / "kitti_raw_queue/kitti_queue_files.txt")}
    return ({k: v for k, v in clips.items() if v.exists()},
            {k: v for k, v in kitti.items() if Path(v["split_file"]).exists()})


def measure(ckpt: Path, shared: Path, frames: int | None = None) -> dict:
    pipe = DepthPipeline.from_checkpoint(ckpt)
    clips, kitti = sets(shared)
    table = {}
    for name, settings in SETTINGS.items():
        row = {f"{clip} video": evaluate_video(path, pipe, temporal=settings, max_frames=frames).smoothed.mean
               for clip, path in clips.items()}
        for set_name, data in kitti.items():
            for scaling in ("median", "none"):
                r = evaluate_kitti(**data, checkpoint=ckpt, protocol=EvalProtocol(scaling=scaling), smooth=True,
                                   temporal=settings, progress=False)
                row[f"{set_name} {scaling} abs_rel"] = r.metrics["abs_rel"]
                if scaling == "none":
                    row[f"{set_name} none δ<1.25"] = r.metrics["a1"]
        table[name] = row
        print(name, {k: round(v, 4) for k, v in row.items()}, flush=True)
    return table


def markdown(table: dict) -> str:
    columns = list(next(iter(table.values())))
    lines = ["| filter | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{row[c]:.4f}" for c in columns) + " |" for name, row in table.items()]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints/default")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--frames", type=int, help="only the first N frames of each clip (default: all)")
    args = parser.parse_args()
    table = measure(args.checkpoint, args.shared, args.frames)
    print(markdown(table))
    if args.json:
        write_text_atomic(args.json, json.dumps({"settings": {k: vars(v) for k, v in SETTINGS.items()},
                                                 "table": table}, indent=1))


if __name__ == "__main__":
    main()
