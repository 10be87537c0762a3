"""The suite's ``autoattack`` against a direct call of the official AutoAttack, on the same model and images.

``python experiments/autoattack_parity/parity.py`` (one process; set OMP_NUM_THREADS=1 for the committed
figures) trains a small MLP (``--model cnn``: the suite's CNN) on the 8x8 digits, takes 100 test images and times, in
interleaved rounds (the order alternates, so drift on a shared machine falls on both), (a) the suite's attack as
its evaluation calls it, ``get_attack("autoattack")(model, x, y, eps)``, and (b) what a user of AutoAttack
writes, ``AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0).run_standard_evaluation(x, y,
batch_size=100)`` from pyautoattack (the maintained release of the official code; it imports as ``pyautoattack``). Both
return adversarial images; the robust accuracy of each is printed beside the times, and must be equal. The
target (issue 37): the suite within 1.1x of the direct call. Writes ``parity.csv`` and ``parity.md`` here.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from robustbench_mix.attacks.base import frozen_eval, get_attack
from robustbench_mix.data.prepare import prep, prepare
from robustbench_mix.data.sources import load_digits
from robustbench_mix.experiment.experiment import Experiment, RunOptions
from robustbench_mix.models.families import build
from robustbench_mix.training.train import fit

HERE = Path(__file__).resolve().parent
TARGET = 1.1


def trained_model(kind: str):
    """``mlp`` (the default: 64-64-10, so AutoAttack's own work, not the model's, is what is timed) or the suite's
    ``cnn``, trained on the digits' training split."""
    data = load_digits(None)
    p = prepare(data, 0.0, 0.0, 0, torch.device("cpu"))
    torch.manual_seed(0)
    mean, std = data.channel_stats()
    if kind == "cnn":
        exp = Experiment(dataset="digits", model="cnn", epochs=4, batch_size=50, lr=0.05, schedule="cosine")
        model = build("cnn", in_shape=data.shape, num_classes=10, mean=mean, std=std)
        fit(exp, p, model, options=RunOptions(progress=False))
        return model.eval(), p
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = prep(p.train_x), p.train_y
    for _ in range(30):  # full-batch epochs: a few seconds, about 95% clean accuracy
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), p


def suite(model, x, y, eps):
    return get_attack("autoattack")(model, x, y, eps)


def official(model, x, y, eps):
    from pyautoattack import AutoAttack

    adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0, device="cpu")
    adversary.verbose = False
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def robust_acc(model, x_adv, y) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    model, p = trained_model(args.model)
    x, y = prep(p.test_x[:args.images]), p.test_y[:args.images]
    calls = {"suite": suite, "official": official}
    rows = []
    with frozen_eval(model):
        clean = robust_acc(model, x, y)
        for call in calls.values():  # warm-up, untimed: first-call costs (imports, allocator) fall on neither
            call(model, x[:10], y[:10], args.eps)
        for r in range(args.rounds):
            for name in (("suite", "official") if r % 2 == 0 else ("official", "suite")):
                t0, c0 = time.perf_counter(), time.process_time()
                x_adv = calls[name](model, x, y, args.eps)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                rows.append({"round": r, "call": name, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                             "robust_acc": robust_acc(model, x_adv, y)})
                print(f"round {r} {name:8s} cpu {cpu:7.2f} s wall {wall:7.2f} s  robust accuracy "
                      f"{rows[-1]['robust_acc']:.2%}", flush=True)
    df = pd.DataFrame(rows)
    med = df.groupby("call")[["cpu_s", "wall_s"]].median()
    ratio = med.loc["suite", "cpu_s"] / med.loc["official", "cpu_s"]
    wall_ratio = med.loc["suite", "wall_s"] / med.loc["official", "wall_s"]
    per_round = df[df["call"] == "suite"]["cpu_s"].to_numpy() / df[df["call"] == "official"]["cpu_s"].to_numpy()
    same = df.groupby("call")["robust_acc"].agg(lambda v: ", ".join(f"{a:.2%}" for a in sorted(set(v))))
    machine = (f"{cpu_name()}, {os.cpu_count()} logical CPUs, "
               f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) "
               f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    verdict = "within" if ratio <= TARGET else "NOT within"
    text = "\n".join([
        f"# AutoAttack parity: suite vs official ({args.model} on {args.images} digits, eps {args.eps * 255:g}/255, "
        "CPU)", "",
        f"Machine: {machine}.", f"Clean accuracy of the model on these images: {clean:.2%}.", "",
        "| round | call | CPU s | wall s | robust accuracy |", "|---|---|---|---|---|",
        *(f"| {r.round} | {r.call} | {r.cpu_s:.2f} | {r.wall_s:.2f} | {r.robust_acc:.2%} |" for r in df.itertuples()),
        "",
        f"Median CPU seconds (the process's own, which other jobs on a shared machine do not inflate): suite "
        f"{med.loc['suite', 'cpu_s']:.2f}, official {med.loc['official', 'cpu_s']:.2f}; ratio {ratio:.3f} (per "
        f"round: {', '.join(f'{v:.3f}' for v in per_round)}): {verdict} the {TARGET}x target. Median wall "
        f"seconds: suite {med.loc['suite', 'wall_s']:.2f}, official {med.loc['official', 'wall_s']:.2f} (ratio "
        f"{wall_ratio:.3f}).",
        f"Robust accuracy: suite {same['suite']}, official {same['official']}"
        f" ({'equal' if same['suite'] == same['official'] else 'DIFFERENT'}).", ""])
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "parity.csv", index=False)
    (args.out / "parity.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
