#!/usr/bin/env bash
# Measure the default pipeline, its depth network alone and two reference baselines on the real
# KITTI frames shipped in data/, each without and with median scaling. Writes JSON to $OUT.
set -euo pipefail
OUT=${OUT:-outputs/quality}
CKPT=${CKPT:-checkpoints/default}
mkdir -p "$OUT"
OBJ=$(mktemp -d)
depthda data object-as-raw --object-root data/kitti/object --frame 000008 --out "$OBJ" >/dev/null
echo "2011_09_26/2011_09_26_drive_9000_sync 0000000000 l" > "$OBJ/split.txt"

run() {  # name, then eval arguments
  local name=$1; shift
  for scaling in none median; do
    depthda eval kitti "$@" --scaling "$scaling" --json "$OUT/${name}_${scaling}.json" >/dev/null
  done
}
for set in tiny object; do
  if [ "$set" = tiny ]; then
    data=(--data-root data/kitti/raw --split-file data/splits/kitti_tiny_test_files.txt --gt annotated)
  else
    data=(--data-root "$OBJ" --split-file "$OBJ/split.txt" --gt velodyne)
  fi
  run "${set}_pipeline" "${data[@]}" --checkpoint "$CKPT"
  run "${set}_depth_only" "${data[@]}" --checkpoint "$CKPT" --no-style
  run "${set}_constant" "${data[@]}" --baseline constant
  run "${set}_ground_plane" "${data[@]}" --baseline ground-plane
done
rm -rf "$OBJ"
python - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("| frames | method | scaling | abs_rel | sq_rel | rmse | rmse_log | δ<1.25 | δ<1.25² | δ<1.25³ |")
print("|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(out.glob("*.json")):
    m = json.loads(f.read_text())
    frames, rest = f.stem.split("_", 1)
    method, scaling = rest.rsplit("_", 1)
    print(f"| {frames} | {method} | {scaling} | " + " | ".join(f"{m[k]:.3f}" for k in
          ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")) + " |")
PY
