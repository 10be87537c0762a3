"""Runs packed on one GPU by the Ray executor against the local executor: aggregate training
throughput and a grid's wall time, both through `robustbench_mix.suite.main`, the code path users run.

Throughput: each configuration trains K seeds with a hook that timestamps every epoch (the loop reads the loss
once per epoch, so the GPU has finished it). The first epoch of a run (cuDNN autotuning, CUDA-graph capture,
Ray worker start) is warm-up; the aggregate is the images of all later epochs over the union of the time
they took: K runs at once give the sum of their rates (less where their starts are staggered), one after
another their mean. Checkpoints are written only at the end (`--checkpoint-every` large), evaluation only at
the end (`--eval-every 0`), no attacks: training speed alone.

    python experiments/ray_packing.py --dataset imagefolder:/tmp/rbm/cifar10-jpeg --epochs 6
    python experiments/ray_packing.py --dataset digits --model cnn --epochs 3 --fake-gpus 1 \
        --configs local:0:1:64,ray:0.5:2:64 --grid-epochs 0      # the CPU smoke test

Writes `ray_packing_<device>.json` and `.csv` into --out-dir (default experiments/bench).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from robustbench_mix.cli.suite import main as suite  # noqa: E402

CONFIGS = ("local:0:1:512,ray:0.5:2:512,ray:0.25:4:512,"
           "local:0:1:128,ray:1:1:128,ray:0.5:2:128,ray:0.25:4:128,"
           "local:0:1:128:graphs,ray:0.25:4:128:graphs,procs:0:4:128")


def clock(path: str):
    def hook(epoch, model):
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {epoch} {time.time():.6f}\n")
    return hook


def aggregate(log: Path, images_per_epoch: int) -> dict:
    """Images of the steady epochs (all but each run's first) over the union of the intervals they took."""
    runs: list[list[tuple[int, float]]] = []
    last: dict[str, list] = {}  # a worker process trains its runs one after another: epoch 1 starts the next
    for line in log.read_text().split("\n"):
        if line:
            pid, epoch, t = line.split()
            if pid not in last or int(epoch) <= last[pid][-1][0]:
                last[pid] = []
                runs.append(last[pid])
            last[pid].append((int(epoch), float(t)))
    intervals, rates = [], []
    for marks in runs:
        steady = [(a[1], b[1]) for a, b in zip(marks, marks[1:], strict=False) if b[0] == a[0] + 1]
        intervals += steady
        rates += [images_per_epoch / (b - a) for a, b in steady]
    union, end = 0.0, -1.0
    for a, b in sorted(intervals):
        union += max(0.0, b - max(a, end))
        end = max(end, b)
    return {"runs": len(runs), "steady_epochs": len(intervals),
            "aggregate_img_s": round(len(intervals) * images_per_epoch / union, 1) if union else None,
            "mean_run_img_s": round(sum(rates) / len(rates), 1) if rates else None}


def main() -> int:
    if sys.argv[1:2] == ["--child"]:  # one process of a 'procs' configuration
        return suite(sys.argv[4:], hooks=(clock(sys.argv[2]),))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", default="preact_resnet18")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--configs", default=CONFIGS, help="EXECUTOR:GPUS_PER_RUN:RUNS:BATCH[:graphs], comma-separated; "
                   "EXECUTOR local, ray or procs (RUNS plain suite processes at once, no Ray)")
    p.add_argument("--grid-epochs", type=int, default=3, help="table2-short at 50%% cut to this many epochs, "
                   "local against ray 0.25 (0 skips)")
    p.add_argument("--data-dir", default="/tmp/rbm-data")
    p.add_argument("--fake-gpus", type=int, default=0, help="start Ray with this many logical GPUs (CPU tests)")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "bench"))
    p.add_argument("--budget", type=float, default=1e9, help="seconds; later configurations are skipped after it")
    args = p.parse_args()
    t_start = time.time()
    try:
        import ray

        ray.init(num_gpus=args.fake_gpus or None, include_dashboard=False, log_to_driver=True)
        ray_version = ray.__version__
    except Exception as e:  # noqa: BLE001 - a machine where Ray cannot start still gives the other figures
        print(f"Ray unavailable ({e.__class__.__name__}: {e}); its configurations are skipped", flush=True)
        ray, ray_version = None, None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name().lower().replace(" ", "-") if device == "cuda" else "cpu"
    tmp = Path(tempfile.mkdtemp(prefix="ray_packing_"))
    common = ["--dataset", args.dataset, "--model", args.model, "--methods", "erm", "--noise", "0",
              "--attacks", "fgsm", "--eps", "8", "--attack-samples", "1", "--check-eps", "0", "--eval-every", "0",
              "--val-fraction", "0", "--checkpoint-every", "100000", "--no-progress", "--data-dir", args.data_dir,
              "--schedule", "cosine", "--lr", "0.1"]
    from robustbench_mix.data.base import load

    n_train = len(load(args.dataset, args.data_dir).train_y)
    rows = []
    for spec in args.configs.split(","):
        if time.time() - t_start > args.budget:
            print(f"budget spent: skipping {spec}", flush=True)
            continue
        executor, gpus, k, batch, *flags = spec.split(":")
        if executor == "ray" and ray is None:
            continue
        out = tmp / spec.replace(":", "_").replace(".", "")
        argv = [*common, "--epochs", str(args.epochs), "--batch-size", batch, "--seeds",
                ",".join(map(str, range(int(k)))), "--out", str(out), "--executor", executor]
        if executor == "ray":
            argv += ["--gpus-per-run", gpus]
        if "graphs" in flags:
            argv += ["--cuda-graphs"]
        t0, log = time.time(), str(tmp / f"{out.name}.log")
        if executor == "procs":  # K plain suite processes at once on one --out, each its own seed: no Ray
            argv[argv.index("--executor") + 1] = "local"
            seeds = argv.index("--seeds") + 1
            procs = [subprocess.Popen([sys.executable, __file__, "--child", log, "--", *argv[:seeds], str(i),
                                       *argv[seeds + 1:]]) for i in range(int(k))]
            rc = max(p.wait() for p in procs)
        else:
            rc = suite(argv, hooks=(clock(log),))
        row = {"config": spec, "executor": executor, "gpus_per_run": float(gpus), "runs": int(k),
               "batch_size": int(batch), "cuda_graphs": "graphs" in flags, "epochs": args.epochs, "rc": rc,
               "wall_s": round(time.time() - t0, 1),
               **aggregate(tmp / f"{out.name}.log", (n_train // int(batch)) * int(batch))}
        rows.append(row)
        print("RESULT", json.dumps(row), flush=True)
    grid = []
    if args.grid_epochs and time.time() - t_start < args.budget:
        for executor, extra in (("local", []), ("ray", ["--gpus-per-run", "0.25"]))[:2 if ray else 1]:
            argv = ["--preset", "table2-short", "--noise", "0.5", "--epochs", str(args.grid_epochs), "--dataset",
                    args.dataset, "--data-dir", args.data_dir, "--no-progress", "--out", str(tmp / f"t2_{executor}"),
                    "--executor", executor, *extra]
            t0 = time.time()
            rc = suite(argv)
            g = {"grid": f"table2-short --noise 0.5 --epochs {args.grid_epochs}", "executor": executor,
                 "gpus_per_run": 0.25 if extra else None, "rc": rc, "wall_s": round(time.time() - t0, 1)}
            grid.append(g)
            print("RESULT", json.dumps(g), flush=True)
    if ray is not None:
        ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    info = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
            "ray": ray_version, "dataset": args.dataset, "model": args.model, "n_train": n_train,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"ray_packing_{name}.json").write_text(json.dumps({**info, "throughput": rows, "grid": grid},
                                                                 indent=1))
    import pandas as pd

    pd.DataFrame(rows).to_csv(out_dir / f"ray_packing_{name}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
