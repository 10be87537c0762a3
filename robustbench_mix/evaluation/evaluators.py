"""Evaluators: clean metrics, calibration, adversarial accuracy and memorization, returned as tidy rows.

A row here is ``{"split", "attack", "eps", "metric", "value", "n_eval", "eval_subset"}``: ``eps`` a fraction
of the pixel range (L-infinity attacks) or the L2 radius in [0, 1] pixel space (L2 attacks), ``n_eval`` the
number of images the value is over and ``eval_subset`` which ones (``all`` of the split, or ``stratified:<sha>``,
the attacked subset of :func:`data.attack_subset`); :mod:`results` adds the config and provenance. Metrics stay
on the device until one ``.tolist()`` per evaluation.
"""

from __future__ import annotations

import math
import time

import torch

from robustbench_mix.attacks.base import NORM_TRAITS, WORST, default_step_size, frozen_eval, get_attack, input_grad
from robustbench_mix.core.device import autocast_for
from robustbench_mix.core.errors import RunFailed
from robustbench_mix.core.units import LEVELS, Norm, fraction, row_eps
from robustbench_mix.data.prepare import Prepared, attack_subset, prep, subset_sha
from robustbench_mix.evaluation.checks import check_rows
from robustbench_mix.evaluation.metrics import CHECK_PREFIX, TOP5_MIN_CLASSES, clean_metrics, memorization_metrics
from robustbench_mix.evaluation.progress import Progress, as_progress, attack_label, seconds


@torch.no_grad()
def predict(model, x: torch.Tensor, batch_size: int, precision: str | None = None) -> torch.Tensor:
    """float32 logits for uint8 images, in large batches, in eval mode (bf16 autocast on CUDA unless
    ``precision`` says otherwise)."""
    with frozen_eval(model):
        outs = []
        for i in range(0, len(x), batch_size):
            with autocast_for(x.device, precision):
                outs.append(model(prep(x[i:i + batch_size])).float())
    return torch.cat(outs) if outs else torch.zeros(0)


ALL = "all"  # eval_subset of a value over the whole split


def row(split, metric, value, attack="none", eps=0.0, n: int | None = None, subset: str = ALL) -> dict:
    return {"split": split, "attack": attack, "eps": eps, "metric": metric, "value": value, "n_eval": n,
            "eval_subset": subset}


def finish(rows: list[dict]) -> list[dict]:
    """One host sync for all device scalars. A non-finite value fails the run: no results file holds one."""
    vals = torch.stack([r["value"].float().cpu() if torch.is_tensor(r["value"]) else torch.tensor(float(r["value"]))
                        for r in rows]).tolist() if rows else []
    for r, v in zip(rows, vals, strict=True):
        if not math.isfinite(v):
            raise RunFailed(f"evaluation gave a non-finite {r['split']} {r['attack']} {r['metric']} ({v})")
        r["value"] = v
    return rows


def curve_rows(model, data: Prepared, batch_size: int) -> list[dict]:
    """The cheap per-epoch evaluation: clean test metrics, validation accuracy, memorization."""
    rows = [row("test", k, v, n=len(data.test_y)) for k, v in clean_metrics(predict(model, data.test_x, batch_size),
                                                                           data.test_y).items()]
    if len(data.val_y):
        rows += [row("val", k, v, n=len(data.val_y)) for k, v in clean_metrics(predict(model, data.val_x, batch_size),
                                                                              data.val_y).items()]
    if data.corrupted.any():
        logits = predict(model, data.train_x, batch_size)
        n_bad = int(data.corrupted.sum())
        sizes = {"train": len(data.train_y), "train_clean": len(data.train_y) - n_bad, "train_corrupted": n_bad}
        rows += [row(s, m, v, n=sizes[s]) for s, m, v in
                 memorization_metrics(logits, data.train_y, data.train_true_y, data.corrupted)]
    return rows


def attacked_images(data: Prepared, exp) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The test images the attacks run on: all of them, or ``exp.attack_samples`` of them drawn class-stratified
    (the same for every run on this test set), with their ``eval_subset`` label."""
    idx = attack_subset(data.test_y.cpu().numpy(), exp.attack_samples)
    if len(idx) == len(data.test_y):
        return data.test_x, data.test_y, ALL
    t = torch.as_tensor(idx, device=data.test_y.device)
    return data.test_x[t], data.test_y[t], f"stratified:{subset_sha(idx)}"


def attack_eps(exp, attack: str) -> tuple[float, ...]:
    """The epsilon grid of ``attack``'s norm: ``exp.eps`` (/255 units) for L-infinity, ``exp.eps_l2`` (L2 radii)."""
    return getattr(exp, NORM_TRAITS[get_attack(attack).norm].grid)


def attack_correct(target, crafter, x_u8, y, attack: str, e: float, *, steps: int,
                   step_size: float | None, restarts: int, batch_size: int, seed: int,
                   precision: str = "fp32", on_first_batch=None) -> dict[str, torch.Tensor]:
    """Per-example correctness of ``target`` on adversarial examples crafted on ``crafter`` (the target
    itself for white-box, a surrogate for black-box), plus the largest perturbation and box violation.

    ``e`` is in the unit of the attack's norm: /255 for L-infinity, the L2 radius for L2. ``step_size`` (/255)
    applies to L-infinity attacks; L2 attacks take the default 2.5 * eps / steps. With ``restarts`` > 1
    (random-start attacks, white-box only) an example is robust only if it survives every restart; ``first`` is
    the correctness after the loop's first restart (the positive control compares the restarts with a separate
    one-restart call instead, which the loop's own first restart could never catch out).
    ``precision='bf16'`` runs crafting and evaluation under bf16 autocast (the adversarial examples themselves
    stay fp32 in [0, 1]). ``on_first_batch(seconds)`` is called once the first batch is done (the device
    synchronized first, so the time is the batch's, not its launch's): the progress estimate.
    """
    fn = get_attack(attack)
    l2 = fn.norm == Norm.L2
    eps = e if l2 else fraction(e)
    ss = fraction(step_size) if step_size and not l2 else default_step_size(eps, steps)
    if not fn.random_start or crafter is not target:
        restarts = 1  # a transfer attack must not pick its restart by looking at the target
    amp = autocast_for(y.device, precision)
    top1 = torch.ones(len(y), dtype=torch.bool, device=y.device)
    top5 = top1.clone()
    first = top1
    linf = torch.zeros((), device=y.device)
    l2max = torch.zeros((), device=y.device)
    box = torch.zeros((), device=y.device)
    t0 = time.perf_counter()
    with frozen_eval(target), frozen_eval(crafter):
        for r in range(restarts):
            torch.manual_seed(seed + 1000 * r)  # the random start is reproducible per (run, attack, eps)
            for i in range(0, len(x_u8), batch_size):
                x = prep(x_u8[i:i + batch_size])
                yb = y[i:i + batch_size]
                with amp:
                    x_adv = fn(crafter, x, yb, eps, steps=steps, step_size=ss).float()
                linf = torch.maximum(linf, (x_adv - x).abs().amax())
                l2max = torch.maximum(l2max, (x_adv - x).flatten(1).norm(p=2, dim=1).amax())
                box = torch.maximum(box, torch.maximum(-x_adv.amin(), x_adv.amax() - 1.0).clamp_min(0))
                with torch.no_grad(), amp:
                    logits = target(x_adv).float()
                top1[i:i + batch_size] &= logits.argmax(1) == yb
                k = min(5, logits.shape[1])
                top5[i:i + batch_size] &= (logits.topk(k, 1).indices == yb[:, None]).any(1)
                if on_first_batch is not None and r == 0 and i == 0:
                    if y.device.type == "cuda":
                        torch.cuda.synchronize(y.device)
                    on_first_batch(time.perf_counter() - t0)
            if r == 0:
                first = top1.clone()
    return {"top1": top1, "top5": top5, "first": first, "linf": linf * LEVELS, "l2": l2max, "box": box}


def _acc_rows(res: dict, attack: str, e: float, num_classes: int, subset: str) -> list[dict]:
    eps, n = row_eps(get_attack(attack.removeprefix("bb:")).norm, e), len(res["top1"])
    rows = [row("test", "acc", res["top1"].float().mean(), attack, eps, n, subset)]
    if num_classes >= TOP5_MIN_CLASSES:
        rows.append(row("test", "top5_acc", res["top5"].float().mean(), attack, eps, n, subset))
    return rows


def gradient_step_seconds(model, x_u8, y, precision: str) -> float:
    """Seconds of one forward-backward pass over the images (one batch): the unit of a one-batch attack's estimate.
    The model is frozen in eval mode, as under attack, so the probe changes neither it nor any random state."""
    x = prep(x_u8)
    with frozen_eval(model), autocast_for(y.device, precision):
        input_grad(model, x, y, "ce")  # the first call pays one-off costs (allocations, kernel choice)
        if y.device.type == "cuda":
            torch.cuda.synchronize(y.device)
        t0 = time.perf_counter()
        input_grad(model, x, y, "ce")
        if y.device.type == "cuda":
            torch.cuda.synchronize(y.device)
    return time.perf_counter() - t0


def input_grad_abs_mean(model, x_u8, y, batch_size: int) -> torch.Tensor:
    """Mean |d CE / d x| on the first batch: zero or non-finite means masked or broken gradients."""
    x = prep(x_u8[:batch_size])
    with frozen_eval(model):
        g = input_grad(model, x, y[:batch_size], "ce")
    return g.abs().mean()


def robustness_rows(model, data: Prepared, exp, batch_size: int, surrogate=None,
                    progress: bool | Progress = True) -> list[dict]:
    """White-box accuracy under every attack at epsilon 0 (a check), each epsilon of its norm's grid and, for the
    L-infinity random-start attacks, ``check_eps``; black-box (``bb:<attack>``) accuracy from ``surrogate``; the
    per-example worst case over the white-box attacks of each norm (``worst`` for L-infinity, ``worst_l2``), where
    a norm has several; the input-gradient size; then the sanity checks as ``check`` rows. ``progress``: bars,
    and with ``Progress(log=True)`` a line per attack (see progress.py)."""
    prog = as_progress(progress)
    x, y, subset = attacked_images(data, exp)
    n = len(y)
    nc = data.num_classes
    kw = dict(steps=exp.attack_steps, step_size=exp.attack_step_size, batch_size=batch_size, seed=exp.evaluation_seed,
              precision=exp.attack_precision)
    # at the attacks' precision: on CUDA clean evaluation runs in bf16, which flips a few predictions
    # against fp32 and would fail the exact eps-0 check for no fault of the attack
    clean = predict(model, x, batch_size, precision=exp.attack_precision)
    rows = [row("test", "acc_attacked_subset", (clean.argmax(1) == y).float().mean(), n=n, subset=subset)]
    by_norm = {norm: [a for a in exp.attacks if get_attack(a).norm == norm] for norm in WORST.values()}
    grids = {norm: getattr(exp, t.grid) for norm, t in NORM_TRAITS.items()}
    worst = {norm: {e: torch.ones(n, dtype=torch.bool, device=y.device) for e in grids[norm]} for norm in grids}
    jobs = []  # (attack, eps, crafter): white-box at 0, each eps and the check eps; black-box at each eps
    for a in exp.attacks:
        fn = get_attack(a)
        extra = {exp.check_eps} if exp.check_eps and fn.random_start and fn.norm == Norm.LINF else set()
        jobs += [(a, e, model) for e in sorted({0.0, *attack_eps(exp, a)} | extra)]
        jobs += [(a, e, surrogate) for e in attack_eps(exp, a)] if surrogate is not None else []
    batches = -(-n // batch_size)
    steps_took = {}  # id(crafter) -> seconds of one gradient step over the batch: one-batch jobs' estimate
    prog.say(f"attacks: {len(jobs)} (attack, epsilon) pairs on {n} images ({subset}), {batches} batch(es) each")
    for j, (a, e, crafter) in enumerate(prog.bar(jobs, desc="attacks", unit="attack"), 1):
        fn = get_attack(a)
        restarts = exp.attack_restarts if fn.random_start and crafter is model else 1
        work = batches * (restarts + 1 if restarts > 1 else 1)  # with restarts, the one-restart call below too
        label = attack_label(a if crafter is model else f"bb:{a}", fn.norm, e)
        step = None
        if batches == 1 and prog.estimating:
            if id(crafter) not in steps_took:
                steps_took[id(crafter)] = gradient_step_seconds(crafter, x, y, exp.attack_precision)
            step = (steps_took[id(crafter)], fn.gradient_steps(exp.attack_steps) * work)
        first_batch, done = prog.attack(j, len(jobs), label + (f" x {restarts} restarts" if restarts > 1 else ""),
                                        n, work, step)
        # attack_correct itself limits a transfer attack to one restart
        res = attack_correct(model, crafter, x, y, a, e, restarts=exp.attack_restarts, on_first_batch=first_batch,
                             **kw)
        if crafter is not model:
            rows += _acc_rows(res, f"bb:{a}", e, nc, subset)
            done()
            continue
        ef = row_eps(fn.norm, e)
        rows += _acc_rows(res, a, e, nc, subset)
        if exp.attack_restarts > 1 and fn.random_start:  # the attack once, evaluated on its own (as a run with
            # one restart is): what the positive control holds the restarts to. The restart loop's own first
            # restart ("first") equals it on a deterministic device, and could never be beaten by the loop.
            once = attack_correct(model, crafter, x, y, a, e, restarts=1, **kw)
            rows.append(row("test", "acc_first_restart", once["top1"].float().mean(), a, ef, n, subset))
        if fn.norm == Norm.L2:
            rows.append(row("test", "max_l2", res["l2"], a, ef, n, subset))
        else:
            rows.append(row("test", "max_linf_255", res["linf"], a, ef, n, subset))
        rows.append(row("test", "box_violation", res["box"], a, ef, n, subset))
        if e in worst[fn.norm]:
            worst[fn.norm][e] &= res["top1"]
        done()
    for name, norm in WORST.items():
        if len(by_norm[norm]) > 1:
            for e, ok in worst[norm].items():
                rows.append(row("test", "acc", ok.float().mean(), name, row_eps(norm, e), n, subset))
    rows.append(row("test", "input_grad_abs_mean", input_grad_abs_mean(model, x, y, batch_size),
                    n=min(n, batch_size), subset=subset))
    return rows


def corruption_rows(model, x_u8, y, names, batch_size: int, seed: int = 0, prefix: str = "corrupt",
                    stored: dict | None = None, progress: bool | Progress = False) -> list[dict]:
    """Accuracy under each common corruption at severities 1-5, as ``<prefix>:<name>:<severity>`` rows; the mean
    over the 15 benchmark corruptions evaluated as ``<prefix>:mean`` and over the extra ones (speckle_noise,
    gaussian_blur, spatter, saturate) as ``<prefix>:extras:mean`` (never in ``:mean``). Computed on ``x_u8``
    (corruptions.corrupt), or read from ``stored`` ({name: the five severities' images, stacked}, the CIFAR-10-C
    layout). ``progress``: a bar on a terminal, and with ``Progress(log=True)`` a line per corruption elsewhere."""
    from robustbench_mix.corruptions import EXTRA_CORRUPTIONS, SEVERITIES, STANDARD_CORRUPTIONS, corrupt

    prog = as_progress(progress)
    rows, accs, n_img = [], {}, 0
    jobs = [(name, s) for name in (stored or names) for s in SEVERITIES]
    for j, (name, s) in enumerate(prog.bar(jobs, desc="corruptions", unit="corruption"), 1):
        t0 = time.perf_counter()
        if stored is not None:
            n = len(stored[name]) // len(SEVERITIES)
            xs, ys = stored[name][(s - 1) * n:s * n].to(y.device), y[(s - 1) * n:s * n]
        else:  # in chunks, each with its own generator: memory stays at one batch of corrupted images
            xs = torch.cat([corrupt(x_u8[i:i + batch_size], name, s, seed * 1_000_003 + i)
                            for i in range(0, len(x_u8), batch_size)])
            ys = y
        acc = (predict(model, xs, batch_size).argmax(1) == ys).float().mean()
        accs.setdefault(name, []).append(acc)
        n_img = len(ys)
        rows.append(row("test", "acc", acc, f"{prefix}:{name}:{s}", n=n_img))
        prog.sync(acc.device)
        prog.say(f"corruption {j}/{len(jobs)}: {name} severity {s} on {n_img} images in "
                 f"{seconds(time.perf_counter() - t0)} (elapsed {prog.elapsed()})")
    for group, label in ((STANDARD_CORRUPTIONS, "mean"), (EXTRA_CORRUPTIONS, "extras:mean")):
        members = [a for name in group for a in accs.get(name, [])]
        if members:  # n_eval: the images of each corrupted set the mean is over
            rows.append(row("test", "acc", torch.stack(members).mean(), f"{prefix}:{label}", n=n_img))
    return rows


def final_rows(model, data: Prepared, exp, batch_size: int, surrogate=None,
               progress: bool | Progress = True) -> list[dict]:
    """Everything measured at the end of a run: the curve metrics, robustness and its sanity checks, and the
    computed common corruptions the experiment asks for. ``progress``: see progress.py."""
    prog = as_progress(progress)
    rows = curve_rows(model, data, batch_size)
    prog.say(f"clean: {len(data.test_y)} test images in {prog.elapsed()}")
    if exp.noise > 0:  # the realized rate: the fraction of training labels that really changed
        rows.append(row("train", "noise_realized", data.corrupted.float().mean(), n=len(data.train_y)))
    if exp.corruptions:
        prog.say(f"corruptions: {len(exp.corruptions)} at 5 severities on {len(data.test_y)} images")
        rows += corruption_rows(model, data.test_x, data.test_y, exp.corruptions, batch_size, exp.evaluation_seed,
                                progress=prog)
    robust = robustness_rows(model, data, exp, batch_size, surrogate, prog)
    rows = finish(rows + robust)
    # the checks are about the attacked images: those acc_attacked_subset is over
    checked = next(r for r in robust if r["metric"] == "acc_attacked_subset")
    checks = [dict(r, n_eval=checked["n_eval"], eval_subset=checked["eval_subset"]) for r in check_rows(rows, exp)]
    ran = [r for r in checks if r["metric"].startswith(CHECK_PREFIX)]
    prog.say(f"checks: {sum(r['value'] < 0.5 for r in ran)} of {len(ran)} failed; evaluation done in "
             f"{prog.elapsed()}")
    return rows + checks
