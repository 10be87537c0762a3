"""How a long evaluation says what it does. On a terminal: tqdm bars, as before. Anywhere else (stderr to a file,
nohup, a Slurm job), where bars are not drawn: one line per stage, attack and corruption on the logger
``robustbench_mix.progress`` (to stderr), with counts and elapsed time. Either way each attack announces its
expected cost once its first batch is done (that batch's time times the batches left), before the rest runs; an
attack in one batch, before it starts (one gradient step's time times the steps it may take).
``Progress(enabled=False)`` says nothing."""

from __future__ import annotations

import logging
import sys
import time

import torch
from tqdm.auto import tqdm

from robustbench_mix.core.units import Norm, fmt_eps

LOGGER = logging.getLogger("robustbench_mix.progress")


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to ``sys.stderr`` as it is at each line (redirected or captured after import too)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


if not LOGGER.handlers:  # its own handler, so lines show without any logging setup; replace it to route them
    _handler = _CurrentStderr()
    _handler.setFormatter(logging.Formatter("robustbench_mix: %(message)s"))
    LOGGER.addHandler(_handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


def _terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr (pythonw), or a closed one
        return False


def seconds(s: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min: what a log reader takes in at a glance."""
    if s < 60:
        return f"{s:.2g} s" if s < 1 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def attack_label(attack: str, norm: str, e: float) -> str:
    """'pgd eps 8/255' (``e`` in /255), 'pgd_l2 radius 0.5' (an L2 radius); black-box crafted on a surrogate."""
    name = attack.removeprefix("bb:") + (" (black-box)" if attack.startswith("bb:") else "")
    return f"{name} radius {e:g}" if norm == Norm.L2 else f"{name} eps {fmt_eps(e)}"


class Progress:
    """Bars on a terminal (``enabled``); ``log``: lines where there is no terminal. ``Progress(True)`` is the
    suite's old behaviour (bars only); ``evaluate()`` passes ``log=True``."""

    def __init__(self, enabled: bool = True, log: bool = False):
        self.enabled, self.terminal = bool(enabled), _terminal()
        self.log = self.enabled and log and not self.terminal
        self.start = time.perf_counter()

    def elapsed(self) -> str:
        return seconds(time.perf_counter() - self.start)

    def sync(self, device: torch.device) -> None:
        """Wait for the device where a line's time is about to be read (CUDA runs ahead of the host)."""
        if self.log and device.type == "cuda":
            torch.cuda.synchronize(device)

    def bar(self, jobs, desc: str, unit: str):
        return tqdm(jobs, desc=desc, unit=unit, leave=False, disable=None if self.enabled else True)

    def say(self, message: str, on_terminal: bool = False) -> None:
        """A line in a log; on a terminal too when ``on_terminal`` (the cost estimates), above the bars."""
        if self.log:
            LOGGER.info(message)
        elif on_terminal and self.enabled and self.terminal:
            tqdm.write(f"robustbench_mix: {message}", file=sys.stderr)

    @property
    def estimating(self) -> bool:
        """Whether an estimate would be shown anywhere (what a probe of one gradient step is timed for)."""
        return self.enabled and (self.log or self.terminal)

    def attack(self, i: int, total: int, label: str, images: int, batches: int,
               step: tuple[float, int] | None = None):
        """What one attack job reports: a callback for its first batch (the estimate), and its end line. A job of
        one batch is estimated before it starts from ``step``: (seconds of one forward-backward pass over its
        images, the most such passes the attack takes): a bound on its gradient computation, not on its bookkeeping
        (AutoAttack on a digits MLP: 1.3 s of gradient steps at most, 6.7 s in all)."""
        t0 = time.perf_counter()
        head = f"attack {i}/{total}: {label} on {images} images"
        if batches == 1 and step is not None:
            took, n = step
            self.say(f"{head} in one batch: up to {n} gradient steps of {seconds(took)} each, so up to "
                     f"~{seconds(took * n)} of gradient computation (less where points break early; an attack's "
                     "own bookkeeping comes on top, most on a small model)", on_terminal=True)
        elif batches == 1:
            self.say(f"{head} in one batch (no estimate before it ends; a smaller batch_size gives one)")

        def first_batch(took: float) -> None:
            if batches > 1:
                self.say(f"{head}: first of {batches} batches took {seconds(took)}, expected "
                         f"{seconds(took * batches)} for this attack", on_terminal=True)

        def done() -> None:
            self.say(f"attack {i}/{total}: {label} done in {seconds(time.perf_counter() - t0)} "
                     f"(elapsed {self.elapsed()})")

        return first_batch, done


def as_progress(progress) -> Progress:
    """A Progress as given, or a bool: bars on a terminal (True) or nothing (False), no log lines."""
    return progress if isinstance(progress, Progress) else Progress(bool(progress))
