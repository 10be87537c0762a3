#!/usr/bin/env bash
# Issue 15's GPU figures in one device call: Ray packing on one H200 (experiments/ray_packing.py), then the
# CUDA tests with what time is left. The device machine has no Ray and reaches no package index, and the
# call carries at most 64 MiB, so Ray travels as its wheel without the Java jars, the dashboard's web client
# and the rllib/serve/data/tune/train libraries, its binaries stripped (16.6 MB as tar.xz). Here, before:
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu/whl && cp ../shared/data/cifar10-jpeg.tar.gz .gpu/
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d /tmp/w ray==2.60.0   # then unzip, strip (see below), tar -cJf .gpu/ray312.tar.xz
#   pip download (same flags) -d .gpu/whl jsonschema referencing rpds-py jsonschema-specifications
# Stripping: rm -rf ray/jars ray/dashboard/client/build ray/{rllib,serve,data,tune,train,llm}; strip the ELF files.
# Then, with the device tool carrying .gpu: `BUDGET=480 bash experiments/ray_gpu.sh` (timeout_s 560).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/ray_log.txt") 2>&1
T0=$(date +%s)
BUDGET=${BUDGET:-480}
left() { echo $((BUDGET - ($(date +%s) - T0))); }
mkdir -p /tmp/site /tmp/rbm
tar -xJf .gpu/ray312.tar.xz -C /tmp/site && python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl
tar -xzf .gpu/cifar10-jpeg.tar.gz -C /tmp/rbm
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__, 'cpus', __import__('os').cpu_count())"
echo "=== setup done at $(( $(date +%s) - T0 )) s"
timeout $(( $(left) - 20 )) python3 experiments/ray_packing.py --dataset imagefolder:/tmp/rbm/cifar10-jpeg --epochs 5 \
  --out-dir "$OUT" --budget $(( $(left) - 110 )) \
  --configs local:0:1:128,ray:0.25:4:128,ray:0.5:2:128,local:0:1:512,ray:0.25:4:512,ray:0.5:2:512,local:0:1:128:graphs,ray:0.25:4:128:graphs,ray:1:1:128,procs:0:4:128
echo "=== packing done at $(( $(date +%s) - T0 )) s"
if [ "$(left)" -gt 40 ]; then
  timeout $(( $(left) - 10 )) python3 -m pytest -q -x tests/test_gpu.py -p no:cacheprovider 2>&1 | tail -15
fi
echo "=== done at $(( $(date +%s) - T0 )) s"
