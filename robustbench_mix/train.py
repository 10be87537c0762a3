"""The training loop: SGD with momentum, step/cosine schedules, on-device augmentation, bf16 autocast and
channels_last on CUDA, atomic checkpoints holding every RNG state, and resume.

The loop never synchronizes with the host inside an epoch: the loss is summed on the device and read
once per epoch (which is also where a non-finite loss is caught).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import AUGMENTATIONS, Prepared
from .errors import RunFailed, UsageError
from .evaluate import autocast_for, curve_rows, finish, prep
from .methods import METHODS
from .results import atomic_file, device_name

CHECKPOINT = "checkpoint.pt"
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


def state_digest(obj) -> str:
    """sha256 of everything in a checkpoint: tensors by their bytes, the rest by its repr, in a fixed order."""
    h = hashlib.sha256()

    def walk(x):
        if torch.is_tensor(x):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(x.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                walk(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"L{len(x)}".encode())
            for v in x:
                walk(v)
        else:
            h.update(repr(x).encode())

    walk(obj)
    return h.hexdigest()


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomically (a reader sees the old file or the new one), with a checksum of the content that
    :func:`load_checkpoint` verifies. A failed write (disk full, file-size limit) removes its temporary
    file and fails the run, naming the cause."""
    try:
        with atomic_file(path, "wb") as f:
            torch.save({**state, "checksum": state_digest(state)}, f)
    except OSError as e:
        raise RunFailed(f"could not write checkpoint {str(path)!r} ({e.strerror or e}); free space or raise the "
                        "file-size limit, then rerun the same command to resume from the last checkpoint") from e


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


def load_checkpoint(path: Path, device: torch.device) -> dict:
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, wrong format: all unreadable
        raise RunFailed(f"checkpoint {str(path)!r} is unreadable ({e.__class__.__name__}: {e}); "
                        f"delete it to restart that run, or rerun with --force") from e
    if not isinstance(ck, dict):
        raise RunFailed(f"checkpoint {str(path)!r} is not a checkpoint of this suite; delete it or rerun with --force")
    checksum = ck.pop("checksum", None)  # checkpoints written before 0.2.0 have none
    if checksum is not None and state_digest(ck) != checksum:
        raise RunFailed(f"checkpoint {str(path)!r} fails its checksum: its content changed after it was written "
                        "(a damaged disk or copy); delete it to restart that run, or rerun with --force")
    return ck


@contextlib.contextmanager
def cuda_graphed(model: torch.nn.Module, sample: torch.Tensor):
    """The model's training forward and backward replayed as two CUDA graphs while the block runs.

    At the paper's batch of 128 a step of PreAct ResNet-18 launches hundreds of small kernels and the
    GPU waits for the host; a graph replay launches them all at once. ``torch.cuda.make_graphed_callables``
    swaps ``model.forward`` for the replay in training mode only (evaluation stays eager). Its warm-up and
    capture passes update batch-norm statistics, so the buffers are put back afterwards, and the
    original forward is restored on exit. ``sample`` is copied: the graph keeps it as its input buffer.
    """
    saved = [b.detach().clone() for b in model.buffers()]
    was_training = model.training
    model.train()
    with autocast_for(sample.device, cache=False):  # cached casts cannot be graphed
        torch.cuda.make_graphed_callables(model, (sample.detach().clone(),))
    with torch.no_grad():
        for b, s in zip(model.buffers(), saved, strict=True):
            b.copy_(s)
    model.train(was_training)
    try:
        yield model
    finally:
        model.__dict__.pop("forward", None)  # back to the class's eager forward


GRAPH_MODES = ("model", "step")


def graph_mode_of(cuda_graphs: bool | str) -> str | None:
    """``cuda_graphs``: False/None (eager), True or 'model' (:func:`cuda_graphed`), 'step' (:class:`GraphedStep`)."""
    if not cuda_graphs:
        return None
    mode = "model" if cuda_graphs is True else cuda_graphs
    if mode not in GRAPH_MODES:
        raise UsageError(f"--cuda-graphs {mode!r}: expected one of {', '.join(GRAPH_MODES)}")
    return mode


def _buffers(value, device: torch.device):
    if isinstance(value, tuple):
        return tuple(_buffers(v, device) for v in value)
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, float):
        return torch.tensor(value, dtype=torch.float32, device=device)
    raise TypeError(f"a graphed step takes tensors, floats and tuples of them, not {type(value).__name__}")


def _fill(buffer, value) -> None:
    if isinstance(buffer, tuple):
        for b, v in zip(buffer, value, strict=True):
            _fill(b, v)
    elif torch.is_tensor(value):
        if value.shape != buffer.shape:  # copy_ would broadcast a wrong shape silently
            raise RuntimeError(f"graphed step: argument of shape {tuple(value.shape)} for a buffer of "
                               f"shape {tuple(buffer.shape)}")
        buffer.copy_(value)
    else:
        buffer.fill_(value)


class GraphedStep:
    """``step(*args)`` captured once as a CUDA graph and then replayed, each call's arguments copied into
    the graph's input buffers: the whole training step (gather, augmentation, mixing, forward, backward,
    optimizer update) becomes one launch, where eager PyTorch launches hundreds of small kernels from
    Python and, at the paper's batch of 128, the GPU waits for them.

    The first ``warmup`` calls run eagerly on a side stream, as capture requires (cuDNN picks its
    algorithms, the optimizer creates its momentum buffers); they are real training steps. Arguments
    are tensors (same shape every call), floats (held as 0-dim float32 tensors) and tuples of them.
    Anything else the step reads is frozen into the graph unless it keeps its address and is updated in
    place: parameters, the data set on the device and a tensor learning rate (:func:`tensor_lr`) are;
    a Python float learning rate would not be. Returns the step's output, overwritten by the next replay.
    """

    def __init__(self, step: Callable, warmup: int = 3):
        self.step, self.warmup, self.calls = step, warmup, 0
        self.graph = None

    def __call__(self, *args):
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            return self._eager(*args)
        if self.graph is None:
            self.inputs = _buffers(args, self._device())
            try:
                self.graph, self.out = self._capture()
            except RuntimeError as e:  # an op that cannot be captured: fail this run, say how to avoid it
                raise RunFailed(f"capturing the training step as a CUDA graph failed ({e.__class__.__name__}: "
                                f"{e}); rerun without --cuda-graphs step (or with --cuda-graphs model)") from e
        else:
            _fill(self.inputs, args)
        self.graph.replay()
        return self.out

    # the CUDA specifics, apart so that a test can stand in for them on the CPU
    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device())

    def _eager(self, *args):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self.step(*args)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _capture(self):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records the kernels without running them
            out = self.step(*self.inputs)
        return graph, out


def graphs_supported(device: torch.device) -> bool:
    """CUDA graphs exist on CUDA only; elsewhere ``cuda_graphs`` is ignored (a test stands in for this)."""
    return device.type == "cuda"


def tensor_lr(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """Hold each group's learning rate in a tensor on ``device``: the scheduler then updates it in place
    (``fill_``) and a captured optimizer step reads the current value instead of a frozen one."""
    for group in opt.param_groups:
        if not torch.is_tensor(group["lr"]):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)


# torch.compile modes that capture CUDA graphs of their own, which cannot nest in the graphed step's
GRAPHING_COMPILE_MODES = ("reduce-overhead", "max-autotune")


def check_speed_options(compile: bool | str, cuda_graphs: bool | str) -> None:
    """--compile and --cuda-graphs step combine (the compiled model inside the one graph of the step);
    the model graphs replace the very forward torch.compile would compile, so those two exclude each other."""
    mode = graph_mode_of(cuda_graphs)
    if compile and mode == "model":
        raise UsageError("--compile and --cuda-graphs model exclude each other (both replace the model's forward); "
                         "use --compile --cuda-graphs step, or torch.compile's own CUDA graphs (mode reduce-overhead)")
    if mode and compile in GRAPHING_COMPILE_MODES:
        raise UsageError(f"torch.compile mode {compile!r} makes CUDA graphs of its own, which cannot run inside "
                         "--cuda-graphs step; use mode default or max-autotune-no-cudagraphs")


def fit(exp, data: Prepared, model: torch.nn.Module, *, run_dir: Path | None = None,
        checkpoint_every: int = 1, eval_batch_size: int = 1000, progress: bool = True,
        hooks: tuple[Hook, ...] = (), compile: bool | str = False, cuda_graphs: bool | str = False) -> list[dict]:
    """Train ``model`` in place; return the curve rows (each with its ``epoch``) recorded on the way.

    ``compile`` runs the training forward/backward through ``torch.compile`` (evaluation uses the
    eager model, which shares the parameters); a string is torch.compile's ``mode``. ``cuda_graphs``
    replays them as CUDA graphs, True or 'model' the forward and backward (:func:`cuda_graphed`), 'step'
    the whole training step (:class:`GraphedStep`, compiled model included); CUDA only, ignored on other
    devices. :func:`check_speed_options` says which combine.
    """
    check_speed_options(compile, cuda_graphs)
    device = data.train_x.device
    graph_mode = graph_mode_of(cuda_graphs) if graphs_supported(device) else None
    graph_step = graph_mode == "step"
    n = len(data.train_y)
    steps = n // exp.batch_size  # the last partial batch is dropped: fixed shapes, as the paper's loader
    if steps < 1:
        raise RunFailed(f"batch size {exp.batch_size} is larger than the training set ({n} examples)")
    method = METHODS.get(exp.method)
    mode = compile if isinstance(compile, str) else None
    # static shapes: every training batch has the same size, and a second shape must not turn the
    # compiled code dynamic (slower) as torch.compile's automatic dynamic shapes would
    train_model = torch.compile(model, mode=mode, dynamic=False) if compile else model
    augment = AUGMENTATIONS[data.augment]
    opt = make_optimizer(model, exp)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(exp.schedule, steps * exp.epochs))
    gen = torch.Generator(device=device)
    gen.manual_seed(exp.seed)
    rng = np.random.default_rng([exp.seed, 1])
    curves: list[dict] = []
    start = 0
    env = environment(device)
    environments: list[list] = []  # [first epoch, environment] each time the run started or resumed elsewhere
    ckpt_path = run_dir / CHECKPOINT if run_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, device)
        if ck.get("run_id") != exp.run_id:
            raise RunFailed(f"checkpoint {str(ckpt_path)!r} belongs to run {ck.get('run_id')}, not {exp.run_id}")
        if ck.get("data_sha") and data.data_sha and ck["data_sha"] != data.data_sha:
            raise RunFailed(f"checkpoint {str(ckpt_path)!r} was trained on other data (fingerprint {ck['data_sha']}, "
                            f"now {data.data_sha}): the data set changed; rerun with --force to start afresh")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"].cpu())
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"].cpu())
        if device.type == "cuda" and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), device)
        curves, start = ck["curves"], ck["epoch"]
        environments = [list(e) for e in ck.get("environments", [])]
        if environments and environments[-1][1] != env and start < exp.epochs:
            print(f"warning: run {exp.run_id} resumes at epoch {start + 1} from a checkpoint written under "
                  f"{environments[-1][1]}, and continues under {env}: thread count, device and torch version "
                  "change the numbers, so this run's numbers mix both (said in its rows' resumed_from column)",
                  file=sys.stderr)
    if not environments or environments[-1][1] != env:
        environments.append([start + 1, env])

    def train_step(idx, aug, draws) -> torch.Tensor:
        """One SGD step on the batch ``idx`` with the given random draws; returns the detached loss."""
        x = prep(augment.apply(data.train_x[idx], *aug))
        with autocast_for(device, cache=not graph_step):  # cached casts cannot be graphed
            loss = method.loss(train_model, x, data.train_y[idx], data.num_classes, *draws)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    graphs = contextlib.nullcontext()
    step = train_step
    if graph_mode == "model" and start < exp.epochs:
        graphs = cuda_graphed(model, prep(data.train_x[:exp.batch_size]))
    elif graph_step:
        tensor_lr(opt, device)
        step = GraphedStep(train_step)
    # graphs, streams and buffers belong to the current CUDA device: make it the run's (cuda:N)
    on_device = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with on_device, graphs:
        bar = tqdm(range(start, exp.epochs), initial=start, total=exp.epochs, leave=False, unit="ep",
                   disable=None if progress else True,  # None: off when stderr is not a terminal
                   desc=f"{exp.run_id} {exp.method}")
        for epoch in bar:
            model.train()
            perm = torch.randperm(n, device=device, generator=gen)
            loss_sum = torch.zeros((), device=device)
            for b in range(steps):
                # the random draws, in the order they have always been made: crops and flips, then the method's
                idx = perm[b * exp.batch_size:(b + 1) * exp.batch_size]
                aug = augment.draw(exp.batch_size, device, gen)
                loss_sum += step(idx, aug, method.draw(exp.batch_size, exp.alpha, rng, gen, device))
                sched.step()
            mean_loss = (loss_sum / steps).item()  # the one host sync of the epoch
            done = epoch + 1
            if not math.isfinite(mean_loss):
                raise RunFailed(f"non-finite training loss ({mean_loss}) in epoch {done}")
            if mean_loss > DIVERGED * math.log(data.num_classes):
                raise RunFailed(f"training diverged: mean loss {mean_loss:.3g} in epoch {done}, over {DIVERGED}x the "
                                f"loss of a uniform guess (ln {data.num_classes}); lower --lr")
            bar.set_postfix(loss=f"{mean_loss:.3f}")
            # the training loss of every epoch (already on the host); the evaluation curves every eval_every
            # epochs, except the last, which the final evaluation measures
            rows = [{"split": "train", "attack": "none", "eps": 0.0, "metric": "loss", "value": mean_loss}]
            if exp.eval_every and done % exp.eval_every == 0 and done < exp.epochs:
                rows += finish(curve_rows(model, data, eval_batch_size))
            curves += [dict(r, epoch=done) for r in rows]
            if ckpt_path is not None and (done % checkpoint_every == 0 or done == exp.epochs):
                ckpt_path.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint({
                    "run_id": exp.run_id, "epoch": done, "curves": curves,
                    "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "generator": gen.get_state(), "numpy_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "environments": environments, "data_sha": data.data_sha,
                }, ckpt_path)
            for hook in hooks:
                hook(done, model)
        bar.close()
    return curves
