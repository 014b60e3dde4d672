#!/bin/bash
# Small-scale CPU reproduction of sections 7.1/7.2 (random encoder, examples/ images).
set -e
cd "$(dirname "$0")/../.."  # the repository root
PY="env PYTHONPATH=$PWD ${PYTHON:-python}"
OUT=${OUT:-/tmp/small}
mkdir -p "$OUT"
$PY -c "
import torch, sys
sys.path.insert(0, '.')
from tests import torch_reference as ref
torch.manual_seed(0)
torch.save(ref.randomize(ref.vgg_normalised(), 1).state_dict(), '$OUT/vgg_random.pth')
"
for v in "adain none" "concat none" "adain batch" "adain instance"; do
  set -- $v
  name=$1-$2
  /usr/bin/time -f "$name %e s" $PY train.py --workdir $OUT/runs/$name --content-dir examples/content \
    --style-dir examples/style --vgg $OUT/vgg_random.pth --fusion $1 --decoder-norm $2 \
    --batch-size 2 --image-size 64 --crop-size 32 --max-steps 100 --lr 1e-4 --log-every 5 \
    --save-every 100 --sample-every 0 --eval-every 0 --num-workers 0 --no-progress > $OUT/$name.log 2>&1
done
$PY -m adain_jax experiments curves $OUT/runs/adain-none $OUT/runs/concat-none $OUT/runs/adain-batch \
  $OUT/runs/adain-instance --out $OUT/curves.png
/usr/bin/time -f "compare %e s" $PY -m adain_jax experiments compare --content-dir examples/content \
  --style-dir examples/style --out $OUT/report --no-pretrained \
  --runs $OUT/runs/adain-none,$OUT/runs/concat-none,$OUT/runs/adain-batch,$OUT/runs/adain-instance \
  --optimize-steps 10,30 --size 64 > $OUT/compare.log 2>&1
