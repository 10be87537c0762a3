"""The speed paths of training, behind one seam (:class:`Speed`): torch.compile and CUDA graphs.

``fit`` asks a :class:`Speed` for the model to train through (compiled or not), for the step to call (eager,
or the whole step captured as one CUDA graph) and for the context to train in (the model's forward and
backward as CUDA graphs, on the run's CUDA device); it never branches on a speed flag itself. The whole-model
graphs were timed on a GPU; the whole-step graph and torch.compile are not timed on a GPU yet (experiments/README.md
says which figures exist). On the CPU the graphs are ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from robustbench_mix.core.device import autocast_for
from robustbench_mix.core.errors import RunFailed, UsageError
from robustbench_mix.experiment.experiment import RunOptions


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


class Speed:
    """What the run's options ask of the training step, resolved once for its device."""

    def __init__(self, options: RunOptions, device: torch.device):
        check_speed_options(options.compile, options.cuda_graphs)
        self.device, self.compile = device, options.compile
        self.mode = graph_mode_of(options.cuda_graphs) if graphs_supported(device) else None
        self.cache = self.mode != "step"  # autocast's cached weight casts cannot be captured in a graph

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training step calls: ``model`` itself, or compiled with static shapes (every training
        batch has one size; a second shape must not turn the compiled code dynamic, which is slower)."""
        if not self.compile:
            return model
        return torch.compile(model, mode=self.compile if isinstance(self.compile, str) else None, dynamic=False)

    def step(self, train_step: Callable, model: torch.nn.Module, opt: torch.optim.Optimizer,
             sample: torch.Tensor, training_left: bool):
        """(the step to call, the context to train in): eager, the model graphed, or the whole step graphed."""
        on_device = torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()
        if self.mode == "model" and training_left:
            return train_step, _both(on_device, cuda_graphed(model, sample))
        if self.mode == "step":
            tensor_lr(opt, self.device)  # the captured optimizer step must read the scheduler's current value
            return GraphedStep(train_step), on_device
        return train_step, on_device


@contextlib.contextmanager
def _both(outer, inner):
    """Graphs, streams and buffers belong to the current CUDA device: enter the run's (cuda:N) first."""
    with outer, inner:
        yield
