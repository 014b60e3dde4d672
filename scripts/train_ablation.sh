#!/usr/bin/env bash
# Section 7.2 on the real image set: the four decoders of the paper, trained with the
# same budget, round-robin in chunks so that at any moment every variant has had the
# same number of steps (each chunk is a resume of its workdir).
#   scripts/train_ablation.sh STEPS [CHUNK] [WARM]      (e.g. 250 100 150)
# Encoder: the built-in Gatys-normalised VGG-16. Schedule as the built-in decoder's,
# scaled down: style weight 0.25 for the first WARM steps (content first), then 1.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:?total steps per variant}
chunk=${2:-150}
warm=${3:-150}
variants=("adain none" "concat none" "adain batch" "adain instance")
for ((target = warm; target <= steps; target = target + chunk > steps && target < steps ? steps : target + chunk)); do
  sw=1; ((target <= warm)) && sw=0.25
  for v in "${variants[@]}"; do
    set -- $v
    python train.py --workdir "runs/ablation/$1-$2" --fusion "$1" --decoder-norm "$2" \
      --vgg builtin --content-dir data/real/content/train --style-dir data/real/style/train \
      --sample-content-dir data/real/content/held --sample-style-dir data/real/style/held \
      --batch-size 4 --image-size 256 --crop-size 128 --lr 1e-3 --style-weight "$sw" \
      --max-steps "$target" --eval-every 50 --sample-every "$chunk" --save-every 50 \
      --keep 2 --no-progress
  done
done
