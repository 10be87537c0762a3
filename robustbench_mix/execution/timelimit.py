"""``--time-limit``: stop a grid cleanly before a wall-clock limit (a Slurm job's, a 15-minute GPU lease) and
resume it with the same command.

The :class:`Pacer` measures every epoch and every final evaluation of the local executor's runs and records
them in ``runs/<run_id>/timing.json`` (always, so ``--dry-run`` can estimate what remains). With a limit it
stops only where a run's state is in its checkpoint: before a run, or after a checkpointed epoch, when the
next piece of work (the epochs up to the next checkpoint, or the final evaluation) is not expected to end
before the limit. A piece is estimated from measured pieces of runs of the same configuration apart from the
seed, on the same device, in this process or recorded earlier; a configuration never measured is started (its
first epoch measures it)."""

from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.device import resolve_device
from robustbench_mix.core.errors import UsageError
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.training.train import environment

ENV = "ROBUSTBENCH_MIX_TIME_LIMIT"
EXIT_CODE = 3  # stopped at the time limit with work left; the same command resumes
TIMING = "timing.json"
FORMS = "seconds (900), 90s, 25m, 1h30m, H:MM:SS (1:30:00) or M:SS (25:00); none for no limit"
clock = time.monotonic  # the one time source of this module (tests replace it with a fake clock)

_NUM = r"\d+(?:\.\d+)?"
_UNITS = re.compile(rf"(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m)?(?:(?P<s>{_NUM})s)?")
_CLOCK = re.compile(r"(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d{2})")


class TimeLimitReached(Exception):
    """Raised between epochs (after the checkpoint) or between runs. ``too_short``: nothing could be done in
    this invocation, so running the same command again would not progress either."""

    def __init__(self, reason: str, too_short: bool = False):
        super().__init__(reason)
        self.reason, self.too_short = reason, too_short


def parse_duration(text: str, source: str) -> float | None:
    """Seconds from '900', '90s', '25m', '1h30m', '1:30:00'; None for 'none'. ``source`` names where the text
    came from in the error (the flag or the environment variable)."""
    t = text.strip().lower().replace(" ", "")
    if t in ("none", "off"):
        return None
    seconds = None
    if re.fullmatch(_NUM, t):
        seconds = float(t)
    elif (m := _CLOCK.fullmatch(t)) and int(m["s"]) < 60 and (m["h"] is None or int(m["m"]) < 60):
        seconds = 3600 * int(m["h"] or 0) + 60 * int(m["m"]) + int(m["s"])
    elif t and (m := _UNITS.fullmatch(t)):
        seconds = 3600 * float(m["h"] or 0) + 60 * float(m["m"] or 0) + float(m["s"] or 0)
    if seconds is None or not math.isfinite(seconds):
        raise UsageError(f"{source} {text!r} is not a duration; use {FORMS}")
    if seconds <= 0:
        raise UsageError(f"{source} {text!r} must be above 0; use {FORMS}")
    return seconds


def time_limit(flag: str | None, environ) -> float | None:
    """The limit in seconds: ``--time-limit`` if given, else $ROBUSTBENCH_MIX_TIME_LIMIT (unset or empty: none)."""
    if flag is not None:
        return parse_duration(flag, "--time-limit")
    value = environ.get(ENV, "")
    return parse_duration(value, f"${ENV}") if value.strip() else None


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def timing_key(exp: Experiment) -> str:
    """Runs that differ only in their seed cost the same time per epoch and per evaluation."""
    return replace(exp, seed=0).run_id


def _mean(entries: list[dict]) -> float | None:
    """Entries measured without the run's set-up if there are any (data preparation, model building and a
    CUDA-graph capture or compilation fall into a run's first epoch or evaluation in a process), else all."""
    clean = [e["seconds"] for e in entries if not e["setup"]] or [e["seconds"] for e in entries]
    return sum(clean) / len(clean) if clean else None


class DamagedTiming(ValueError):
    """A timing.json that is not what :meth:`Timings.record` writes (an edit, a disk error); the message says how."""


def _entry(e, where: str) -> dict:
    """One measured piece as recorded, checked: {seconds: a finite number >= 0, setup: bool, environment: str}."""
    if not isinstance(e, dict):
        raise DamagedTiming(f"{where} is {type(e).__name__} {e!r:.40}, not an object")
    missing = [k for k in ("seconds", "setup", "environment") if k not in e]
    if missing:
        raise DamagedTiming(f"{where} lacks {', '.join(missing)}")
    s = e["seconds"]
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
        raise DamagedTiming(f"{where}: seconds {s!r:.40} is not a finite number >= 0")
    if not isinstance(e["setup"], bool) or not isinstance(e["environment"], str):
        raise DamagedTiming(f"{where}: setup must be true/false and environment a string")
    return {"seconds": float(s), "setup": e["setup"], "environment": e["environment"]}


def read_timing(path: Path) -> dict:
    """A run's timing.json as {key, epochs: {epoch: entry}, evaluation: entry or None}; raises
    :class:`DamagedTiming` (saying what is wrong) for anything :meth:`Timings.record` would not have written."""
    try:
        t = json.loads(path.read_text())
    except OSError as e:
        raise DamagedTiming(f"unreadable ({e.__class__.__name__}: {e.strerror or e})") from None
    except ValueError:  # UnicodeDecodeError included
        raise DamagedTiming("not JSON") from None
    if not isinstance(t, dict):
        raise DamagedTiming(f"a JSON {type(t).__name__}, not an object")
    missing = [k for k in ("run_id", "config_key", "epochs") if k not in t]
    if missing:
        raise DamagedTiming(f"lacks {', '.join(missing)}")
    if t["run_id"] != path.parent.name:
        raise DamagedTiming(f"its run_id {t['run_id']!r:.40} is not its directory's")
    if not isinstance(t["config_key"], str) or not isinstance(t["epochs"], dict):
        raise DamagedTiming("config_key must be a string and epochs an object")
    epochs = {}
    for k, v in t["epochs"].items():
        if not (k.isascii() and k.isdigit()) or int(k) < 1:
            raise DamagedTiming(f"epoch {k!r:.40} is not an epoch number")
        epochs[int(k)] = _entry(v, f"epoch {k}")
    evaluation = t.get("evaluation")
    return {"key": t["config_key"], "epochs": epochs,
            "evaluation": None if evaluation is None else _entry(evaluation, "evaluation")}


class Timings:
    """The measured epochs and evaluations of the runs under ``out``: read from their timing.json once,
    then kept up to date in memory and on disk (atomically) as this process measures more. A damaged file
    (``damaged``: path -> what is wrong) is left out with a warning: it costs an estimate, never a run, and
    is rewritten whole the next time its run records a piece."""

    def __init__(self, out: Path, warn: bool = True):
        self.out, self.runs, self.damaged = out, {}, {}
        for path in sorted((out / "runs").glob(f"*/{TIMING}")):
            try:
                self.runs[path.parent.name] = read_timing(path)
            except DamagedTiming as e:
                self.damaged[path] = str(e)
                if warn:
                    print(f"warning: {path} is damaged ({e}): left out of the time estimates", file=sys.stderr)

    def record(self, exp: Experiment, epoch: int | None, seconds: float, setup: bool, env: str) -> None:
        """``epoch`` None: the final evaluation."""
        t = self.runs.setdefault(exp.run_id, {"key": timing_key(exp), "epochs": {}, "evaluation": None})
        entry = {"seconds": round(seconds, 4), "setup": setup, "environment": env}
        if epoch is None:
            t["evaluation"] = entry
        else:
            t["epochs"][epoch] = entry
        epochs = {str(k): v for k, v in sorted(t["epochs"].items())}
        try:
            atomic_write_text(self.out / "runs" / exp.run_id / TIMING, json.dumps(
                {"run_id": exp.run_id, "config_key": t["key"], "epochs": epochs, "evaluation": t["evaluation"]},
                indent=1))
        except OSError:  # timing only informs estimates: a full disk fails the run at its checkpoint, not here
            pass

    def estimate(self, exp: Experiment, env: str | None) -> tuple[float | None, float | None, set[str]]:
        """(seconds per epoch, seconds of the final evaluation, environments measured in) for runs of ``exp``'s
        configuration apart from the seed, measured under ``env`` (None: under any environment)."""
        key = timing_key(exp)
        runs = [t for t in self.runs.values() if t["key"] == key]
        epochs = [e for t in runs for e in t["epochs"].values() if env is None or e["environment"] == env]
        evals = [t["evaluation"] for t in runs if t["evaluation"] and (env is None or t["evaluation"]["environment"]
                                                                      == env)]
        return _mean(epochs), _mean(evals), {e["environment"] for e in epochs + evals}


def next_checkpoint(done: int, epochs: int, every: int) -> int:
    return min((done // every + 1) * every, epochs)


class Pacer:
    """The local executor's clock: measures, records and, with a ``limit`` (seconds from ``started``), stops."""

    def __init__(self, limit: float | None = None, started: float | None = None):
        self.limit = limit
        self.started = clock() if started is None else started
        self.deadline = None if limit is None else self.started + limit
        self.timings: Timings | None = None
        self.progress = False  # an epoch or an evaluation ended before the limit in this process
        self.mark, self.first, self.trained = 0.0, True, False
        self.failed = False  # a run failed in this process (its time is not the data's, nor the limit too short)

    def left(self) -> float | None:
        """Seconds until the limit (negative once past it); None without a limit."""
        return None if self.deadline is None else self.deadline - clock()

    def waited_out(self, exp: Experiment, waiting_for: str) -> TimeLimitReached:
        """The stop when the limit came while waiting for another process (training ``exp`` or its surrogate):
        not too short, as that process goes on (the same command later finds its run finished or takes it over)."""
        return TimeLimitReached(f"time limit {fmt_duration(self.limit)} reached while waiting for {waiting_for} "
                                f"(another process on this --out): stopped waiting; run {exp.run_id} was not trained "
                                "here")

    def _timings(self, out: Path) -> Timings:
        if self.timings is None or self.timings.out != out:
            self.timings = Timings(out)
        return self.timings

    def _need(self, exp: Experiment, out: Path, done: int, every: int) -> tuple[float, str]:
        """Expected seconds of the next piece of ``exp`` that ends at a checkpoint (0 when never measured)."""
        per_epoch, per_eval, _ = self._timings(out).estimate(exp, environment(resolve_device(exp.device)))
        if done < exp.epochs:
            n = next_checkpoint(done, exp.epochs, every) - done
            what = f"epoch {done + 1}" if n == 1 else f"epochs {done + 1}-{done + n} (to its next checkpoint)"
            return (per_epoch or 0.0) * n, what
        return per_eval or 0.0, "its final evaluation"

    def _stop(self, now: float, exp: Experiment, need: float, what: str, where: str) -> TimeLimitReached:
        left = self.deadline - now
        if need == 0:  # never timed: stopped only because the limit has already passed
            return TimeLimitReached(f"time limit {fmt_duration(self.limit)} reached {fmt_duration(-left)} ago, "
                                    f"{where}, {fmt_duration(now - self.started)} after the start"
                                    + ("" if self.progress else " (the run(s) that failed took it: nothing was "
                                       "trained)" if self.failed else " (loading the data took it all: nothing was "
                                       "trained)"), too_short=not self.progress)
        if self.progress:
            return TimeLimitReached(f"time limit {fmt_duration(self.limit)} reached: stopped {where}; {what} of run "
                                    f"{exp.run_id} would take ~{fmt_duration(need)} and "
                                    + (f"{fmt_duration(left)} are left" if left >= 0 else
                                       f"the limit passed {fmt_duration(-left)} ago"))
        before = now - self.started
        went = "loading data and the run(s) that failed" if self.failed else "loading data and earlier runs"
        return TimeLimitReached(
            f"the time limit {fmt_duration(self.limit)} is shorter than one piece of work: {what} of run "
            f"{exp.run_id} takes ~{fmt_duration(need)} (measured under {environment(resolve_device(exp.device))}) "
            f"and {fmt_duration(before)} went before it ({went}); nothing was trained in this "
            f"time, so the same command would not progress either: raise --time-limit above "
            f"~{fmt_duration(before + need)}", too_short=True)

    def before_run(self, exp: Experiment, out: Path, every: int, done: int | None) -> None:
        """Called before a run starts or resumes (``done``: its checkpoint's epoch); raises when its next piece
        is not expected to end before the limit."""
        now = self.mark = clock()
        self.first, self.trained = True, False
        if self.deadline is None:
            return
        need, what = self._need(exp, out, done or 0, every)
        if now + need > self.deadline:
            raise self._stop(now, exp, need, what, f"before run {exp.run_id}" + (f" (at epoch {done})" if done else ""))

    def hook(self, exp: Experiment, out: Path, every: int):
        """The epoch hook of one run: record the epoch, then stop after a checkpoint the next piece won't fit."""

        def after_epoch(done: int, model) -> None:
            now = clock()
            env = environment(resolve_device(exp.device))
            self._timings(out).record(exp, done, now - self.mark, self.first, env)
            seconds, setup = now - self.mark, self.first
            self.mark, self.first, self.trained = now, False, True
            if self.deadline is None or (done % every and done < exp.epochs):
                return  # no limit, or not checkpointed: not a place to stop
            if now > self.deadline and not self.progress:
                raise TimeLimitReached(
                    f"the time limit {fmt_duration(self.limit)} is shorter than one epoch: epoch {done} of run "
                    f"{exp.run_id} took {fmt_duration(seconds)}{' (with the run set-up)' if setup else ''} and "
                    f"ended {fmt_duration(now - self.deadline)} past the limit, {fmt_duration(now - self.started)} "
                    "after the start (it is checkpointed); raise --time-limit above "
                    f"~{fmt_duration(now - self.started)}",
                    too_short=True)
            self.progress = self.progress or now <= self.deadline
            need, what = self._need(exp, out, done, every)
            if now + need > self.deadline:
                raise self._stop(now, exp, need, what, f"after epoch {done} of run {exp.run_id} (checkpointed)")

        return after_epoch

    def after_run(self, exp: Experiment, out: Path, status: str) -> None:
        """Record a finished run's final evaluation (from its last epoch, or its start if none trained here)."""
        now = clock()
        self.failed = self.failed or status == "failed"
        if status == "done":
            self._timings(out).record(exp, None, now - self.mark, not self.trained,
                                      environment(resolve_device(exp.device)))
            self.progress = self.progress or self.deadline is None or now <= self.deadline
        self.mark = now
