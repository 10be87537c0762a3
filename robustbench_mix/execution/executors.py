"""Where runs execute: in this process (``local``, the default) or as Ray tasks (``ray``, on one machine's GPUs
or a cluster). Either way one worker trains one run under that run's lock and returns its rows; only the
driver decides what to skip and writes runs.csv and failures.csv, so a grid on many workers and other suite
processes on the same ``--out`` never lose or duplicate a run (the locks are in results.py)."""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from robustbench_mix.core.device import device_name, resolve_device, set_cpu_channels_last
from robustbench_mix.core.errors import RunFailed, UsageError
from robustbench_mix.core.registry import Registry
from robustbench_mix.core.torchfile import load_checkpoint
from robustbench_mix.data.base import ImageData
from robustbench_mix.execution.locks import RunBusy, run_lock, run_owner
from robustbench_mix.execution.runner import load_trained, run_experiment
from robustbench_mix.execution.timelimit import Pacer, TimeLimitReached
from robustbench_mix.experiment.experiment import Experiment, RunOptions
from robustbench_mix.experiment.grids import surrogate_of
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import ResultsError, to_frame
from robustbench_mix.store.write import atomic_write_csv, clear_failure, finished_ids, merge_run, record_failure
from robustbench_mix.training.train import CHECKPOINT, Hook, checkpoint_environments, mixed_environments

EXECUTORS = Registry("executor")
PENDING = "rows.csv"  # a finished run's rows until the driver has merged them into runs.csv


@dataclass(frozen=True)
class Job:
    """What every run of one suite invocation shares besides the data; picklable, so a Ray task carries it."""

    out: Path
    options: RunOptions
    force: bool
    done: frozenset[str]  # runs finished when the driver read runs.csv
    command: str
    rev: str
    hooks: tuple[Hook, ...] = ()  # called after every epoch of every run, wherever it executes
    threads: int | None = None  # CPU threads of a Ray worker (its --cpus-per-run)
    plugins: tuple[str, ...] = ()  # what the driver loaded (plugins.loaded_specs): a Ray worker loads them too


@dataclass
class Outcome:
    """What a worker hands back: the run's rows ("done"), why it failed, or that it was not trained here
    ("busy": another process holds its lock; "waited": it held the run's or its surrogate's lock until the wait's
    bound, --time-limit's time left; "skipped": another process finished it meanwhile)."""

    exp: Experiment
    status: str
    frame: pd.DataFrame | None = None
    reason: str = ""
    started: float = 0.0  # time.time() on the worker, for the packing figures and tests
    ended: float = 0.0
    where: str = ""  # host and pid of the worker
    resources: dict = field(default_factory=dict)  # what Ray assigned (CPU, GPU shares); empty locally


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch a run's checkpoint holds, or None when there is none (or it is unreadable)."""
    try:
        return load_checkpoint(path, torch.device("cpu")).get("epoch") if path.exists() else None
    except RunFailed:
        return None


def train_run(exp: Experiment, datasets: dict[str, ImageData], job: Job, wait: bool = False,
              patience: float | None = None) -> Outcome:
    """Train, evaluate and return one run's rows, holding its lock; never writes runs.csv or failures.csv.

    ``wait``: wait for another process holding the run's lock (else the outcome is "busy" at once); a surrogate's
    lock is always waited for. ``patience``: the most seconds any such wait may take (--time-limit's time left;
    None: no bound); a wait that ends there is "waited"."""
    started, where = time.time(), f"{socket.gethostname()}:{os.getpid()}"
    set_cpu_channels_last(job.options.cpu_channels_last)  # in this process, as Ray's workers set their threads
    run_dir = job.out / "runs" / exp.run_id
    ckpt, pending = run_dir / CHECKPOINT, run_dir / PENDING
    try:
        with run_lock(run_dir, wait=wait, timeout=patience):
            # Trained by another process that has not recorded it (yet, or ever: its driver died). Looked at
            # before runs.csv: a driver records a run first and removes its pending rows after.
            if not job.force and pending.exists():
                try:
                    return Outcome(exp, "skipped", load_runs(pending, strict=False), started=started,
                                   ended=time.time(), where=where)
                except ResultsError:  # damaged (an edit, a disk error): the run is redone below
                    pending.unlink(missing_ok=True)
            # finished by another process since the driver looked (a surrogate redone for its weights: when those are)
            if not job.force and exp.run_id in finished_ids(job.out / "runs.csv") and (
                    exp.run_id not in job.done or checkpoint_epoch(ckpt) == exp.epochs):
                return Outcome(exp, "skipped", started=started, ended=time.time(), where=where)
            if job.force:  # start afresh
                ckpt.unlink(missing_ok=True)
                pending.unlink(missing_ok=True)
            surrogate = None
            if exp.surrogate_seed is not None:
                s = surrogate_of(exp)
                with run_lock(job.out / "runs" / s.run_id, wait=True, timeout=patience):  # another may train it
                    surrogate = load_trained(s, datasets[s.dataset], job.out / "runs" / s.run_id)
            rows = run_experiment(exp, datasets[exp.dataset], run_dir=run_dir, options=job.options,
                                  hooks=job.hooks, surrogate=surrogate)
            resumed = mixed_environments(checkpoint_environments(ckpt), exp.epochs) if ckpt.exists() else ""
            frame = to_frame(exp, rows, device=device_name(resolve_device(exp.device)), command=job.command,
                             rev=job.rev, resumed_from=resumed, data_sha=datasets[exp.dataset].fingerprint)
            # written before the lock is released: whoever takes the lock next sees the run as finished, and
            # the rows survive a driver that dies before recording them
            atomic_write_csv(frame, pending)
    except RunBusy as e:
        return Outcome(exp, "waited" if e.waited else "busy", reason=f"{e} to finish run {e.run_id}" if e.waited
                       else str(e), started=started, ended=time.time(), where=where)
    except (RunFailed, torch.OutOfMemoryError) as e:
        return Outcome(exp, "failed", reason=f"{e.__class__.__name__}: {e}", started=started, ended=time.time(),
                       where=where)
    except TimeLimitReached:  # --time-limit: the suite stops here, the run resumes from its checkpoint next time
        raise
    except Exception as e:  # anything else raised inside the run (an attack library, a model): this run's failure
        return Outcome(exp, "failed", reason=unexpected(e), started=started, ended=time.time(), where=where)
    return Outcome(exp, "done", frame, started=started, ended=time.time(), where=where)


def unexpected(e: BaseException) -> str:
    """One line for an exception nobody foresaw: its class, first line and the innermost place it came from."""
    tb = traceback.extract_tb(e.__traceback__)
    at = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    first = (str(e).strip().splitlines() or [""])[0][:500]
    return f"{e.__class__.__name__}: {first}{at}"


class Recorder:
    """The driver's side: writes each outcome into runs.csv / failures.csv and says one line about it."""

    def __init__(self, out: Path, total: int, progress: bool):
        self.runs_csv, self.failures_csv = out / "runs.csv", out / "failures.csv"
        self.failed: list[tuple[Experiment, str]] = []
        self.bar = tqdm(total=total, unit="run", desc="grid", disable=None if progress else True)

    def say(self, line: str) -> None:
        self.bar.write(line, file=sys.stderr)

    def record(self, o: Outcome, tag: str) -> None:
        if o.frame is not None:  # merging is idempotent: a run's rows replace any earlier rows of it
            try:
                merge_run(self.runs_csv, o.frame)
            except ResultsError as e:  # rows that would make runs.csv unreadable: this run fails, the file is kept
                o = replace(o, status="failed", frame=None, reason=str(e))
            else:
                clear_failure(self.failures_csv, o.exp.run_id)
                (self.runs_csv.parent / "runs" / o.exp.run_id / PENDING).unlink(missing_ok=True)
        if o.status == "done":
            self.say(f"{tag}: done in {o.ended - o.started:.1f}s")
        elif o.status == "skipped":
            self.say(f"{tag}: finished by another process meanwhile, skipped")
        else:
            record_failure(self.failures_csv, o.exp, o.reason)
            self.failed.append((o.exp, o.reason))
            self.say(f"{tag}: FAILED: {o.reason}")
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


Runs = list[tuple[Experiment, str]]  # (run, the tag its lines start with), surrogates before their targets


@EXECUTORS.register("local")
class LocalExecutor:
    """One run after another in this process (the default). Runs that another process is training are left
    for the end and waited for."""

    def __init__(self, args=None):
        self.pacer = Pacer()  # times epochs and evaluations; the suite gives it --time-limit, when set
        given = [f"{flag} {v}" for flag, v in (("--address", getattr(args, "address", None)),
                                              ("--gpus-per-run", getattr(args, "gpus_per_run", None)),
                                              ("--cpus-per-run", getattr(args, "cpus_per_run", None)),
                                              ("--max-retries", getattr(args, "max_retries", None)))
                 if v not in (None, "")]
        if given:  # they would be ignored: a run the user meant to spread over a cluster would run here, serially
            raise UsageError(f"{', '.join(given)}: Ray option(s), and the executor is local (the default); add "
                             "--executor ray, or drop them")

    def connect(self, runs: list[Experiment]) -> None:
        pass

    def _train(self, exp: Experiment, datasets: dict[str, ImageData], job: Job, wait: bool = False) -> Outcome:
        """train_run, paced: TimeLimitReached before the run or after one of its checkpointed epochs."""
        every = job.options.checkpoint_every
        ckpt = job.out / "runs" / exp.run_id / CHECKPOINT
        done = checkpoint_epoch(ckpt) if self.pacer.limit is not None and not job.force else None
        self.pacer.before_run(exp, job.out, every, done)
        o = train_run(exp, datasets, replace(job, hooks=(*job.hooks, self.pacer.hook(exp, job.out, every))), wait,
                      patience=self.pacer.left())
        self.pacer.after_run(exp, job.out, o.status)
        if o.status == "waited":  # the limit came while another process held the lock: stop, it goes on
            raise self.pacer.waited_out(exp, o.reason)
        return o

    def run(self, runs: Runs, datasets: dict[str, ImageData], job: Job, recorder: Recorder) -> None:
        busy = []
        for exp, tag in runs:
            o = self._train(exp, datasets, job)
            if o.status == "busy":
                recorder.say(f"{tag}: being trained by {o.reason} (another process on this --out); going on with "
                             "the others and coming back to it at the end")
                busy.append((exp, tag))
            else:
                recorder.record(o, tag)
        for exp, tag in busy:  # wait for the other processes' runs; redo any they did not finish
            recorder.say(f"{tag}: waiting for {run_owner(job.out / 'runs' / exp.run_id)} to finish it")
            recorder.record(self._train(exp, datasets, job, wait=True), tag)

    def close(self) -> None:
        pass
