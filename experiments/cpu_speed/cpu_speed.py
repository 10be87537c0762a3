"""Does bf16 autocast, channels_last or torch.compile make the suite's CPU training step faster?

Times one SGD step (forward, loss, backward, update; batch 128) and one evaluation forward (batch 1000) of a
model for each variant, in interleaved rounds (variant A, B, C, ... then again), so that load from other
processes falls on every variant alike; reports the median per variant and its ratio to fp32. Run it with the
thread count the runs use (OMP_NUM_THREADS). Writes a CSV beside itself.

    OMP_NUM_THREADS=1 python experiments/cpu_speed/cpu_speed.py --model cifar_cnn --shape 3,32,32 --rounds 15
"""

from __future__ import annotations

import argparse
import contextlib
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

VARIANTS = ("fp32", "bf16", "channels_last", "channels_last+bf16", "compile")


def make(variant: str, model_name: str, shape):
    torch.manual_seed(0)
    model = build(model_name, in_shape=shape, num_classes=10, mean=(0.5,) * shape[0], std=(0.25,) * shape[0])
    cl = variant.startswith("channels_last")
    if cl:
        model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if variant == "compile" else model
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if "bf16" in variant else contextlib.nullcontext
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(128, *shape)
    xe = torch.rand(1000, *shape)
    if cl:
        x, xe = x.contiguous(memory_format=torch.channels_last), xe.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))

    def step():
        model.train()
        with amp():
            loss = F.cross_entropy(fwd(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def evaluate():
        model.eval()
        with torch.no_grad(), amp():
            fwd(xe).float()

    return step, evaluate


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="cifar_cnn")
    p.add_argument("--shape", default="3,32,32")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=5, help="steps per round and variant")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--tag", default="", help="appended to the CSV's name (e.g. the machine), so runs on other CPUs "
                   "do not overwrite each other")
    a = p.parse_args()
    shape = tuple(int(s) for s in a.shape.split(","))
    variants = a.variants.split(",")
    fns = {v: make(v, a.model, shape) for v in variants}
    for step, evaluate in fns.values():  # warm-up (compilation)
        for _ in range(3):
            step()
        evaluate()
    times = {v: {"step": [], "eval": []} for v in variants}
    for _ in range(a.rounds):
        for v, (step, evaluate) in fns.items():
            t = time.perf_counter()
            for _ in range(a.steps):
                step()
            times[v]["step"].append((time.perf_counter() - t) / a.steps)
            t = time.perf_counter()
            evaluate()
            times[v]["eval"].append(time.perf_counter() - t)
    base = {k: statistics.median(times["fp32"][k]) for k in ("step", "eval")} if "fp32" in times else None
    threads = torch.get_num_threads()
    out = Path(__file__).with_name(f"cpu_speed_{a.model}_{threads}thread{'_' + a.tag if a.tag else ''}.csv")
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    # whether bf16 runs natively here: without these, autocast emulates bf16 and is slower than fp32
    bf16_isa = "+".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "none"
    rows = []
    for v in variants:
        s, e = statistics.median(times[v]["step"]), statistics.median(times[v]["eval"])
        row = {"model": a.model, "shape": a.shape, "variant": v, "threads": threads, "step_ms": round(1e3 * s, 1),
               "train_img_s": round(128 / s), "eval_img_s": round(1000 / e),
               "step_vs_fp32": round(base["step"] / s, 2) if base else "", "eval_vs_fp32": round(base["eval"] / e, 2)
               if base else "", "rounds": a.rounds, "torch": torch.__version__, "cpu": platform.processor() or
               platform.machine(), "load_avg_1min": round(os.getloadavg()[0], 2), "bf16_isa": bf16_isa}
        rows.append(row)
        print(row)
    atomic_write_csv(pd.DataFrame(rows), out)  # the suite's writer: a killed benchmark leaves no half file
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
