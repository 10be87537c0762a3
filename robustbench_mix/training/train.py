"""The training loop: SGD with momentum, step/cosine schedules, on-device augmentation, bf16 autocast and
channels_last on CUDA, atomic checkpoints holding every RNG state, and resume.

The loop never synchronizes with the host inside an epoch: the loss is summed on the device and read
once per epoch (which is also where a non-finite loss is caught).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from robustbench_mix.core.device import autocast_for, device_name
from robustbench_mix.core.errors import RunFailed
from robustbench_mix.core.torchfile import CHECKPOINT, load_checkpoint, save_checkpoint
from robustbench_mix.data.augment import AUGMENTATIONS
from robustbench_mix.data.prepare import Prepared, prep
from robustbench_mix.evaluation.evaluators import curve_rows, finish
from robustbench_mix.experiment.experiment import DEFAULT_OPTIONS, Experiment, RunOptions
from robustbench_mix.methods import method_for
from robustbench_mix.training.speed import Speed

# a mean epoch loss this many times that of a uniform guess (ln K) is a diverged run, not a slow one
DIVERGED = 100
Hook = Callable[[int, torch.nn.Module], None]


def lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    """The paper's step schedule divides lr by 10 at 50% and 75% of training; cosine anneals to 0."""
    if schedule == "step":
        return lambda s: 0.1 ** ((s >= 0.5 * total_steps) + (s >= 0.75 * total_steps))
    if schedule == "cosine":
        return lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total_steps) / total_steps))
    return lambda s: 1.0


def make_optimizer(model, exp):
    # Weight decay on every parameter, batch-norm included, as in the authors' CIFAR code. On CUDA the
    # fused kernel updates all parameters in a few launches instead of several per tensor.
    fused = next(model.parameters()).is_cuda
    return torch.optim.SGD(model.parameters(), lr=exp.lr, momentum=exp.momentum,
                           weight_decay=exp.weight_decay, fused=fused or None)


def environment(device: torch.device) -> str:
    """What changes a run's numbers without changing its id: the device (with the CPU's thread count) and torch."""
    return f"{device_name(device)}, torch {torch.__version__}"


def checkpoint_environments(path: Path) -> list[list]:
    """[first epoch, environment] for each stretch of a checkpointed run trained in one environment."""
    return [list(e) for e in load_checkpoint(path, torch.device("cpu")).get("environments", [])]


def mixed_environments(environments: list[list], epochs: int) -> str:
    """'' for a run trained in one environment, else 'epochs 1-10 under A; epochs 11-30 under B'."""
    if len(environments) < 2:
        return ""
    ends = [e[0] - 1 for e in environments[1:]] + [epochs]
    return "; ".join(f"epochs {first}-{end} under {env}" for (first, env), end in zip(environments, ends, strict=True))


@dataclass
class TrainState:
    """Everything a checkpoint holds: weights, optimizer, schedule, every random generator, the curves so far,
    the epoch, and the environments (device, threads, torch) the run was trained in."""

    exp: Experiment
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    rng: np.random.Generator
    data_sha: str
    curves: list = field(default_factory=list)
    epoch: int = 0
    environments: list = field(default_factory=list)  # [first epoch, environment] for each stretch

    @classmethod
    def new(cls, exp, model, data: Prepared, steps: int) -> TrainState:
        opt = make_optimizer(model, exp)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(exp.schedule, steps * exp.epochs))
        gen = torch.Generator(device=data.train_x.device)
        gen.manual_seed(exp.seed)
        return cls(exp, model, opt, sched, gen, np.random.default_rng([exp.seed, 1]), data.data_sha)

    def restore(self, path: Path, device: torch.device) -> None:
        """Resume from ``path``, refusing a checkpoint of another run or of other data."""
        ck = load_checkpoint(path, device)
        if ck.get("run_id") != self.exp.run_id:
            raise RunFailed(f"checkpoint {str(path)!r} belongs to run {ck.get('run_id')}, not {self.exp.run_id}")
        if ck.get("data_sha") and self.data_sha and ck["data_sha"] != self.data_sha:
            raise RunFailed(f"checkpoint {str(path)!r} was trained on other data (fingerprint {ck['data_sha']}, "
                            f"now {self.data_sha}): the data set changed; rerun with --force to start afresh")
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.gen.set_state(ck["generator"].cpu())
        self.rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"].cpu())
        if device.type == "cuda" and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), device)
        self.curves, self.epoch = ck["curves"], ck["epoch"]
        self.environments = [list(e) for e in ck.get("environments", [])]

    def enter(self, env: str) -> None:
        """Record where training (re)starts; warn when a resumed run continues in another environment."""
        last = self.environments[-1][1] if self.environments else None
        if last is not None and last != env and self.epoch < self.exp.epochs:
            print(f"warning: run {self.exp.run_id} resumes at epoch {self.epoch + 1} from a checkpoint written under "
                  f"{last}, and continues under {env}: thread count, device and torch version change the numbers, "
                  "so this run's numbers mix both (said in its rows' resumed_from column)", file=sys.stderr)
        if last != env:
            self.environments.append([self.epoch + 1, env])

    def save(self, path: Path) -> None:
        device = self.gen.device
        save_checkpoint({
            "run_id": self.exp.run_id, "config": self.exp.to_json(), "epoch": self.epoch, "curves": self.curves,
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "generator": self.gen.get_state(), "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "environments": self.environments, "data_sha": self.data_sha,
        }, path)


def epoch_loss(loss_sum: torch.Tensor, steps: int, epoch: int, num_classes: int) -> float:
    """The epoch's mean training loss (the one host sync of the epoch); a non-finite or diverged one fails the run."""
    mean = (loss_sum / steps).item()
    if not math.isfinite(mean):
        raise RunFailed(f"non-finite training loss ({mean}) in epoch {epoch}")
    if mean > DIVERGED * math.log(num_classes):
        raise RunFailed(f"training diverged: mean loss {mean:.3g} in epoch {epoch}, over {DIVERGED}x the loss of a "
                        f"uniform guess (ln {num_classes}); lower --lr")
    return mean


def fit(exp, data: Prepared, model: torch.nn.Module, *, run_dir: Path | None = None,
        options: RunOptions = DEFAULT_OPTIONS, hooks: tuple[Hook, ...] = ()) -> list[dict]:
    """Train ``model`` in place, resuming from ``run_dir``'s checkpoint; return the curve rows (each with its
    ``epoch``): the training loss every epoch, the evaluation curves every ``eval_every`` epochs."""
    device, n, bs = data.train_x.device, len(data.train_y), exp.batch_size
    steps = n // bs  # the last partial batch is dropped: fixed shapes, as the paper's loader
    if steps < 1:
        raise RunFailed(f"batch size {bs} is larger than the training set ({n} examples)")
    method = method_for(exp, data.train_x.shape[-2:])  # its options and the image size bound
    augment, speed = AUGMENTATIONS[data.augment], Speed(options, device)
    state = TrainState.new(exp, model, data, steps)
    ckpt = run_dir / CHECKPOINT if run_dir is not None else None
    if ckpt is not None and ckpt.exists():
        state.restore(ckpt, device)
    state.enter(environment(device))
    train_model = speed.model(model)

    def train_step(idx, aug, draws) -> torch.Tensor:
        """One SGD step on the batch ``idx`` with the given random draws; returns the detached loss."""
        x = prep(augment.apply(data.train_x[idx], *aug))
        with autocast_for(device, cache=speed.cache):
            loss = method.loss(train_model, x, data.train_y[idx], data.num_classes, *draws)
        state.opt.zero_grad(set_to_none=True)
        loss.backward()
        state.opt.step()
        return loss.detach()

    step, context = speed.step(train_step, model, state.opt, prep(data.train_x[:bs]), state.epoch < exp.epochs)
    with context:
        bar = tqdm(range(state.epoch, exp.epochs), initial=state.epoch, total=exp.epochs, leave=False, unit="ep",
                   disable=None if options.progress else True,  # None: off when stderr is not a terminal
                   desc=f"{exp.run_id} {exp.method}")
        for epoch in bar:
            model.train()
            perm = torch.randperm(n, device=device, generator=state.gen)
            loss_sum = torch.zeros((), device=device)
            for b in range(steps):  # the draws in their fixed order: the batch, crops and flips, the method's
                aug = augment.draw(bs, device, state.gen)
                loss_sum += step(perm[b * bs:(b + 1) * bs], aug, method.draw(bs, exp.alpha, state.rng, state.gen,
                                                                             device))
                state.sched.step()
            state.epoch = done = epoch + 1
            mean_loss = epoch_loss(loss_sum, steps, done, data.num_classes)
            bar.set_postfix(loss=f"{mean_loss:.3f}")
            rows = [{"split": "train", "attack": "none", "eps": 0.0, "metric": "loss", "value": mean_loss}]
            if exp.eval_every and done % exp.eval_every == 0 and done < exp.epochs:  # the last: final evaluation
                rows += finish(curve_rows(model, data, options.eval_batch_size))
            state.curves += [dict(r, epoch=done) for r in rows]
            if ckpt is not None and (done % options.checkpoint_every == 0 or done == exp.epochs):
                state.save(ckpt)
            for hook in hooks:
                hook(done, model)
        bar.close()
    return state.curves
