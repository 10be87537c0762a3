#!/usr/bin/env bash
# The GPU checks the issues ask for, as one prepared script for a session that is lent an H100/H200
# (the device tool). It has not been run yet: no session so far had a GPU.
#
# Here, before the call (the device machine gets only the repository, not ../shared):
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu && cp ../shared/data/cifar10-jpeg.tar.gz .gpu/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .gpu/whl torchattacks==3.5.1   # pure Python wheel
# Then run it with the device tool, carrying .gpu, e.g. `bash experiments/gpu_check.sh bench pair`
# (stages: bench pair table2 table3; each writes under $OUT, or experiments/gpu/ without $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-experiments/gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
DATA=/tmp/cifar10-jpeg
[ -d $DATA ] || tar -xzf .gpu/cifar10-jpeg.tar.gz -C /tmp
DS="imagefolder:$DATA"
COMMON=(--dataset "$DS" --data-dir /tmp/rbm-data --no-progress --device cuda)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"

for stage in "$@"; do
  case $stage in
    bench)  # issue 7: trainer and PGD against the common recipe, same model/batch/device
      python3 -m robustbench_mix.bench --model preact_resnet18 --batch-size 512 128 --compile \
          --out "$OUT" 2>&1 | tee "$OUT/bench.log"
      python3 -m robustbench_mix.bench --model wrn28_10 --batch-size 512 --steps 20 \
          --out "$OUT" 2>&1 | tee -a "$OUT/bench.log" ;;
    pair)   # issue 2: one ERM-vs-mixup pair on CIFAR-10 (JPEG q75), PreAct ResNet-18
      python3 -m robustbench_mix.suite --preset cifar10 "${COMMON[@]}" --epochs 30 --batch-size 512 --lr 0.2 \
          --eps 2/255,8/255 --attack-samples 2000 --out "$OUT/pair" 2>&1 | tee "$OUT/pair.log" ;;
    table2) # issue 4: table2-short at 50% corruption, ERM and mixup alpha=8
      python3 -m robustbench_mix.suite --preset table2-short "${COMMON[@]}" --noise 0.5 --methods erm,mixup \
          --alpha 8 --out "$OUT/table2-short" 2>&1 | tee "$OUT/table2.log" ;;
    table3) # issue 5: a short paper-table3 (white-box and black-box)
      python3 -m robustbench_mix.suite --preset paper-table3 "${COMMON[@]}" --epochs 30 --batch-size 512 \
          --lr 0.2 --attack-samples 2000 --out "$OUT/table3-short" 2>&1 | tee "$OUT/table3.log" ;;
    *) echo "unknown stage $stage (bench pair table2 table3)"; exit 2 ;;
  esac
done
