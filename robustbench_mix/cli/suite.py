"""``python -m robustbench_mix.suite``: expand a preset's grid, validate everything, train and evaluate each
run (skipping finished ones, resuming unfinished ones), and write runs.csv, summaries and plots."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from robustbench_mix.cli.common import get_executor, handled, load_plugin_args
from robustbench_mix.cli.suite_args import build_parser, suite_from_args
from robustbench_mix.core.atomic import check_writable
from robustbench_mix.core.device import set_cpu_channels_last
from robustbench_mix.core.errors import UsageError
from robustbench_mix.execution import timelimit
from robustbench_mix.execution.dryrun import dry_run
from robustbench_mix.execution.grid import run_grid
from robustbench_mix.execution.preflight import check_runs, with_surrogates
from robustbench_mix.execution.timelimit import ENV as TIME_LIMIT_ENV
from robustbench_mix.execution.timelimit import Pacer, fmt_duration, time_limit
from robustbench_mix.reports.outputs import write_outputs
from robustbench_mix.store.load import damaged_runs, load_runs
from robustbench_mix.training.train import Hook


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
    if load_plugin_args(argv):  # first: --help and the unknown-name errors list the plugins' entries
        return 2
    args = build_parser().parse_args(argv)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    Terminated.received = False
    set_cpu_channels_last(args.cpu_channels_last)  # before any estimate or run: the device column names it
    try:
        return handled(lambda: _main(args, "python -m robustbench_mix.suite " + shlex.join(argv), hooks),
                       on_os_error="finished runs are in runs.csv, fix the cause and run the same command again to "
                       "resume")
    except KeyboardInterrupt as e:
        term = isinstance(e, Terminated) or Terminated.received
        print(f"\n{'terminated (SIGTERM)' if term else 'interrupted'}: finished runs are in "
              "runs.csv and the current one has its last checkpoint; run the same command again to resume",
              file=sys.stderr)
        return 143 if term else 130
    finally:
        set_cpu_channels_last(False)  # process-wide: a later call in this process starts from the default
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(args, command: str, hooks: tuple[Hook, ...] = ()) -> int:
    started = timelimit.clock()
    limit = time_limit(args.time_limit, os.environ)
    suite = suite_from_args(args)
    runs = with_surrogates(suite.expand())
    check_runs(runs, args)
    if limit is not None and args.executor != "local":
        raise UsageError(f"--time-limit (or ${TIME_LIMIT_ENV}) works with --executor local only: Ray's tasks are "
                         "stopped by the cluster's own limits and resume from their checkpoints on the next run")
    if limit is not None and args.force:
        source = "--time-limit" if args.time_limit is not None else f"${TIME_LIMIT_ENV}"
        raise UsageError(f"--force with {source} ({fmt_duration(limit)}): every resumed piece would start the "
                         "finished runs afresh again, so the grid would never finish; to retrain them under a time "
                         "limit, give another --out (or remove their rows from runs.csv and their runs/<run_id>/ "
                         "folders) and run without --force; or drop the limit (--time-limit none overrides "
                         f"${TIME_LIMIT_ENV})")
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
        return run_grid(args, command, hooks, suite, runs, out, df, done, executor, write_outputs)
    finally:
        executor.close()


if __name__ == "__main__":
    sys.exit(main())
