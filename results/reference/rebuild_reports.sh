#!/usr/bin/env bash
# Rebuild every committed report, table and plot under results/reference/ from its committed runs.csv alone (no
# training: the numbers are the rows'), and the claims pages with the commands their READMEs give.
# From the repository root:  bash results/reference/rebuild_reports.sh
set -euo pipefail
R=results/reference
for n in cifar10-cpu-table2 cifar10-cpu-table3 cifar10-jpeg-corruptions-cpu robust-cpu; do
  python -m robustbench_mix.report "$R/$n"
done
for n in cifar10-jpeg-h200 methods-cpu quick quick-3seeds quick-h200 table2-cpu table3-cpu; do
  python -m robustbench_mix.report "$R/$n" --relax dataset,model
done
for n in cifar10-cpu-table2 cifar10-cpu-table3 robust-cpu methods-cpu; do
  python -m robustbench_mix.claims "$R/$n" --relax dataset,model --out "$R/$n"
done
python -m robustbench_mix.claims "$R/cifar10-jpeg-h200" --relax dataset --out "$R/cifar10-jpeg-h200"
