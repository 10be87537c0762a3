"""--dry-run: each run's state (new, partial, finished, refused) and the expected time of what remains."""

from __future__ import annotations

import sys
from pathlib import Path

from robustbench_mix.core.device import resolve_device
from robustbench_mix.core.errors import RunFailed
from robustbench_mix.data.base import ImageData, load, needs_download
from robustbench_mix.execution.executors import checkpoint_epoch
from robustbench_mix.execution.preflight import changed_data, refusals
from robustbench_mix.execution.timelimit import (
    TIMING,
    Timings,
    fmt_duration,
)
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.grids import Suite, surrogate_of
from robustbench_mix.training.train import CHECKPOINT, checkpoint_environments, environment


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


def local_datasets(specs, data_dir: str) -> tuple[dict[str, ImageData], list[str]]:
    """For --dry-run: the data sets that load without a download (CIFAR only once in --data-dir), and the
    specs that were not loaded."""
    loaded, skipped = {}, []
    for spec in dict.fromkeys(specs):
        if needs_download(spec, data_dir):
            skipped.append(spec)
        else:
            loaded[spec] = load(spec, data_dir)
    return loaded, skipped


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
        if timings.damaged:
            print(f"  ({len(timings.damaged)} damaged runs/*/{TIMING} left out of it: see the warnings)")
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
