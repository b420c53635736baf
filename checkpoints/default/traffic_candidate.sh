#!/usr/bin/env bash
# The traffic candidate of MODEL_CARD.md (issue 23; not shipped yet: see the card for why): the
# depth network on an ImageNet EfficientNet-Lite0 encoder, from this repository and the `train`
# extra only, on a CPU, behind the shipped style network. Wall times are in MODEL_CARD.md.
# One OpenMP thread per process: two-thread runs beside any other busy process were 18x slower here.
set -euo pipefail
SHARED=${SHARED:-../shared/data}
WORK=${WORK:-/tmp/depthda_traffic}
export OMP_NUM_THREADS=1

# 1. Depth network (stage 1): the U-Net decoder on an ImageNet EfficientNet-Lite0 encoder, trained
#    on traffic queues, then on queues and open streets together.
depthda synth --out "$WORK/traffic_192x624" --count 2400 --size 192x624 --seed 11 --profile traffic
depthda synth --out "$WORK/street_192x624" --count 1200 --size 192x624 --seed 13 --profile obstacles
depthda synth --out "$WORK/street_320x624" --count 600 --size 320x624 --seed 12 --profile obstacles
bash checkpoints/default/merge_synth.sh "$WORK/traffic" "$WORK/traffic_192x624"
bash checkpoints/default/merge_synth.sh "$WORK/mixed" "$WORK/traffic_192x624" "$WORK/street_192x624" \
  "$WORK/street_320x624"
bash checkpoints/default/merge_synth.sh "$WORK/streets_x2" "$WORK/traffic_192x624" "$WORK/street_192x624" \
  "$WORK/street_320x624" "$WORK/street_192x624" "$WORK/street_320x624"
# Crops (the taller renders' crops slide vertically: the principal point moves, depth does not),
# plain L1 + gradient matching (λ = 1: no critic, 6x cheaper per step on a CPU), Adam 1e-4.
echo '{"view": "crop", "fresh_critic_batches": false, "lr_g": 1e-4}' > "$WORK/stage1.json"
stage1=(--out "$WORK/stage1" --batch-size 8 --size 128x416 --preset small --arch effnet_unet
        --seed 0 --num-workers 1 --checkpoint-every 100 --val-every 250 --l1-weight 1 --grad-weight 0.5
        --ema-decay 0.998 --config "$WORK/stage1.json")
# The open road came out too near after traffic alone, so open streets got more weight in two steps.
depthda train-stage1 --data-root "$WORK/traffic" "${stage1[@]}" --steps 1500
depthda train-stage1 --data-root "$WORK/mixed" "${stage1[@]}" --steps 2200 --resume
depthda train-stage1 --data-root "$WORK/streets_x2" "${stage1[@]}" --steps 4200 --resume

# 2. Score it on the choosing frames, behind the shipped style network and alone.
mkdir -p "$WORK/candidate/depth"
cp "$WORK/stage1/model.safetensors" "$WORK/stage1/config.json" "$WORK/candidate/depth/"
cp -r checkpoints/default/style "$WORK/candidate/style"
SETS="queue choose" CKPT="$WORK/candidate" OUT="$WORK/quality" bash checkpoints/default/measure.sh
