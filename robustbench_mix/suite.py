"""``python -m robustbench_mix.suite``: expand a preset's grid, validate everything, train and evaluate each
run (skipping finished ones, resuming unfinished ones), and write runs.csv, summaries and plots."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import textwrap
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

from . import reference, timelimit
from .atomic import check_writable
from .attacks import ATTACKS
from .checks import failed_checks
from .config import (
    PRESETS,
    Experiment,
    RunOptions,
    Suite,
    fmt_eps,
    get_preset,
    grid_variants,
    parse_eps_value,
    parse_numbers,
    surrogate_of,
    validate,
    with_list_flags,
)
from .corruptions import CORRUPTIONS
from .data import DATASETS, ImageData, check_dataset_spec, load, split_spec
from .errors import RunFailed, UsageError
from .executors import EXECUTORS, Job, Recorder, checkpoint_epoch, get_executor
from .methods import METHODS
from .models import MODELS, check_input, set_cpu_channels_last
from .plots import training_curves
from .report import write_report
from .results import (
    ResultsError,
    atomic_write_csv,
    atomic_write_text,
    damaged_runs,
    finished_ids,
    git_rev,
    load_runs,
    subset_note,
    summarize,
    summary_markdown,
)
from .runner import resolve_device
from .speed import GRAPH_MODES, check_speed_options
from .tables import TABLES
from .timelimit import ENV as TIME_LIMIT_ENV
from .timelimit import EXIT_CODE as TIME_LIMIT_EXIT
from .timelimit import FORMS, TIMING, Pacer, TimeLimitReached, Timings, fmt_duration, time_limit
from .train import CHECKPOINT, Hook, checkpoint_environments, environment


def build_parser() -> argparse.ArgumentParser:
    width = max(map(len, PRESETS))
    presets = "\n".join(f"  {n:{width}s}  {s.description}" for n, s in PRESETS.items())
    p = argparse.ArgumentParser(
        prog="python -m robustbench_mix.suite",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train ERM/mixup grids, then measure clean accuracy, FGSM/PGD accuracy and memorization.",
        epilog=f"presets:\n{presets}\n\ndatasets: {', '.join(DATASETS)} (imagefolder:PATH)\n"
               f"models: {', '.join(MODELS)}, tv:NAME (torchvision), timm:NAME (extra [timm])\n"
               f"methods (--methods NAME[:VALUE][:OPTION=VALUE], defaults in brackets):\n{methods_help()}\n"
               f"attacks: {', '.join(ATTACKS)}, ta:NAME (any torchattacks attack, optional extra)\n\n"
               "Lists are comma-separated. Epsilons and step sizes are in /255 units (8/255 or 8).",
    )
    a = p.add_argument
    a("--preset", default="quick", help="named grid to start from (default: quick)")
    a("--dataset", help="digits, cifar10, cifar100 or imagefolder:PATH")
    a("--model", help=f"one of {', '.join(MODELS)}, or tv:NAME / timm:NAME (torchvision's and timm's models)")
    a("--methods", help="comma-separated methods, each with its own parameter where it takes one, e.g. "
      "erm,mixup:8,manifold_mixup,cutmix:1:prob=0.5,label_smoothing:0.1 (a method without a value takes its "
      "default, listed below; list one twice for two values)")
    mixing = ", ".join(m for m in METHODS if METHODS.get(m).takes_alpha_flag)
    a("--alpha", help=f"the Beta(α, α) parameter of the mixing methods ({mixing}) where --methods (or the preset) "
      "lists them without a value, e.g. 1 or 1,8 (a grid axis); never label smoothing's ε (label_smoothing:0.05)")
    a("--dropout", help="dropout rate(s), e.g. 0,0.5; a grid axis")
    a("--noise", help="label-noise rate(s) in [0, 1), e.g. 0,0.2")
    a("--seeds", help="seeds, e.g. 0,1,2")
    a("--epochs", type=int, help="training epochs")
    a("--batch-size", type=int, help="training batch size")
    a("--lr", type=float, help="peak learning rate")
    a("--weight-decay", type=float, help="SGD weight decay")
    a("--schedule", help="step (lr/10 at 50%% and 75%%), cosine or constant")
    a("--train-samples", type=int, help="train on N training images, a class-stratified sample that is the same "
      "for every seed and method (0 = all; the CPU CIFAR-10 presets use 10000)")
    a("--val-fraction", type=float, help="fraction of the (noisy) training set held out for model selection")
    a("--attacks", help="attacks, e.g. fgsm,pgd,ifgsm, autoattack (the standard AutoAttack, extra [autoattack]; "
      "far costlier than PGD on the points that survive its first attack), ta:NAME (torchattacks), or none")
    a("--corruptions", help="common corruptions computed on the test set at severities 1-5, e.g. "
      f"gaussian_noise,contrast, all (CIFAR-10-C's 15) or extras (its 4 extra ones); known: {', '.join(CORRUPTIONS)}; "
      "accuracy per corruption and severity, the mean over the 15 (labelled computed, not CIFAR-10-C)")
    a("--eps", help="epsilons in /255 units: 2/255,8/255 or 2,8 (a bare number below 1, such as 0.03, is "
      "refused as ambiguous; write 7.65/255). Results write eps as a fraction (0.031373) and eps_255 (8)")
    a("--eps-l2", help="radii of the L2 attacks (pgd_l2, fgm_l2, autoattack_l2), plain L2 norms of the whole "
      "perturbation in [0, 1] pixel space, e.g. 0.25,0.5 (RobustBench: 0.5 on CIFAR-10); needed when --attacks "
      "names an L2 attack")
    a("--attack-steps", type=int, help="steps of the iterative attacks (default 10)")
    a("--attack-step-size", help="step size in /255 units, like --eps (default 2.5*eps/steps)")
    a("--attack-samples", type=int, help="attack N test images, a class-stratified sample that is the same for "
      "every run on the data set (0 = all, the default of the presets); rows say which in n_eval and eval_subset")
    a("--attack-restarts", type=int, help="random restarts of PGD; per-example worst case (default 1)")
    a("--check-eps", help="epsilon in /255 units, like --eps, at which PGD must break the model, a gradient-masking "
      "check (default 64/255; 0 skips)")
    a("--attack-precision", choices=("fp32", "bf16"), help="fp32 (default) or bf16 autocast for attacks")
    a("--surrogate-seed", type=int, help="add black-box rows: attacks transferred from an ERM twin trained "
      "with this seed")
    a("--eval-every", type=int, help="record clean/memorization curves every N epochs (0 = end only)")
    a("--device", help="auto (default), cpu, cuda or cuda:N")
    a("--data-dir", default=os.environ.get("ROBUSTBENCH_MIX_DATA", "data"),
      help="where data sets are downloaded or cached (default: ./data or $ROBUSTBENCH_MIX_DATA)")
    a("--out", help="results directory (default: results/<preset>)")
    a("--checkpoint-every", type=int, default=1, help="checkpoint every N epochs (default 1)")
    a("--eval-batch-size", type=int, default=1000, help="batch size of evaluation and attacks")
    a("--compile", action="store_true", help="train through torch.compile (compiles first; its speed is not "
      "measured yet, see experiments/README.md); combines with --cuda-graphs step, not with model")
    a("--cuda-graphs", nargs="?", const="model", choices=GRAPH_MODES, metavar="{model,step}",
      help="replay training as CUDA graphs, much faster at small batches on a GPU (ignored on the CPU): "
      "'model' (the default) each step's forward and backward, 'step' the whole step, optimizer included")
    a("--cpu-channels-last", action="store_true", help="on the CPU, models and images in the channels_last memory "
      "layout (always so on CUDA): the same arithmetic, 1.55-2.2x faster per training step on the CPUs measured "
      "(experiments/README.md); numbers differ from the default layout's by rounding, and the device column says "
      "channels_last")
    a("--executor", default="local", choices=EXECUTORS.names(),
      help="where runs execute: local (one after another in this process, the default) or ray (Ray tasks on this "
      "machine or a cluster; optional extra [ray])")
    a("--address", help="ray: the cluster to join, 'auto' or HOST:PORT (default: start Ray here)")
    a("--gpus-per-run", type=float, help="ray: GPUs per run; a fraction packs runs, e.g. 0.25 trains four per GPU "
      "(default: 1 where the cluster has GPUs, else 0)")
    a("--cpus-per-run", type=float, help="ray: CPUs per run, also its torch threads (default 1)")
    a("--max-retries", type=int, help="ray: retries of a run whose worker died; it resumes from its "
      "checkpoint (default 2)")
    a("--force", action="store_true", help="rerun runs that already finished")
    a("--time-limit", metavar="DURATION", help="stop cleanly before this much wall-clock time has passed "
      f"(between epochs, after a checkpoint, or between runs) and exit {TIME_LIMIT_EXIT}; the same command resumes. "
      f"{FORMS[0].upper() + FORMS[1:]}. Default: ${TIME_LIMIT_ENV} (for Slurm), else none")
    a("--dry-run", action="store_true", help="list the runs and their status without training, and the expected "
      "time of what remains where runs of the same configuration have been timed")
    a("--no-progress", action="store_true", help="no progress bars")
    return p


def methods_help() -> str:
    """One line per trainable method: how --methods spells it, its defaults, its options."""
    lines = []
    for name in METHODS:
        m = METHODS.get(name)
        if m.trainable:
            lines.append(f"  {m.usage(name)}" + (f"  [{m.defaults_text()}]" if m.defaults_text() else ""))
            lines += [textwrap.fill(f"{o.name}: {o.doc}", 110, initial_indent=" " * 6, subsequent_indent=" " * 8)
                      for o in m.options]
    return "\n".join(lines)


def suite_from_args(args) -> Suite:
    suite = get_preset(args.preset)
    base = suite.base
    simple = {"dataset": args.dataset, "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size,
              "lr": args.lr, "weight_decay": args.weight_decay, "schedule": args.schedule,
              "val_fraction": args.val_fraction, "train_samples": args.train_samples,
              "attack_steps": args.attack_steps,
              "attack_step_size": None if args.attack_step_size is None
              else parse_eps_value(args.attack_step_size, "--attack-step-size"),
              "attack_samples": args.attack_samples, "attack_restarts": args.attack_restarts,
              "check_eps": None if args.check_eps is None else parse_eps_value(args.check_eps, "--check-eps"),
              "surrogate_seed": args.surrogate_seed, "attack_precision": args.attack_precision,
              "eval_every": args.eval_every, "device": args.device}
    base = with_list_flags(replace(base, **{k: v for k, v in simple.items() if v is not None}), args)
    variants, by_noise = suite.variants, suite.by_noise
    if args.methods or args.alpha or args.dropout:
        preset = tuple(variants) + tuple(v for _, vs in by_noise for v in vs)
        variants, by_noise = grid_variants(args.methods, args.alpha, args.dropout, preset), ()
    noise = parse_numbers(args.noise, "--noise") if args.noise is not None else suite.noise
    seeds = parse_numbers(args.seeds, "--seeds", int) if args.seeds is not None else suite.seeds
    return replace(suite, base=base, variants=variants, by_noise=by_noise, noise=noise, seeds=seeds)


def check_runs(runs: list[Experiment], args) -> None:
    """Everything that can be checked before training: names, ranges, device, folders."""
    for exp in runs:
        validate(exp)
    for spec in dict.fromkeys(r.dataset for r in runs):
        check_dataset_spec(spec)
        if split_spec(spec)[0] in ("cifar10", "cifar100"):
            check_writable(Path(args.data_dir), "--data-dir")
    for dev in dict.fromkeys(r.device for r in runs):
        if args.executor == "local":  # Ray's workers may have the GPUs this machine lacks
            resolve_device(dev)
    for flag, v in (("--checkpoint-every", args.checkpoint_every), ("--eval-batch-size", args.eval_batch_size)):
        if v < 1:
            raise UsageError(f"{flag} {v} must be at least 1")
    check_speed_options(args.compile, args.cuda_graphs)  # before any training, as every check here
    if args.compile or args.cuda_graphs:
        eager_only = {r.method: METHODS.get(r.method).graph_reason for r in runs if not METHODS.get(r.method).graphable}
        if eager_only:
            why = "; ".join(f"{m}: {reason}" for m, reason in sorted(eager_only.items()))
            raise UsageError(f"method(s) {', '.join(sorted(eager_only))} cannot run inside --compile or --cuda-graphs "
                             f"({why}); run them without those flags, or run the other methods with them in a "
                             "separate command")


def check_sizes(exp: Experiment, data: ImageData) -> None:
    if exp.attack_samples > len(data.test_y):
        raise UsageError(f"--attack-samples {exp.attack_samples} is larger than the test set of {exp.dataset} "
                         f"({len(data.test_y)} images); use {len(data.test_y)} or less, or 0 for all of them")
    if exp.train_samples > len(data.train_y):
        raise UsageError(f"--train-samples {exp.train_samples} is larger than the training set of {exp.dataset} "
                         f"({len(data.train_y)} images); use {len(data.train_y)} or less, or 0 for all of them")
    n_all = exp.train_samples or len(data.train_y)
    n_train = n_all - int(round(exp.val_fraction * n_all))
    if exp.batch_size > n_train:
        raise UsageError(f"batch size {exp.batch_size} is larger than the training set of {exp.dataset} "
                         f"({n_train} examples after the validation split); use --batch-size {n_train} or less")


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and `timeout` send), handled like Ctrl-C: the same clean stop and message."""

    # set by the handler too: Ray's wait turns an exception raised in a signal handler into a plain
    # KeyboardInterrupt, which must still end as a SIGTERM does
    received = False


def _terminate(signum, frame):
    Terminated.received = True
    raise Terminated()


def main(argv: list[str] | None = None, *, hooks: tuple[Hook, ...] = ()) -> int:
    """The command line; ``hooks`` (epoch, model) run after every epoch of every run, wherever it executes."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    Terminated.received = False
    set_cpu_channels_last(args.cpu_channels_last)  # before any estimate or run: the device column names it
    try:
        return _main(args, "python -m robustbench_mix.suite " + shlex.join(argv), hooks)
    except (UsageError, ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        term = isinstance(e, Terminated) or Terminated.received
        print(f"\n{'terminated (SIGTERM)' if term else 'interrupted'}: finished runs are in "
              "runs.csv and the current one has its last checkpoint; run the same command again to resume",
              file=sys.stderr)
        return 143 if term else 130
    except BrokenPipeError:  # e.g. --dry-run | head: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a results file that cannot be written (disk full, permissions): no traceback
        print(f"error: {e.__class__.__name__}: {e}; finished runs are in runs.csv, fix the cause and run the same "
              "command again to resume", file=sys.stderr)
        return 1
    finally:
        set_cpu_channels_last(False)  # process-wide: a later call in this process starts from the default
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def speed_hint(runs: list[Experiment], on_cuda: bool, cuda_graphs: bool | str | None, compile: bool) -> str | None:
    """At small batches a GPU mostly waits for kernel launches; say so when nothing is set to avoid it."""
    small = sorted({r.batch_size for r in runs if r.batch_size <= 256})
    if on_cuda and small and not (cuda_graphs or compile):
        return (f"hint: at batch size {', '.join(map(str, small))} the GPU mostly waits for Python; --cuda-graphs "
                "trained PreAct ResNet-18 2.6x faster at batch 128 on an H200 (see experiments/README.md)")
    return None


def partial_note(ckpt: Path, exp: Experiment) -> str:
    """For --dry-run: where a partial run's checkpoint was written, when that is not where it would resume."""
    try:
        envs = checkpoint_environments(ckpt)
    except RunFailed as e:
        return f"\n      its checkpoint is unreadable and the run would fail: {e}"
    here = environment(resolve_device(exp.device))
    if envs and envs[-1][1] != here:
        return (f"\n      checkpoint written under {envs[-1][1]}; resuming under {here} mixes environments "
                "(said in its rows' resumed_from column)")
    return ""


def with_surrogates(runs: list[Experiment]) -> list[Experiment]:
    """The grid plus the ERM surrogates its black-box evaluations need, each surrogate before its targets."""
    out: list[Experiment] = []
    for r in runs:
        if r.surrogate_seed is not None:
            out.append(surrogate_of(r))
        out.append(r)
    return list(dict.fromkeys(out))


def changed_data(df, runs: list[Experiment], done: set[str], datasets: dict[str, ImageData]) -> dict[str, str]:
    """Finished runs of this grid whose rows were measured on data with another content than now (run id ->
    what changed); runs whose data are not in ``datasets`` are not looked at."""
    recorded = df.drop_duplicates("run_id").set_index("run_id")["data_sha"] if len(df) else {}
    out = {}
    for r in runs:
        sha = recorded.get(r.run_id, "") if r.run_id in done and r.dataset in datasets else ""
        if sha and sha != datasets[r.dataset].fingerprint:
            out[r.run_id] = (f"{r.run_id} ({r.method} seed {r.seed} on {r.dataset}: fingerprint {sha}, now "
                             f"{datasets[r.dataset].fingerprint})")
    return out


def local_datasets(specs, data_dir: str) -> tuple[dict[str, ImageData], list[str]]:
    """For --dry-run: the data sets that load without a download (CIFAR only once in --data-dir), and the
    specs that were not loaded."""
    import torchvision

    loaded, skipped = {}, []
    for spec in dict.fromkeys(specs):
        name = split_spec(spec)[0]
        folder = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}.get(name)
        if folder is not None and not (Path(data_dir) / folder.base_folder).is_dir():
            skipped.append(spec)
        else:
            loaded[spec] = load(spec, data_dir)
    return loaded, skipped


def refusals(runs: list[Experiment], datasets: dict[str, ImageData]) -> dict[str, str]:
    """run id -> why the real run refuses it before training (sizes against the data, a model that cannot take
    its images), for the runs whose data are in ``datasets``; the same checks as the real run's."""
    unfit = {}
    for model, spec in dict.fromkeys((r.model, r.dataset) for r in runs if r.dataset in datasets):
        try:
            check_input(model, datasets[spec].shape, datasets[spec].num_classes)
        except UsageError as e:
            unfit[(model, spec)] = str(e)
    out: dict[str, str] = {}
    for r in runs:
        if r.dataset not in datasets:
            continue
        try:
            check_sizes(r, datasets[r.dataset])
        except UsageError as e:
            out[r.run_id] = str(e)
            continue
        if (r.model, r.dataset) in unfit:
            out[r.run_id] = unfit[(r.model, r.dataset)]
    return out


def _main(args, command: str, hooks: tuple[Hook, ...] = ()) -> int:
    started = timelimit.clock()
    limit = time_limit(args.time_limit, os.environ)
    suite = suite_from_args(args)
    runs = with_surrogates(suite.expand())
    check_runs(runs, args)
    if limit is not None and args.executor != "local":
        raise UsageError(f"--time-limit (or ${TIME_LIMIT_ENV}) works with --executor local only: Ray's tasks are "
                         "stopped by the cluster's own limits and resume from their checkpoints on the next run")
    executor = get_executor(args)
    if args.executor == "local":
        executor.pacer = Pacer(limit, started)
    out = Path(args.out or Path("results") / suite.name)
    runs_csv = out / "runs.csv"
    df = load_runs(runs_csv, strict=False) if runs_csv.exists() else None
    damaged = damaged_runs(df) if df is not None else {}
    done = (set(df["run_id"]) if df is not None else set()) - set(damaged)
    for rid, reason in damaged.items():
        print(f"warning: run {rid} in {runs_csv} {reason}: it is not counted as finished "
              f"{'and will be redone' if any(r.run_id == rid for r in runs) else '(not part of this grid)'}",
              file=sys.stderr)
    if args.dry_run:
        return dry_run(args, suite, runs, out, df, done)
    check_writable(out, "--out")
    try:
        return _run(args, command, hooks, suite, runs, out, df, done, damaged, executor)
    finally:
        executor.close()


def dry_run(args, suite: Suite, runs: list[Experiment], out: Path, df, done: set[str]) -> int:
    """List the runs and what the real command would do with each: new, partial, finished, or refused (with
    the reason; exit 2, as the real command)."""
    datasets, skipped = local_datasets([r.dataset for r in runs], args.data_dir)
    refused = refusals(runs, datasets)
    if df is not None and not args.force:
        for rid, what in changed_data(df, runs, done, datasets).items():
            refused.setdefault(rid, f"measured on data whose content has changed since: {what}; --force retrains it")
    print(f"{len(runs)} runs in preset {suite.name!r} -> {out}")
    timings, left = Timings(out), []
    for r in runs:
        ckpt = out / "runs" / r.run_id / CHECKPOINT
        state = "refused" if r.run_id in refused else "finished" if r.run_id in done else (
            "partial" if ckpt.exists() else "new")
        role = f" (black-box surrogate, seed {r.seed})" if any(
            x.surrogate_seed is not None and surrogate_of(x) == r for x in runs) else ""
        note = {"partial": partial_note(ckpt, r) if state == "partial" else "",
                "refused": f"\n      {refused.get(r.run_id)}"}.get(state, "")
        eta = ""
        if state in ("new", "partial"):
            left.append(time_left(r, checkpoint_epoch(ckpt) if state == "partial" else 0, timings))
            eta = f", ~{fmt_duration(left[-1][0])} left" if left[-1][0] is not None else ""
        print(f"  {r.run_id}  {state:8s}  {r.dataset} {r.model} {r.method} alpha={r.alpha:g}"
              f"{' ' + r.method_options if r.method_options else ''} "
              f"dropout={r.dropout:g} noise={r.noise:g} seed={r.seed} epochs={r.epochs}{role}{eta}{note}")
    if left:
        print(remaining_estimate(left))
    for spec in skipped:
        print(f"(not checked against the data: {spec} is not in --data-dir {args.data_dir} yet; the real run "
              "downloads it, then checks)")
    if refused:
        print(f"error: {len(refused)} run(s) would be refused before any training (the reasons are above)",
              file=sys.stderr)
        return 2
    return 0


def time_left(exp: Experiment, done: int | None, timings: Timings) -> tuple[float | None, set[str]]:
    """Expected seconds to finish ``exp`` from its checkpoint's epoch ``done``, from the timed epochs and
    evaluations of runs of its configuration apart from the seed: under this machine's environment where there
    are some, else under any (named). (None, set()) when there are none."""
    per_epoch, per_eval, envs = timings.estimate(exp, environment(resolve_device(exp.device)))
    if per_epoch is None and per_eval is None:
        per_epoch, per_eval, envs = timings.estimate(exp, None)
    if (per_epoch is None and (done or 0) < exp.epochs) or per_eval is None:
        return None, set()
    return (exp.epochs - (done or 0)) * (per_epoch or 0.0) + per_eval, envs


def remaining_estimate(left: list[tuple[float | None, set[str]]]) -> str:
    known = [s for s, _ in left if s is not None]
    if not known:
        return (f"expected time of what remains: unknown; none of the {len(left)} unfinished run(s) has a finished "
                f"run of its configuration (apart from the seed) timed in runs/*/{TIMING}")
    envs = sorted(set().union(*(e for _, e in left)))
    here = ", ".join(envs)
    return (f"expected time of what remains: ~{fmt_duration(sum(known))} for {len(known)} of {len(left)} unfinished "
            f"run(s), from the timed epochs and final evaluations of runs of the same configuration apart from "
            f"the seed (runs/*/{TIMING}, measured under {here})"
            + (f"; {len(left) - len(known)} run(s) have no timed run of their configuration" if len(known) < len(left)
               else ""))


def stop_report(stop: TimeLimitReached, runs: list[Experiment], out: Path, command: str) -> str:
    """What is done and what remains when --time-limit stopped the suite, and how to go on."""
    finished = finished_ids(out / "runs.csv")
    lines, n_done = [], 0
    for r in runs:
        if r.run_id in finished:
            state, n_done = "finished", n_done + 1
        else:
            k = checkpoint_epoch(out / "runs" / r.run_id / CHECKPOINT)
            state = ("not started" if not k else f"partial, epoch {k} of {r.epochs}" if k < r.epochs
                     else f"partial, trained ({k} epochs), its final evaluation remains")
        lines.append(f"  {r.run_id} {r.method} alpha={r.alpha:g} dropout={r.dropout:g} noise={r.noise:g} "
                     f"seed={r.seed}: {state}")
    head = stop.reason if stop.too_short else f"{stop.reason}."
    return "\n".join([f"\n{head}", f"{n_done} of {len(runs)} run(s) finished:", *lines,
                      f"every finished run is in {out / 'runs.csv'} and every partial one has its checkpoint; "
                      + ("after raising the limit, resume with:" if stop.too_short
                         else "the same command resumes from there:"), f"  {command}"])


def _run(args, command, hooks, suite, runs, out, df, done, damaged, executor) -> int:
    runs_csv, failures_csv = out / "runs.csv", out / "failures.csv"
    executor.connect(runs)  # Ray: join or start it now, so a bad --address fails before any data or training
    specs = list(dict.fromkeys(r.dataset for r in runs))
    print(f"{suite.name}: {len(runs)} run(s) into {out}/; loading {', '.join(specs)}", file=sys.stderr, flush=True)
    datasets = {spec: load(spec, args.data_dir) for spec in specs}
    for r in runs:
        check_sizes(r, datasets[r.dataset])
    for model, spec in dict.fromkeys((r.model, r.dataset) for r in runs):
        check_input(model, datasets[spec].shape, datasets[spec].num_classes)
    stale = changed_data(df, runs, done, datasets) if df is not None and not args.force else {}
    if stale:
        raise UsageError(f"{len(stale)} finished run(s) in {runs_csv} were measured on data whose content has "
                         f"changed since: {'; '.join(stale.values())}. Rerun with --force to retrain them on the data "
                         "as it is now, or use another --out")
    todo = {r.run_id for r in runs if args.force or r.run_id not in done}
    for r in runs:  # a surrogate without finished weights is (re)trained when a target still needs it
        if r.surrogate_seed is not None and r.run_id in todo:
            s = surrogate_of(r)
            if checkpoint_epoch(out / "runs" / s.run_id / CHECKPOINT) != s.epochs:
                todo.add(s.run_id)

    on_cuda = args.executor == "local" and any(resolve_device(r.device).type == "cuda" for r in runs
                                                if r.run_id in todo)
    hint = speed_hint([r for r in runs if r.run_id in todo], on_cuda, args.cuda_graphs, args.compile)
    if hint:
        print(hint, file=sys.stderr)
    rev = git_rev()
    options = RunOptions(checkpoint_every=args.checkpoint_every, eval_batch_size=args.eval_batch_size,
                         progress=not args.no_progress, compile=args.compile, cuda_graphs=args.cuda_graphs,
                         cpu_channels_last=args.cpu_channels_last)
    job = Job(out, options, args.force, frozenset(done), command, rev, hooks)
    t_suite = time.perf_counter()
    todo_runs = []
    for i, exp in enumerate(runs, 1):
        tag = (f"[{i}/{len(runs)}] {exp.run_id} {exp.method} alpha={exp.alpha:g}"
               f"{' ' + exp.method_options if exp.method_options else ''} dropout={exp.dropout:g} "
               f"noise={exp.noise:g} seed={exp.seed}")
        if exp.run_id in todo:
            todo_runs.append((exp, tag))
        else:
            print(f"{tag}: finished earlier, skipped (--force reruns)", file=sys.stderr)
    print(f"training {len(todo_runs)} run(s), {len(runs) - len(todo_runs)} finished earlier; a line per finished run "
          "follows", file=sys.stderr, flush=True)
    recorder = Recorder(out, len(todo_runs), progress=options.progress and args.executor != "local")
    stop = None
    try:
        executor.run(todo_runs, datasets, job, recorder)
    except TimeLimitReached as e:  # between runs, or after a checkpointed epoch: nothing is half written
        stop = e
    finally:
        recorder.close()
    if stop is not None:  # no summary, plots or report: the time is up; the run that finishes the grid writes them
        print(stop_report(stop, runs, out, command), file=sys.stderr)
        return 2 if stop.too_short else TIME_LIMIT_EXIT
    failed = recorder.failed

    if runs_csv.exists():
        df = load_runs(runs_csv, strict=False)
        write_outputs(df[~df["run_id"].isin(list(damaged_runs(df)))], suite, runs, out,
                      time.perf_counter() - t_suite)
    if failed:
        print(f"{len(failed)} run(s) failed (details in {failures_csv}):", file=sys.stderr)
        for exp, reason in failed:
            print(f"  {exp.run_id} {exp.method} noise={exp.noise:g} seed={exp.seed}: {reason}", file=sys.stderr)
        return 1
    return 0


def _note(text: str) -> str:
    return f"\n{text}\n" if text else ""


def write_outputs(df, suite: Suite, runs: list[Experiment], out: Path, seconds: float) -> None:
    """summary.csv/.md, the suite's paper-shaped tables and plots; print this invocation's summary."""
    summary = summarize(df)
    atomic_write_csv(summary, out / "summary.csv")
    atomic_write_text(out / "summary.md",
        f"# {suite.name}: summary\n\n{describe_suite(suite)}. Accuracies, memorized and ECE in %, mean ± std over "
        f"seeds; epsilons in /255; 'checks failed' counts failed robustness sanity checks (see runs.csv).\n\n"
        + summary_markdown(summary) + _note(subset_note(df)))
    training_curves(df, out / "curves.png")
    ids = {r.run_id for r in runs}
    print(f"\n{suite.name}: {len(runs)} runs, {seconds:.0f}s; eps: "
          f"{', '.join(fmt_eps(e) for e in suite.base.eps)}; results in {out}/\n")
    mine = df[df["run_id"].isin(ids)]
    print(summary_markdown(summarize(mine)) + _note(subset_note(mine)))
    for name in dict.fromkeys((*suite.tables, "corruptions")):  # the last writes nothing without corruption rows
        md = TABLES.get(name)(df, out)
        if md:
            print(md)
    write_report(out)
    print_reference_check(df[df["run_id"].isin(ids)], suite.name, out)
    for rid, check in failed_checks(df[df["run_id"].isin(ids)]):
        print(f"WARNING: run {rid}: robustness check {check!r} failed; its numbers may not be trustworthy "
              f"(see runs.csv rows with attack 'check')", file=sys.stderr)


def describe_suite(suite: Suite) -> str:
    """The preset's description, and every flag that overrode it: a preset called 'the paper's recipe' run with
    another batch size or data set must not be described as the paper's recipe."""
    preset = PRESETS.get(suite.name)
    if preset is None:
        return suite.description
    changed = [f"{f.name} {getattr(suite.base, f.name)} (preset: {getattr(preset.base, f.name)})"
               for f in fields(Experiment) if f.name not in ("preset", "device")
               and getattr(suite.base, f.name) != getattr(preset.base, f.name)]
    for name in ("noise", "seeds"):
        if getattr(suite, name) != getattr(preset, name):
            changed.append(f"{name} {', '.join(f'{v:g}' for v in getattr(suite, name))} (preset: "
                           f"{', '.join(f'{v:g}' for v in getattr(preset, name))})")
    if (suite.variants, suite.by_noise) != (preset.variants, preset.by_noise):
        changed.append("methods (see the method, alpha and dropout columns)")
    return suite.description + (f"; overridden here: {', '.join(changed)}" if changed else "")


def print_reference_check(df, preset: str, out: Path) -> None:
    """Ours against the committed reference of the same preset (reference_check.csv / .md in ``out``)."""
    if out.resolve() == (reference.REFERENCE_DIR / preset).resolve():
        return  # regenerating the reference itself
    check = reference.reference_check(df, preset)
    if check is None:
        print(reference.describe_missing(preset))
    elif check.empty:
        print(f"(none of these configurations is in the committed reference results/reference/{preset}/)\n")
    else:
        md = reference.to_markdown(check, preset)
        atomic_write_csv(check, out / "reference_check.csv")
        atomic_write_text(out / "reference_check.md", f"# {preset}: against the committed reference\n\n{md}")
        print(md)


if __name__ == "__main__":
    sys.exit(main())
