#!/usr/bin/env bash
# Measure a pipeline (default: the shipped one), its depth network alone and two reference baselines
# on real KITTI frames, without and with median scaling, with the obstacle breakdown. Writes JSON to
# $OUT and prints the table of MODEL_CARD.md.
#   report sets (shipped in data/, never used to choose anything):
#     tiny    drive 0023 frames 0-6, left camera (velodyne projected, annotated-depth layout)
#     object  KITTI object frame 000008 (its field-of-view-reduced velodyne scan)
#   choose sets (only with SETS="queue choose", from $SHARED, not shipped; used to choose checkpoints and settings):
#     queue   78 consecutive frames of a traffic queue (KITTI raw 2011_09_26, left camera, velodyne)
#     choose  drive 0023 frames 0-6, right camera (image_03 and its own projected scans)
set -euo pipefail
OUT=${OUT:-outputs/quality}
CKPT=${CKPT:-checkpoints/default}
SETS=${SETS:-tiny object}
SHARED=${SHARED:-../shared/data}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run() {  # name, then eval arguments
  local name=$1; shift
  for scaling in none median; do
    depthda eval kitti "$@" --breakdown --scaling "$scaling" --json "$OUT/${name}_${scaling}.json" >/dev/null
  done
}
for set in $SETS; do
  case $set in
    tiny) data=(--data-root data/kitti/raw --split-file data/splits/kitti_tiny_test_files.txt --gt annotated) ;;
    object)
      depthda data object-as-raw --object-root data/kitti/object --frame 000008 --out "$WORK/object" >/dev/null
      echo "2011_09_26/2011_09_26_drive_9000_sync 0000000000 l" > "$WORK/object/split.txt"
      data=(--data-root "$WORK/object" --split-file "$WORK/object/split.txt" --gt velodyne) ;;
    queue)
      data=(--data-root "$SHARED/kitti_raw_queue" --split-file "$SHARED/kitti_raw_queue/kitti_queue_files.txt" --gt velodyne) ;;
    choose)
      src=$SHARED/kitti_raw_tiny/2011_09_26
      drive=$WORK/choose/2011_09_26/2011_09_26_drive_0023_sync
      mkdir -p "$drive/image_03" "$drive/proj_depth/groundtruth"
      cp "$src"/calib_*.txt "$WORK/choose/2011_09_26/"
      cp -r "$src/2011_09_26_drive_0023_sync/image_03/data" "$drive/image_03/"
      cp -r "$src/2011_09_26_drive_0023_sync/proj_depth/velodyne_png_DERIVED/image_03" "$drive/proj_depth/groundtruth/"
      for i in 0 1 2 3 4 5 6; do echo "2011_09_26/2011_09_26_drive_0023_sync 000000000$i r"; done > "$WORK/choose/split.txt"
      data=(--data-root "$WORK/choose" --split-file "$WORK/choose/split.txt" --gt annotated) ;;
    *) echo "unknown set $set (tiny, object, queue, choose)" >&2; exit 2 ;;
  esac
  run "${set}_pipeline" "${data[@]}" --checkpoint "$CKPT"
  run "${set}_depth_only" "${data[@]}" --checkpoint "$CKPT" --no-style
  run "${set}_constant" "${data[@]}" --baseline constant
  run "${set}_ground_plane" "${data[@]}" --baseline ground-plane
done
python - "$OUT" $SETS <<'PY'
import json, pathlib, sys
out, sets = pathlib.Path(sys.argv[1]), sys.argv[2:]
print("| frames | method | scaling | abs_rel | sq_rel | rmse | rmse_log | δ<1.25 | δ<1.25² | δ<1.25³ | obstacle abs_rel | obstacle δ<1.25 | road abs_rel |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(out.glob("*.json")):
    frames, rest = f.stem.split("_", 1)
    if frames not in sets:
        continue
    m = json.loads(f.read_text())
    method, scaling = rest.rsplit("_", 1)
    regions = m["breakdown"]["regions"]
    print(f"| {frames} | {method} | {scaling} | " + " | ".join(f"{m[k]:.3f}" for k in
          ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"))
          + f" | {regions['obstacle']['abs_rel']:.3f} | {regions['obstacle']['a1']:.3f} | {regions['road']['abs_rel']:.3f} |")
PY
