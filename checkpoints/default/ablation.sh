#!/usr/bin/env bash
# The fine-tuning candidates of MODEL_CARD.md's ablation table, each started from the shipped depth
# network and scored on the choosing frames only (SETS=choose: drive 0023's right camera, from
# ../shared/data). None of them beat the shipped network there, so none is shipped.
# Wall times on the 2-core development machine are in MODEL_CARD.md.
set -euo pipefail
SHARED=${SHARED:-../shared/data}
WORK=${WORK:-/tmp/depthda_ablation}

# 1. Scenes aimed at the failures: the same streets plus cars 3-30 m ahead, beside and oncoming,
# far tree lines and hills, JPEG compression (--profile obstacles). Two shapes, as for the shipped
# model: KITTI-shaped and taller (sky high above the horizon), merged by symbolic links.
depthda synth --out "$WORK/obst_192" --count 2400 --size 192x624 --seed 1 --profile obstacles
depthda synth --out "$WORK/obst_320" --count 1000 --size 320x624 --seed 2 --profile obstacles
bash checkpoints/default/merge_synth.sh "$WORK/obst_mixed" "$WORK/obst_192" "$WORK/obst_320"

# 2. Fine-tunes from the shipped depth network, with the gradient-matching term, in the shipped
# model's training views (crops, one batch shared by the critic steps).
echo '{"view": "crop", "fresh_critic_batches": false, "init": "default"}' > "$WORK/finetune.json"
finetune() {  # name, steps, λ
  OMP_NUM_THREADS=1 depthda train-stage1 --data-root "$WORK/obst_mixed" --out "$WORK/runs/$1" \
    --config "$WORK/finetune.json" --steps "$2" --batch-size 8 --size 128x416 --preset small --seed 0 \
    --num-workers 1 --checkpoint-every 250 --val-every 100000 --ema-decay 0.998 --grad-weight 0.5 \
    --l1-weight "$3" --init-from checkpoints/default/depth --no-progress
}
score() {  # name: the run's depth network behind the shipped style network, on the choosing frames
  local cand=$WORK/cand/$1
  rm -rf "$cand" && mkdir -p "$cand/depth"
  cp "$WORK/runs/$1/model.safetensors" "$WORK/runs/$1/config.json" "$cand/depth/"
  cp -r checkpoints/default/style "$cand/style"
  SETS=choose OUT="$WORK/quality/$1" CKPT="$cand" SHARED="$SHARED" bash checkpoints/default/measure.sh
}
finetune wgan_500 500 0.99 & finetune l1_500 500 1 & wait   # run side by side, one thread each
score wgan_500
score l1_500
finetune wgan_1550 1550 0.99 & finetune l1_7850 7850 1 & wait
score wgan_1550
score l1_7850

variant() {  # name, a Python statement on cfg: the shipped pipeline with its depth config.json edited
  local cand=$WORK/cand/$1
  rm -rf "$cand" && cp -r checkpoints/default "$cand"
  python - "$cand/depth/config.json" "$2" <<'PY'
import json, sys
path, edit = sys.argv[1], sys.argv[2]
cfg = json.load(open(path))
exec(edit)
json.dump(cfg, open(path, "w"), indent=2)
PY
  SETS=choose OUT="$WORK/quality/$1" CKPT="$cand" SHARED="$SHARED" bash checkpoints/default/measure.sh
}

# 3. The shipped network at a higher working resolution, untrained for it (192x640, focal scaled).
variant hires_640 'cfg["focal_px"] *= 640 / cfg["size"][1]; cfg["size"] = [192, 640]'

# 4. Test-time batch-norm statistics: each image's own, as the authors' released inference.
variant per_image_bn 'cfg["batch_norm"] = "per_image"'

# 5. The shipped model itself on the choosing frames, the row every candidate is compared with.
SETS=choose OUT="$WORK/quality/shipped" SHARED="$SHARED" bash checkpoints/default/measure.sh
