"""Which model trains CIFAR-shaped images fastest on the CPU? Interleaved timing of one fp32 SGD step.

Times one training step (forward, loss, backward, update; batch 128, 3x32x32, 10 classes) of each model in
interleaved rounds (model A, B, C, then again), so load from other processes falls on every model alike, and
reports the median per model. Accuracy per minute needs accuracy too: experiments/README.md ("A model for the
CPU") puts these times beside the test accuracies of the committed CPU runs on CIFAR-10 (JPEG q75).

    OMP_NUM_THREADS=1 python experiments/cpu_speed/model_choice.py --models cnn,cifar_cnn,preact_resnet18
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from robustbench_mix.models.families import build
from robustbench_mix.store.write import atomic_write_csv


def make(model_name: str, batch: int):
    torch.manual_seed(0)
    model = build(model_name, in_shape=(3, 32, 32), num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step():
        model.train()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in model.parameters())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="cnn,cifar_cnn,preact_resnet18")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args()
    models = {m: make(m, a.batch) for m in a.models.split(",")}
    for step, _ in models.values():  # warm-up
        step()
    times = {m: [] for m in models}
    for _ in range(a.rounds):
        for m, (step, _) in models.items():
            t = time.perf_counter()
            step()
            times[m].append(time.perf_counter() - t)
    threads = torch.get_num_threads()
    rows = []
    for m, ts in times.items():
        med = statistics.median(ts)
        rows.append({"model": m, "params": models[m][1], "batch": a.batch, "threads": threads,
                     "step_ms": round(med * 1e3, 1), "train_img_s": round(a.batch / med),
                     "seconds_per_10k_images": round(10_000 / a.batch * med, 1), "rounds": a.rounds,
                     "torch": torch.__version__, "cpu": platform.machine(),
                     "load_avg_1min": round(os.getloadavg()[0], 2)})
        print(rows[-1])
    out = Path(__file__).with_name(f"model_choice_{threads}thread.csv")
    atomic_write_csv(pd.DataFrame(rows), out)  # the suite's writer: a killed benchmark leaves no half file
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
