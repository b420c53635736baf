#!/usr/bin/env bash
# Rebuild the shipped default model from nothing but this repository, the `train` extra
# (EfficientNet-Lite0's ImageNet weights) and ../shared/data (the dash-cam clip and the paper's
# example frames, for the style network), on a CPU. Wall times are in MODEL_CARD.md.
# One OpenMP thread per process: two-thread runs beside any other busy process were 18x slower here.
set -euo pipefail
SHARED=${SHARED:-../shared/data}
WORK=${WORK:-/tmp/depthda_default}
export OMP_NUM_THREADS=1

# 1. Style network (stage 2, real -> synthetic): unchanged since the first default model. It learnt
#    the look of 4000 procedural streets (seed 1) from the dash-cam clip and the paper's examples.
depthda synth --out "$WORK/synth_192x624" --count 4000 --size 192x624 --seed 1
depthda train-stage2 --real "$SHARED/dashcam_video/solidWhiteRight.mp4" \
  --real "$SHARED/paper_examples" --synthetic "$WORK/synth_192x624" \
  --out "$WORK/stage2" --steps 2000 --batch-size 1 --size 128x416 --preset small --seed 0 \
  --num-workers 1 --checkpoint-every 250 --val-every 250

# 2. Depth network (stage 1): the U-Net decoder on an ImageNet EfficientNet-Lite0 encoder, trained
#    on traffic queues, then on queues and open streets together.
depthda synth --out "$WORK/traffic_192x624" --count 2400 --size 192x624 --seed 11 --profile traffic
depthda synth --out "$WORK/street_192x624" --count 1200 --size 192x624 --seed 13 --profile obstacles
depthda synth --out "$WORK/street_320x624" --count 600 --size 320x624 --seed 12 --profile obstacles
bash checkpoints/default/merge_synth.sh "$WORK/traffic" "$WORK/traffic_192x624"
bash checkpoints/default/merge_synth.sh "$WORK/mixed" "$WORK/traffic_192x624" "$WORK/street_192x624" \
  "$WORK/street_320x624"
# Crops (the taller renders' crops slide vertically: the principal point moves, depth does not),
# plain L1 + gradient matching (λ = 1: no critic, 6x cheaper per step on a CPU), Adam 1e-4.
echo '{"view": "crop", "fresh_critic_batches": false, "lr_g": 1e-4}' > "$WORK/stage1.json"
stage1=(--out "$WORK/stage1" --steps 3000 --batch-size 8 --size 128x416 --preset small --arch effnet_unet
        --seed 0 --num-workers 1 --checkpoint-every 100 --val-every 250 --l1-weight 1 --grad-weight 0.5
        --ema-decay 0.998 --config "$WORK/stage1.json")
depthda train-stage1 --data-root "$WORK/traffic" "${stage1[@]}" --stop-at 1500
depthda train-stage1 --data-root "$WORK/mixed" "${stage1[@]}" --resume

# 3. Assemble the pipeline checkpoint.
for part in depth:stage1 style:stage2; do
  mkdir -p "checkpoints/default/${part%%:*}"
  cp "$WORK/${part##*:}/model.safetensors" "$WORK/${part##*:}/config.json" "checkpoints/default/${part%%:*}/"
done

# 4. Quality on the reporting frames (and, with SETS="queue choose", on the choosing frames).
bash checkpoints/default/measure.sh
