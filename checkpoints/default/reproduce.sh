#!/usr/bin/env bash
# Rebuild the shipped default model from nothing but this repository and ../shared/data
# (the dash-cam clip and the paper's example frames), on a CPU. Wall times are in MODEL_CARD.md.
set -euo pipefail
SHARED=${SHARED:-../shared/data}
WORK=${WORK:-/tmp/depthda_default}

# 1. 4000 procedural street scenes in SYNTHIA's format (seed 1).
depthda synth --out "$WORK/synth_192x624" --count 4000 --size 192x624 --seed 1

# 2. Stage 1 (depth) and stage 2 (style) were trained at the same time on the 2-core machine.
# One thread each: two processes of two OpenMP threads on two cores thrash each other.
OMP_NUM_THREADS=1 depthda train-stage1 --data-root "$WORK/synth_192x624" --out "$WORK/stage1" \
  --steps 2500 --batch-size 8 --size 128x416 --preset small --seed 0 --num-workers 1 \
  --checkpoint-every 250 --val-every 250 &
OMP_NUM_THREADS=1 depthda train-stage2 --real "$SHARED/dashcam_video/solidWhiteRight.mp4" \
  --real "$SHARED/paper_examples" --synthetic "$WORK/synth_192x624" \
  --out "$WORK/stage2" --steps 2000 --batch-size 1 --size 128x416 --preset small --seed 0 \
  --num-workers 1 --checkpoint-every 250 --val-every 250
wait

# Then stage 1 continued alone, resumed exactly (the data order and every RNG are checkpointed):
# to step 3000 with the raw weights, then to 6000 keeping a moving average of the weights, which is
# what gets exported. (The shipped run stopped at 4500 and resumed, and did 3000 -> 4500 with one
# thread beside another job; thread counts change float summation order, so a rebuild matches
# statistically, not bit for bit.)
depthda train-stage1 --data-root "$WORK/synth_192x624" --out "$WORK/stage1" \
  --steps 3000 --batch-size 8 --size 128x416 --preset small --seed 0 --num-workers 1 \
  --checkpoint-every 250 --val-every 250 --resume
OMP_NUM_THREADS=1 depthda train-stage1 --data-root "$WORK/synth_192x624" --out "$WORK/stage1" \
  --steps 6000 --batch-size 8 --size 128x416 --preset small --seed 0 --num-workers 1 \
  --checkpoint-every 250 --val-every 250 --resume --ema-decay 0.998

# Then 1000 more steps on the same scenes plus 2000 taller ones (320x624): their 128x416 crops slide
# vertically and show sky high above the horizon, as 16:9 video does. The reader takes one SYNTHIA
# root, so the two sets are merged by symbolic links (fx is the same: both are 624 px wide).
depthda synth --out "$WORK/synth_320x624" --count 2000 --size 320x624 --seed 2
bash checkpoints/default/merge_synth.sh "$WORK/synth_mixed" "$WORK/synth_192x624" "$WORK/synth_320x624"
depthda train-stage1 --data-root "$WORK/synth_mixed" --out "$WORK/stage1" \
  --steps 7000 --batch-size 8 --size 128x416 --preset small --seed 0 --num-workers 1 \
  --checkpoint-every 250 --val-every 250 --resume --ema-decay 0.998

# 3. Assemble the pipeline checkpoint.
for part in depth:stage1 style:stage2; do
  mkdir -p "checkpoints/default/${part%%:*}"
  cp "$WORK/${part##*:}/model.safetensors" "$WORK/${part##*:}/config.json" "checkpoints/default/${part%%:*}/"
done

# 4. Quality on the real KITTI frames the repo ships (see MODEL_CARD.md for the table).
bash checkpoints/default/measure.sh
