#!/usr/bin/env bash
# usage: merge_synth.sh OUT SET...   One SYNTHIA root from several `depthda synth` sets of the same
# width (so the same fx), by symbolic links renumbered in order: the stage-1 reader takes one root.
set -euo pipefail
out=$1; shift
mkdir -p "$out/RGB" "$out/Depth/Depth"
cp "$1/intrinsics.json" "$out/"
i=0
for set in "$@"; do
  for f in "$set"/RGB/*.png; do
    name=$(printf '%07d.png' "$i")
    ln -s "$f" "$out/RGB/$name"
    ln -s "$set/Depth/Depth/$(basename "$f")" "$out/Depth/Depth/$name"
    i=$((i + 1))
  done
done
