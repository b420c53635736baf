#!/usr/bin/env bash
# Rebuild the shipped default model from nothing but this repository and ../shared/data (dash-cam
# frames and the paper's example frames; no KITTI frame is trained on), on a CPU. Wall times and
# the measurements behind every choice are in MODEL_CARD.md.
set -euo pipefail
SHARED=${SHARED:-../shared/data}
WORK=${WORK:-/tmp/depthda_default}
# One OpenMP thread per process: two-thread runs beside any other busy process were 18x slower here.
export OMP_NUM_THREADS=1

# 1. Style network (stage 2, real -> synthetic), the one inference runs: unchanged since the first
#    default model, trained on 4000 procedural streets and the dash-cam clip + paper frames.
depthda synth --out "$WORK/synth_192x624" --count 4000 --size 192x624 --seed 1
depthda train-stage2 --real "$SHARED/dashcam_video/solidWhiteRight.mp4" --real "$SHARED/paper_examples" \
  --synthetic "$WORK/synth_192x624" --out "$WORK/style" --steps 2000 --batch-size 1 --size 128x416 \
  --preset small --seed 0 --num-workers 1 --checkpoint-every 250 --val-every 250

# 2. Scenes for the depth network: traffic queues (cars and pale trucks 0.5-10 m away, overpasses,
#    walls, camera height and pose spread) and open streets with obstacles, in two shapes.
depthda synth --out "$WORK/traffic_192x624" --count 2400 --size 192x624 --seed 11 --profile traffic
depthda synth --out "$WORK/street_192x624" --count 1200 --size 192x624 --seed 13 --profile obstacles
depthda synth --out "$WORK/street_320x624" --count 600 --size 320x624 --seed 12 --profile obstacles
sets=("$WORK/traffic_192x624" "$WORK/street_192x624" "$WORK/street_320x624")
bash checkpoints/default/merge_synth.sh "$WORK/traffic" "$WORK/traffic_192x624"
bash checkpoints/default/merge_synth.sh "$WORK/mixed" "${sets[@]}"
bash checkpoints/default/merge_synth.sh "$WORK/streets_x2" "${sets[@]}" "$WORK/street_192x624" "$WORK/street_320x624"

# 3. Depth network (stage 1): a U-Net decoder on an ImageNet EfficientNet-Lite0 encoder; crops,
#    L1 + gradient matching (lambda = 1: no critic), Adam 1e-4, moving average of the weights.
echo '{"view": "crop", "fresh_critic_batches": false, "lr_g": 1e-4}' > "$WORK/stage1.json"
stage1=(--out "$WORK/stage1" --batch-size 8 --size 128x416 --preset small --arch effnet_unet
        --seed 0 --num-workers 1 --checkpoint-every 100 --val-every 250 --l1-weight 1 --grad-weight 0.5
        --ema-decay 0.998 --config "$WORK/stage1.json")
# Traffic alone first; the open road then came out too near, so open streets got more weight in two steps.
depthda train-stage1 --data-root "$WORK/traffic" "${stage1[@]}" --steps 1500
depthda train-stage1 --data-root "$WORK/mixed" "${stage1[@]}" --steps 2200 --resume
depthda train-stage1 --data-root "$WORK/streets_x2" "${stage1[@]}" --steps 4200 --resume

# 4. Round trips: every second render through a second style run's two generators and back, so the
#    depth network learns to read through a style network's artefacts (behind the step-1 network a
#    clear sky came out as a near blob before this). The second style run is used for nothing else.
depthda train-stage2 --real "$SHARED/dashcam_video/solidWhiteRight.mp4" --real "$SHARED/paper_examples" \
  --real "$SHARED/dashcam_extra/carnd_advanced_lane_lines" --real "$SHARED/dashcam_extra/carnd_lanelines_p1" \
  --synthetic "$WORK/mixed" --out "$WORK/style_rt" --steps 1500 --batch-size 1 --size 128x416 \
  --preset small --seed 0 --num-workers 1 --checkpoint-every 250 --val-every 250
for set in "${sets[@]}"; do
  depthda data round-trip "$set" --style "$WORK/style_rt" --every 2 --out "${set}_rt"
done
rt=("$WORK/traffic_192x624_rt" "$WORK/street_192x624_rt" "$WORK/street_320x624_rt")
bash checkpoints/default/merge_synth.sh "$WORK/with_rt" "${sets[@]}" "$WORK/street_192x624" \
  "$WORK/street_320x624" "${rt[@]}" "${rt[@]}"
depthda train-stage1 --data-root "$WORK/with_rt" "${stage1[@]}" --steps 6200 --resume

# 5. Assemble the pipeline checkpoint.
for part in depth:stage1 style:style; do
  mkdir -p "checkpoints/default/${part%%:*}"
  cp "$WORK/${part##*:}/model.safetensors" "$WORK/${part##*:}/config.json" "checkpoints/default/${part%%:*}/"
done

# 6. Quality on the choosing frames (from $SHARED) and on the reporting frames the repo ships.
SETS="queue choose" SHARED="$SHARED" bash checkpoints/default/measure.sh
bash checkpoints/default/measure.sh
