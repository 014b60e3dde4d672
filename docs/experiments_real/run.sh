#!/usr/bin/env bash
# Sections 7.1 and 7.2 with a real encoder, as run for docs/experiments.md (2-core CPU).
# Needs: data/real (python scripts/build_image_set.py --out data/real) and the extras
# peer and quality (pip install -e ".[peer,quality]").
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/experiments_real
# 7.2: the four decoders, 300 steps each (the budget this session allowed), same schedule
scripts/train_ablation.sh 300 150 150
python -m adain_jax experiments curves runs/ablation/adain-none runs/ablation/concat-none \
  runs/ablation/adain-batch runs/ablation/adain-instance --out "$out/curves.png"
# 7.1 (and 7.2's held-out comparison): every method in one run, one loss encoder (the
# built-in normalised VGG-16, the first run's), 2 held-out contents x 2 held-out styles
python -m adain_jax experiments compare --content-dir data/real/content/held \
  --style-dir data/real/style/held --limit 2 --size 256 --out "$out/256" --no-pretrained \
  --runs adain_jax/weights/builtin,runs/ablation/adain-none,runs/ablation/concat-none,runs/ablation/adain-batch,runs/ablation/adain-instance \
  --optimize-steps 10,100,500 --objective gatys,adain --peer magenta
# the speed row at 512 px: one pair, the built-in decoder, Magenta, optimization 10/100/500
python -m adain_jax experiments compare --content-dir data/real/content/held \
  --style-dir data/real/style/held --limit 1 --size 512 --out "$out/512" --no-pretrained \
  --runs adain_jax/weights/builtin --optimize-steps 10,100,500 --objective gatys,adain \
  --peer magenta
# the README's peer row: built-in weights vs Magenta at 512 and 1024 px
python -m benchmarks.peer | tee "$out/peer.md"
