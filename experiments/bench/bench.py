"""``python -m robustbench_mix.bench``: the suite's trainer and attack evaluation against the common recipe.

In one process, on the same model, batch size and device, it times (after warm-up, synchronizing the
device) the common training loop (torchvision DataLoader with per-image CPU transforms, fp32, a
``loss.item()`` per step) and the suite's own trainer (:func:`robustbench_mix.train.fit`: uint8 data and
augmentation on the device, bf16 autocast and channels_last on CUDA); and torchattacks' PGD as users call
it against the suite's attack evaluation. It prints images/s, the ratios and the fraction of the device's
peak (FLOPs counted with torch's FlopCounterMode, peak measured with a large matrix product), and writes
JSON and CSV under ``experiments/bench/``. The images are random uint8 CIFAR-shaped tensors: speed does not
depend on their content, and no download is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from robustbench_mix.attacks.base import attack_norm
from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.device import autocast_for, device_name, resolve_device
from robustbench_mix.core.device import channels_last as suite_layout
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.parsing import split_list
from robustbench_mix.data.augment import AUGMENTATIONS
from robustbench_mix.data.prepare import Prepared, augment_for, prep
from robustbench_mix.evaluation.evaluators import attack_correct
from robustbench_mix.experiment.experiment import PRECISIONS, Experiment, RunOptions
from robustbench_mix.experiment.grids import parse_method
from robustbench_mix.methods import METHODS
from robustbench_mix.models.families import build
from robustbench_mix.store.schema import git_rev, now
from robustbench_mix.store.write import atomic_write_csv
from robustbench_mix.training.train import fit


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_flops(device: torch.device) -> float:
    """Measured matmul FLOP/s: bf16 8192^3 on CUDA, fp32 2048^3 on the CPU."""
    n, dtype, reps = (8192, torch.bfloat16, 20) if device.type == "cuda" else (2048, torch.float32, 4)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def train_flops_per_image(model, shape, device) -> float:
    """Training FLOPs per image (forward and backward, as counted by FlopCounterMode on one batch)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(8, *shape, device=device)
    with FlopCounterMode(display=False) as fc:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / 8


def bench_model(model_name, shape, classes, device, *, seed: int = 0, channels_last: bool = False):
    """A freshly initialized model for the timings (normalization constants need no real data)."""
    torch.manual_seed(seed)
    model = build(model_name, in_shape=shape, num_classes=classes, mean=(0.5,) * shape[0],
                  std=(0.25,) * shape[0]).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def synthetic(n: int, shape, classes: int, device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    return x.to(device), torch.randint(0, classes, (n,), generator=g).to(device)


def common_recipe(model_name, shape, classes, batch, steps, warmup, device, workers) -> float:
    """The loop most scripts use: per-image PIL transforms in DataLoader workers, fp32, .item() per step."""
    import torchvision.transforms as T
    from PIL import Image

    x, y = synthetic(batch * (steps + warmup), shape, classes, "cpu")
    hwc = x.permute(0, 2, 3, 1).numpy()

    class Images(torch.utils.data.Dataset):
        tf = T.Compose([T.RandomCrop(shape[-1], padding=4), T.RandomHorizontalFlip(), T.ToTensor()])

        def __len__(self):
            return len(hwc)

        def __getitem__(self, i):
            return self.tf(Image.fromarray(hwc[i].squeeze(-1) if shape[0] == 1 else hwc[i])), int(y[i])

    loader = torch.utils.data.DataLoader(Images(), batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    model = bench_model(model_name, shape, classes, device).train()  # fp32, contiguous: as scripts do
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    t0 = None
    for i, (xb, yb) in enumerate(loader):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    sync(device)
    return batch * steps / (time.perf_counter() - t0)


def suite_trainer(model_name, shape, classes, batch, steps, device, method, compile=False,
                  cuda_graphs=False) -> float:
    """The suite's real trainer in steady state: ``fit`` trains two epochs of ``steps`` batches and the
    second is timed (from one synchronized epoch end to the next). The first is the warm-up, with what a
    run does once: cuDNN autotuning, torch.compile's compilation, the CUDA graphs' capture. Each epoch's
    own work (its permutation, the loss read back) is in the timed one."""
    x, y = synthetic(batch * steps, shape, classes, device)
    empty = x[:0]
    data = Prepared(train_x=x, train_y=y, train_true_y=y, corrupted=torch.zeros_like(y, dtype=torch.bool),
                    val_x=empty, val_y=y[:0], test_x=x[:batch], test_y=y[:batch], num_classes=classes,
                    augment=augment_for(shape), corrupted_index=np.arange(0))
    name, value, options = parse_method(method)  # any --methods item: 'pgd_at:steps=5', 'trades:6'
    m = METHODS.get(name)
    alpha = (m.default if value is None else value) if m.uses_alpha else 0.0
    exp = Experiment(model=model_name, method=name, alpha=alpha, method_options=options, epochs=2,
                     batch_size=batch, lr=0.01, schedule="constant", attacks=())
    model = bench_model(model_name, shape, classes, device, channels_last=suite_layout(device))
    ends: list[float] = []

    def epoch_end(epoch, model):
        sync(device)
        ends.append(time.perf_counter())

    fit(exp, data, model, options=RunOptions(progress=False, compile=compile, cuda_graphs=cuda_graphs),
        hooks=(epoch_end,))
    return batch * steps / (ends[1] - ends[0])


class Stacked:
    """K copies of one model trained at once: parameters stacked along a new first dimension and the
    forward vmapped over them (torch.func), so each kernel launch serves K runs. A prototype for the
    small-batch question (several seeds at once), ERM only; not the suite's trainer."""

    def __init__(self, models: list[torch.nn.Module], lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 5e-4):
        import copy

        params, self.buffers = torch.func.stack_module_state(models)
        self.params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        self.base = copy.deepcopy(models[0]).to("meta")  # the structure; its weights are never used
        fused = next(iter(self.params.values())).is_cuda
        self.opt = torch.optim.SGD(self.params.values(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                                   fused=fused or None)

        def loss(p, b, x, y):
            return torch.nn.functional.cross_entropy(torch.func.functional_call(self.base, (p, b), (x,)), y)

        self.losses = torch.func.vmap(loss)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SGD step of every copy; ``x`` is (K, B, C, H, W) float, ``y`` (K, B). Returns the K losses."""
        with autocast_for(x.device):
            losses = self.losses(self.params, self.buffers, x, y)
        self.opt.zero_grad(set_to_none=True)
        losses.float().sum().backward()  # the copies share no parameter: each gets its own gradient
        self.opt.step()
        return losses.detach()


def stacked_trainer(model_name, shape, classes, batch, steps, warmup, device, k) -> float:
    """Images/s summed over K runs trained at once by :class:`Stacked`, with the suite's on-device data and
    augmentation (each copy draws its own batch)."""
    st = Stacked([bench_model(model_name, shape, classes, device, seed=seed) for seed in range(k)])
    x_all, y_all = synthetic(batch * k * 4, shape, classes, device)
    augment = AUGMENTATIONS[augment_for(shape)]
    gen = torch.Generator(device=device).manual_seed(0)

    def run(n):
        for _ in range(n):
            idx = torch.randint(0, len(y_all), (k * batch,), device=device, generator=gen)
            x = prep(augment(x_all[idx], gen)).contiguous().view(k, batch, *shape)
            st.step(x, y_all[idx].view(k, batch))

    run(warmup)
    sync(device)
    t = time.perf_counter()
    run(steps)
    sync(device)
    return k * batch * steps / (time.perf_counter() - t)


def attacks(model_name, shape, classes, batch, device, steps, compile_mode, errors: dict) -> dict[str, float]:
    """PGD-`steps` images/s: torchattacks as users call it (fp32) vs the suite's evaluation (fp32, the
    default, and bf16; with a ``compile_mode`` also through torch.compile)."""
    model = bench_model(model_name, shape, classes, device, channels_last=suite_layout(device)).eval()
    x, y = synthetic(batch, shape, classes, device)
    out = {}

    def timed(fn):
        fn()  # warm-up
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        return batch / (time.perf_counter() - t)

    def suite_pgd(m, prec):
        return timed(lambda: attack_correct(m, m, x, y, "pgd", 8.0, steps=steps, step_size=2.0, restarts=1,
                                            batch_size=batch, seed=0, precision=prec))

    for prec in PRECISIONS:
        out[f"suite_pgd_{prec}_img_s"] = suite_pgd(model, prec)
    if compile_mode:  # the same evaluation through torch.compile (compilation happens in the warm-up call)
        cm = torch.compile(model, mode=compile_mode, dynamic=False)
        for prec in PRECISIONS:
            key = f"suite_pgd_compiled_{prec}_img_s"
            out[key] = measured(errors, key, lambda prec=prec: suite_pgd(cm, prec))
    try:
        import torchattacks

        atk = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=steps, random_start=True)
        xf = x.float() / 255

        def users_call():  # what a script does to get robust accuracy: attack, then predict
            adv = atk(xf, y)
            with torch.no_grad():
                return (model(adv).argmax(1) == y).float().mean()

        out["torchattacks_pgd_img_s"] = timed(users_call)
    except ImportError:
        out["torchattacks_pgd_img_s"] = float("nan")
    return out


CUDA_ONLY_PARTS = {"graphs", "graphs_step", "compile_step"}  # CUDA graphs; skipped on other devices


def measured(errors: dict, key: str, fn) -> float:
    """Run one measurement; a failure (say, a GPU feature this torch lacks) is recorded, not fatal."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - every other figure is still worth having
        errors[key] = f"{e.__class__.__name__}: {e}"
        print(f"  {key} failed: {errors[key]}", file=sys.stderr)
        return float("nan")


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def precision_check(results: Path, data_dir: str, device: torch.device, samples: int, batch: int,
                    tolerance: float) -> pd.DataFrame:
    """Robust accuracy of every finished (non-surrogate) run in ``results`` under its own attacks and
    epsilons, crafted and evaluated in fp32 and in bf16 autocast from the same random start."""
    from robustbench_mix.data.base import load
    from robustbench_mix.data.prepare import prepare
    from robustbench_mix.execution.runner import load_trained
    from robustbench_mix.experiment.grids import SURROGATE_SUFFIX
    from robustbench_mix.store.load import load_runs

    df = load_runs(results / "runs.csv")
    rows, cache = [], {}
    for rid, g in df.groupby("run_id", sort=False):
        exp = replace(Experiment.from_json(g["config"].iloc[0]), device=str(device))
        if exp.preset.endswith(SURROGATE_SUFFIX):
            continue
        data = cache.setdefault(exp.dataset, load(exp.dataset, data_dir))
        prep_ = prepare(data, exp.noise, exp.val_fraction, exp.seed, device, exp.train_samples)
        model = load_trained(exp, data, results / "runs" / rid)
        n = samples or len(prep_.test_y)
        x, y = prep_.test_x[:n], prep_.test_y[:n]
        for attack in [a for a in exp.attacks if attack_norm(a) == "Linf"]:  # the records are in /255 units
            for e in exp.eps:
                rec = {"run_id": rid, "method": exp.method, "alpha": exp.alpha, "attack": attack, "eps_255": e,
                       "samples": n}
                for prec in PRECISIONS:
                    sync(device)
                    t = time.perf_counter()
                    res = attack_correct(model, model, x, y, attack, e, steps=exp.attack_steps,
                                         step_size=exp.attack_step_size, restarts=1, batch_size=batch,
                                         seed=exp.seed, precision=prec)
                    rec[f"acc_{prec}"] = res["top1"].float().mean().item()
                    rec[f"{prec}_img_s"] = n / (time.perf_counter() - t)
                rec["diff_points"] = round(100 * (rec["acc_bf16"] - rec["acc_fp32"]), 6)  # 1 image of 100 is 1.0
                rec["within_tolerance"] = abs(rec["diff_points"]) <= tolerance
                rows.append(rec)
                print(f"  {rid} {exp.method:6s} {attack:6s} eps {e:g}/255: fp32 {100 * rec['acc_fp32']:.2f}%  "
                      f"bf16 {100 * rec['acc_bf16']:.2f}%  ({rec['diff_points']:+.2f} points; "
                      f"{rec['fp32_img_s']:,.0f} vs {rec['bf16_img_s']:,.0f} img/s)")
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default=None, help="default: preact_resnet18 on CUDA, cnn on the CPU")
    p.add_argument("--batch-size", type=int, nargs="+", default=None, help="default: 512 128 on CUDA, 64 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 100 on CUDA, 5 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first, of the recipe and the stacked "
                   "prototype (default 10 on CUDA, 2 on CPU); the suite's trainer warms up with a whole epoch")
    p.add_argument("--attack-batch", type=int, default=None, help="default 1000 on CUDA, 100 on CPU")
    p.add_argument("--attack-steps", type=int, default=10)
    p.add_argument("--workers", type=int, default=None,
                   help="the recipe's DataLoader workers (default 8 on CUDA, enough to keep the GPU busy; 4 on CPU)")
    p.add_argument("--method", default="erm", help="the suite trainer's method, as a --methods item (erm, mixup:1, "
                   "pgd_at:steps=5, ...): what an epoch of adversarial training costs against ERM")
    p.add_argument("--compile", action="store_true", help="also time the suite's trainer under torch.compile")
    p.add_argument("--compile-mode", default="default",
                   choices=("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"),
                   help="torch.compile's mode for the compile parts (reduce-overhead adds CUDA graphs)")
    p.add_argument("--parts", default="recipe,suite,graphs,graphs_step,attacks",
                   help="what to time, of recipe, suite, graphs and graphs_step (CUDA only: --cuda-graphs model "
                        "and step), compile, compile_step (CUDA only: compiled, in the step graph), stacked, "
                        "attacks, attacks_compiled (default: recipe,suite,graphs,graphs_step,attacks; --compile "
                        "adds compile and attacks_compiled)")
    p.add_argument("--tag", default="", help="appended to the output file names")
    p.add_argument("--stack", type=int, default=4, help="runs trained at once by the part 'stacked' (default 4)")
    p.add_argument("--precision-check", metavar="RESULTS_DIR",
                   help="instead of timing: compare fp32 and bf16 attacks on the finished runs in RESULTS_DIR")
    p.add_argument("--data-dir", default=os.environ.get("ROBUSTBENCH_MIX_DATA", "data"),
                   help="data cache for --precision-check")
    p.add_argument("--samples", type=int, default=0, help="--precision-check: attack the first N test images "
                   "(default all)")
    p.add_argument("--tolerance", type=float, default=1.0, help="--precision-check: largest acceptable "
                   "|bf16 - fp32| robust accuracy, in points (default 1)")
    p.add_argument("--out", default="experiments/bench")
    args = p.parse_args(argv)
    allowed = ("recipe", "suite", "graphs", "graphs_step", "compile", "compile_step", "stacked", "attacks",
               "attacks_compiled")
    parts = set(split_list(args.parts, "--parts")) | ({"compile", "attacks_compiled"} if args.compile else set())
    bad = parts - set(allowed)
    if bad:
        p.error(f"--parts: unknown {', '.join(sorted(bad))} (allowed: {', '.join(allowed)})")
    try:
        parse_method(args.method)
    except UsageError as e:
        p.error(f"--method: {e}")
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem_dev = slug(device_name(device)) if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
    if args.precision_check:
        return precision_main(args, device, out, stem_dev)
    return timing_main(args, parts, device, out, stem_dev)


def precision_main(args, device: torch.device, out: Path, stem_dev: str) -> int:
    df = precision_check(Path(args.precision_check), args.data_dir, device, args.samples,
                         args.attack_batch or (1000 if device.type == "cuda" else 100), args.tolerance)
    df.insert(0, "device", device_name(device))
    df["torch"], df["tolerance_points"], df["created_at"] = torch.__version__, args.tolerance, now()
    atomic_write_csv(df, out / f"attack_precision_{stem_dev}.csv")
    bad = df[~df["within_tolerance"]] if len(df) else df
    print(f"bf16 vs fp32 attacks: {len(df)} comparisons, largest |difference| "
          f"{df['diff_points'].abs().max() if len(df) else float('nan'):.2f} points, {len(bad)} over the "
          f"{args.tolerance:g}-point tolerance; wrote {out}/attack_precision_{stem_dev}.csv")
    return 0


def timing_main(args, parts: set[str], device: torch.device, out: Path, stem_dev: str) -> int:
    cuda = device.type == "cuda"
    model = args.model or ("preact_resnet18" if cuda else "cnn")
    batches = args.batch_size or ([512, 128] if cuda else [64])
    steps = args.steps or (100 if cuda else 5)
    warmup = args.warmup or (10 if cuda else 2)
    workers = args.workers if args.workers is not None else min(8 if cuda else 4, os.cpu_count() or 1)
    shape, classes = (3, 32, 32), 10
    peak = peak_flops(device)
    fpi = train_flops_per_image(bench_model(model, shape, classes, device), shape, device)
    errors: dict[str, str] = {}
    rows = []
    variants = {key: kw for part, key, kw in (("suite", "suite_img_s", {}),
                                              ("graphs", "suite_graphs_img_s", {"cuda_graphs": "model"}),
                                              ("graphs_step", "suite_graphs_step_img_s", {"cuda_graphs": "step"}),
                                              ("compile", "suite_compiled_img_s", {"compile": args.compile_mode}),
                                              ("compile_step", "suite_compiled_step_img_s",
                                               {"compile": args.compile_mode, "cuda_graphs": "step"}))
                if part in parts and (cuda or part not in CUDA_ONLY_PARTS)}
    for b in batches if parts & {"recipe", "stacked"} or variants else []:
        rec = {"batch_size": b, "recipe_img_s": measured(
            errors, f"recipe@{b}", lambda b=b: common_recipe(model, shape, classes, b, steps, warmup, device, workers))
            if "recipe" in parts else float("nan")}
        for key, kw in variants.items():
            rec[key] = measured(errors, f"{key}@{b}", lambda kw=kw, b=b: suite_trainer(
                model, shape, classes, b, steps, device, args.method, **kw))
        if "stacked" in parts:  # images/s summed over the --stack runs
            rec["stacked_img_s"] = measured(errors, f"stacked@{b}", lambda b=b: stacked_trainer(
                model, shape, classes, b, steps, warmup, device, args.stack))
        best = max((v for k, v in rec.items() if k.startswith("suite") and v == v), default=float("nan"))
        rec.update(suite_best_img_s=best, speedup=best / rec["recipe_img_s"],
                   suite_fraction_of_peak=best * fpi / peak)
        rows.append(rec)
        timed = [f"{k[:-6]} {v:,.0f}" for k, v in rec.items() if k.endswith("_img_s") and "best" not in k]
        print(f"  batch {b}: " + ", ".join(timed) + f" img/s -> {rec['speedup']:.2f}x the recipe", flush=True)
    attack_batch = args.attack_batch or (1000 if cuda else 100)
    atk = attacks(model, shape, classes, attack_batch, device, args.attack_steps,
                  args.compile_mode if "attacks_compiled" in parts else None,
                  errors) if parts & {"attacks", "attacks_compiled"} else {}
    info = {"device": device_name(device), "torch": torch.__version__, "model": model, "method": args.method,
            "steps": steps, "warmup": warmup, "workers": workers, "train_gflops_per_image": fpi / 1e9,
            "peak_tflops_measured": peak / 1e12, "peak_dtype": "bf16" if cuda else "fp32", "git_rev": git_rev(),
            "created_at": now(), "python": platform.python_version(), "training": rows,
            **({"stack": args.stack} if "stacked" in parts else {}),
            **({"compile_mode": args.compile_mode} if parts & {"compile", "attacks_compiled"} else {}),
            "attack_batch": attack_batch, "attack_steps": args.attack_steps, **atk, "errors": errors}
    stem = f"bench_{stem_dev}_{model}{'_' + args.tag if args.tag else ''}"
    atomic_write_text(out / f"{stem}.json", json.dumps(info, indent=2) + "\n")
    flat = {k: v for k, v in info.items() if k not in ("training", "errors")}
    atomic_write_csv(pd.DataFrame([{**flat, **r} for r in rows]), out / f"{stem}.csv")
    print(f"{info['device']}, torch {info['torch']}, {model}: {fpi / 1e9:.3f} GFLOP per training image; "
          f"measured peak {peak / 1e12:.2f} TFLOP/s ({info['peak_dtype']})")
    for r in rows:
        print(f"  batch {r['batch_size']}: recipe {r['recipe_img_s']:,.0f} img/s, suite best "
              f"{r['suite_best_img_s']:,.0f} img/s -> {r['speedup']:.2f}x, {100 * r['suite_fraction_of_peak']:.1f}% "
              "of peak" + (f"; {args.stack} runs stacked: {r['stacked_img_s']:,.0f} img/s in all"
                           if "stacked_img_s" in r else ""))
    if atk:
        print(f"  PGD-{args.attack_steps} at batch {attack_batch}: suite {atk['suite_pgd_fp32_img_s']:,.0f} img/s "
              f"(fp32), {atk['suite_pgd_bf16_img_s']:,.0f} (bf16); torchattacks {atk['torchattacks_pgd_img_s']:,.0f}"
              + (f"; compiled {atk['suite_pgd_compiled_fp32_img_s']:,.0f} (fp32), "
                 f"{atk['suite_pgd_compiled_bf16_img_s']:,.0f} (bf16)" if "suite_pgd_compiled_fp32_img_s" in atk
                 else ""))
    print(f"wrote {out / stem}.json and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
