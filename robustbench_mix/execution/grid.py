"""Running a grid: load the data, check it, skip finished runs, train the rest on an executor, report a stop."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from robustbench_mix.core.device import resolve_device
from robustbench_mix.core.errors import UsageError
from robustbench_mix.data.base import load
from robustbench_mix.execution.executors import Job, Recorder, checkpoint_epoch
from robustbench_mix.execution.preflight import changed_data, check_sizes, speed_hint
from robustbench_mix.execution.timelimit import EXIT_CODE as TIME_LIMIT_EXIT
from robustbench_mix.execution.timelimit import (
    TimeLimitReached,
)
from robustbench_mix.experiment.experiment import Experiment, RunOptions
from robustbench_mix.experiment.grids import surrogate_of
from robustbench_mix.models.families import check_input
from robustbench_mix.store.load import damaged_runs, load_runs
from robustbench_mix.store.schema import git_rev
from robustbench_mix.store.write import finished_ids
from robustbench_mix.training.train import CHECKPOINT


def failure_lines(failed: list[tuple[Experiment, str]], failures_csv: Path) -> list[str]:
    return [f"{len(failed)} run(s) failed (details in {failures_csv}):",
            *(f"  {exp.run_id} {exp.method} noise={exp.noise:g} seed={exp.seed}: {reason}" for exp, reason in failed)]


def stop_report(stop: TimeLimitReached, runs: list[Experiment], out: Path, command: str,
                failed: list[tuple[Experiment, str]] = ()) -> str:
    """What is done, what failed and what remains when --time-limit stopped the suite, and how to go on."""
    finished, failed_ids = finished_ids(out / "runs.csv"), {exp.run_id for exp, _ in failed}
    lines, n_done = [], 0
    for r in runs:
        k = checkpoint_epoch(out / "runs" / r.run_id / CHECKPOINT)
        if r.run_id in finished:
            state, n_done = "finished", n_done + 1
        elif r.run_id in failed_ids:
            state = "FAILED in this invocation" + (f", its checkpoint at epoch {k}" if k else "") + " (why: below)"
        else:
            state = ("not started" if not k else f"partial, epoch {k} of {r.epochs}" if k < r.epochs
                     else f"partial, trained ({k} epochs), its final evaluation remains")
        lines.append(f"  {r.run_id} {r.method} alpha={r.alpha:g} dropout={r.dropout:g} noise={r.noise:g} "
                     f"seed={r.seed}: {state}")
    head = stop.reason if stop.too_short else f"{stop.reason}."
    go_on = ("fix what failed, then resume with:" if failed and stop.too_short
             else "after raising the limit, resume with:" if stop.too_short else "the same command resumes from there:")
    return "\n".join([f"\n{head}", f"{n_done} of {len(runs)} run(s) finished:", *lines,
                      *(failure_lines(list(failed), out / "failures.csv") if failed else []),
                      f"every finished run is in {out / 'runs.csv'} and every partial one has its checkpoint; "
                      + go_on, f"  {command}"])


def stop_status(stop: TimeLimitReached, failed: list) -> int:
    """3: stopped with work left that the same command goes on with; 1: nothing progressed and runs failed (the
    same command would fail them again: a Slurm loop on 3 stops); 2: nothing progressed, the limit is too short."""
    return (1 if failed else 2) if stop.too_short else TIME_LIMIT_EXIT


def run_grid(args, command: str, hooks, suite, runs: list, out: Path, df, done: set[str], executor,
             write_outputs: Callable) -> int:
    """Train and evaluate the unfinished runs of ``runs`` on ``executor``; exit status 0, 1 (a run failed), 2 or
    3 (the time limit). ``write_outputs(df, suite, runs, out, seconds)`` writes the summaries and reports: they sit
    in a layer above this one."""
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
    failed = recorder.failed
    if stop is not None:  # no summary, plots or report: the time is up; the run that finishes the grid writes them
        print(stop_report(stop, runs, out, command, failed), file=sys.stderr)
        return stop_status(stop, failed)

    if runs_csv.exists():
        df = load_runs(runs_csv, strict=False)
        write_outputs(df[~df["run_id"].isin(list(damaged_runs(df)))], suite, runs, out,
                      time.perf_counter() - t_suite)
    if failed:
        print("\n".join(failure_lines(failed, failures_csv)), file=sys.stderr)
        return 1
    return 0
