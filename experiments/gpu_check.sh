#!/usr/bin/env bash
# The GPU checks of issue 7 as one prepared script for a session lent an H100/H200 (the device tool): the CUDA
# tests, the benchmark, the paper's full CIFAR-10 ERM-vs-mixup comparison (200 epochs each, timed) and the
# bf16-vs-fp32 attack check on its trained models. Each stage has a time cap so that the whole script ends
# inside one 10-minute device call, and each packs its outputs into $OUT as soon as it ends.
#
# Here, before the call (the device machine gets only the repository, not ../shared):
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu && cp ../shared/data/cifar10-jpeg.tar.gz .gpu/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .gpu/whl torchattacks==3.5.1   # pure Python wheel
# Then, with the device tool, carrying .gpu: `bash experiments/gpu_check.sh` (the default stages: tests bench
# full precision wrn compile) or name stages, also quick workers attackbatch step mixup128 stacked compile_ro
# compile_step. Without $OUT the outputs go to /tmp/gpu_out. Run on an H200 (logs: experiments/gpu/call1.log,
# call2.log; figures in experiments/README.md). Next, in one call with timeout_s 580: `BUDGET=540 bash experiments/gpu_check.sh tests step
# compile compile_step mixup128 compile_ro` (the full comparison is done; `step` and `compile_step` time the
# whole-step CUDA graph, --cuda-graphs step, alone and with the compiled model inside, not yet run on a GPU;
# compile_step after compile reuses inductor's on-disk cache of the same graphs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
T0=$(date +%s)
BUDGET=${BUDGET:-570}  # seconds for the whole script
left() { echo $((BUDGET - ($(date +%s) - T0))); }
cap() { local c=$1 l; l=$(( $(left) - ${2:-0} )); echo $(( c < l ? c : l )); }
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
DATA=/tmp/rbm/cifar10-jpeg
[ -d $DATA ] || { mkdir -p /tmp/rbm && tar -xzf .gpu/cifar10-jpeg.tar.gz -C /tmp/rbm; }
COMMON=(--dataset "imagefolder:$DATA" --data-dir /tmp/rbm-data --no-progress --device cuda)
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c "import torch, torchattacks; print('torch', torch.__version__, 'torchattacks', torchattacks.__version__)"
B=/tmp/bench; FULL=/tmp/full; mkdir -p $B
pack() { tar -czf "$OUT/$1.tar.gz" -C "$(dirname "$2")" --exclude='*.pt' --exclude='*.npy' "$(basename "$2")"; }

stages=("$@"); [ ${#stages[@]} -eq 0 ] && stages=(tests bench full precision wrn compile)
for stage in "${stages[@]}"; do
  echo "=== $stage (at $(( $(date +%s) - T0 )) s, $(left) s left)"
  case $stage in
    tests)  # the CUDA-only paths: both CUDA-graph modes (and compile in the step graph) train like eager, resume,
            # bf16 attacks
      timeout "$(cap 150 0)" python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_attacks.py \
          tests/test_checks.py ;;
    bench)  # PreAct ResNet-18, batch 512 and 128: recipe vs suite (eager, CUDA graphs); PGD-10
      timeout "$(cap 150 330)" python3 -m robustbench_mix.bench --model preact_resnet18 --batch-size 512 128 --out $B
      pack bench $B ;;
    full)   # the paper's comparison: ERM and mixup (alpha=1), PreAct ResNet-18, 200 epochs each
      GRAPHS=$(python3 - <<'EOF'
import json
try:
    d = json.load(open("/tmp/bench/" + next(f for f in __import__("os").listdir("/tmp/bench") if f.endswith("preact_resnet18.json"))))
    ok = not any(k.startswith("suite_graphs") for k in d["errors"])
    faster = all(r["suite_graphs_img_s"] >= r["suite_img_s"] for r in d["training"] if r["batch_size"] == 512)
    print("--cuda-graphs" if ok and faster else "")
except Exception:
    print("")
EOF
)
      echo "full comparison with: ${GRAPHS:-eager}"
      s=$(date +%s)
      timeout "$(cap 420 40)" python3 -m robustbench_mix.suite --preset cifar10 "${COMMON[@]}" --batch-size 512 \
          --lr 0.2 --eval-every 10 --checkpoint-every 25 $GRAPHS --out $FULL
      rc=$?
      echo "full comparison wall time: $(( $(date +%s) - s )) s (rc $rc)"
      pack full $FULL ;;
    precision)  # bf16 vs fp32 attacks on the two trained models, all 10,000 test images
      timeout "$(cap 60 0)" python3 -m robustbench_mix.bench --precision-check $FULL --data-dir /tmp/rbm-data \
          --device cuda --out $B
      pack bench $B ;;
    wrn)
      timeout "$(cap 60 0)" python3 -m robustbench_mix.bench --model wrn28_10 --batch-size 512 --steps 20 \
          --warmup 5 --out $B
      pack bench $B ;;
    quick)  # the default suite on the GPU through CUDA graphs: every robustness check must pass
      timeout "$(cap 90 0)" python3 -m robustbench_mix.suite --device cuda --no-progress --cuda-graphs --out /tmp/quick
      pack quick /tmp/quick
      grep -c "robustness check" "$OUT/log.txt" | sed 's/^/lines with a failed robustness check so far: /' ;;
    workers)  # the recipe's speed depends on its DataLoader workers (the benchmark's default is 8)
      timeout "$(cap 60 0)" python3 -m robustbench_mix.bench --parts recipe --workers 2 --batch-size 512 128 \
          --tag workers2 --out $B
      pack bench $B ;;
    attackbatch)  # PGD-10 throughput at a larger attack batch
      timeout "$(cap 40 0)" python3 -m robustbench_mix.bench --parts attacks --attack-batch 4000 --tag attack4000 \
          --out $B
      pack bench $B ;;
    step)  # the whole training step as one CUDA graph (--cuda-graphs step) against the recipe, eager, model graphs
      timeout "$(cap 90 0)" python3 -m robustbench_mix.bench --parts recipe,suite,graphs,graphs_step \
          --model preact_resnet18 --batch-size 512 128 --tag step --out $B
      pack bench $B ;;
    mixup128)  # the trainer at the paper's batch with mixup (eager vs the two CUDA-graph modes)
      timeout "$(cap 50 0)" python3 -m robustbench_mix.bench --parts suite,graphs,graphs_step --batch-size 128 \
          --method mixup --tag mixup --out $B
      pack bench $B ;;
    stacked)  # several runs at once (torch.func prototype) against one run eager and with CUDA graphs, batch 128
      timeout "$(cap 60 0)" python3 -m robustbench_mix.bench --parts suite,graphs,stacked --batch-size 128 \
          --stack 4 --tag stacked --out $B
      pack bench $B ;;
    compile)  # torch.compile for training (batch 512, 128), then for PGD; compiling takes minutes, so last
      if [ "$(left)" -gt 150 ]; then
        timeout "$(cap 240 60)" python3 -m robustbench_mix.bench --model preact_resnet18 --batch-size 512 128 \
            --parts compile --tag compile --out $B
        pack bench $B
        timeout "$(cap 200 5)" python3 -m robustbench_mix.bench --model preact_resnet18 --parts attacks_compiled \
            --tag compile_attacks --out $B
        pack bench $B
      else echo "skipped: $(left) s left"; fi ;;
    compile_step)  # the compiled model inside the whole-step graph (--compile --cuda-graphs step), 512 and 128
      if [ "$(left)" -gt 150 ]; then
        timeout "$(cap 240 5)" python3 -m robustbench_mix.bench --model preact_resnet18 --batch-size 512 128 \
            --parts compile_step --tag compile_step --out $B
        pack bench $B
      else echo "skipped: $(left) s left"; fi ;;
    compile_ro)  # torch.compile with its own CUDA graphs (mode reduce-overhead) at the paper's batch
      if [ "$(left)" -gt 90 ]; then
        timeout "$(cap 180 5)" python3 -m robustbench_mix.bench --model preact_resnet18 --batch-size 128 \
            --parts compile --compile-mode reduce-overhead --tag compile_ro --out $B
        pack bench $B
      else echo "skipped: $(left) s left"; fi ;;
    *) echo "unknown stage $stage (tests bench full precision wrn compile quick workers attackbatch step mixup128 stacked compile_ro compile_step)" ;;
  esac
done
echo "=== done at $(( $(date +%s) - T0 )) s"
