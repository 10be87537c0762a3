"""One experiment end to end: prepare data on the device, build the model, train, evaluate -> rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustbench_mix.core.device import channels_last, resolve_device
from robustbench_mix.core.errors import RunFailed
from robustbench_mix.core.torchfile import load_checkpoint
from robustbench_mix.data.base import ImageData
from robustbench_mix.data.prepare import prepare
from robustbench_mix.evaluation.evaluators import final_rows
from robustbench_mix.experiment.experiment import DEFAULT_OPTIONS, Experiment, RunOptions
from robustbench_mix.models.families import build
from robustbench_mix.training.train import CHECKPOINT, Hook, fit


def new_model(exp: Experiment, data: ImageData, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(exp.seed)  # the initialization is part of what the seed fixes
    mean, std = data.channel_stats()
    model = build(exp.model, in_shape=data.shape, num_classes=data.num_classes, mean=mean, std=std,
                  dropout=exp.dropout).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last(device) else model


def load_trained(exp: Experiment, data: ImageData, run_dir: Path) -> torch.nn.Module:
    """The final weights of a finished run, from its last checkpoint."""
    device = resolve_device(exp.device)
    if not (run_dir / CHECKPOINT).exists():
        raise RunFailed(f"run {exp.run_id} ({exp.method}, seed {exp.seed}) has no checkpoint in {run_dir}: "
                        "it failed or was never trained")
    ck = load_checkpoint(run_dir / CHECKPOINT, device)
    if ck.get("epoch") != exp.epochs:
        raise RunFailed(f"run {exp.run_id} has not finished training (checkpoint at epoch {ck.get('epoch')})")
    model = new_model(exp, data, device)
    model.load_state_dict(ck["model"])
    return model.eval()


def run_experiment(exp: Experiment, data: ImageData, *, run_dir: Path | None,
                   options: RunOptions = DEFAULT_OPTIONS, hooks: tuple[Hook, ...] = (),
                   surrogate: torch.nn.Module | None = None) -> list[dict]:
    """Train and evaluate; rows carry ``epoch`` (curve rows at their epoch, final rows at ``exp.epochs``).

    ``surrogate`` (a trained model) adds black-box rows: attacks crafted on it, evaluated on this model.
    """
    device = resolve_device(exp.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick each convolution's fastest kernel once
    prepared = prepare(data, exp.noise, exp.val_fraction, exp.seed, device, exp.train_samples)
    if run_dir is not None and exp.noise > 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        np.save(run_dir / "corrupted_index.npy", prepared.corrupted_index)  # which labels were replaced
    model = new_model(exp, data, device)
    curves = fit(exp, prepared, model, run_dir=run_dir, options=options, hooks=hooks)
    final = final_rows(model, prepared, exp, options.eval_batch_size, surrogate=surrogate, progress=options.progress)
    return curves + [dict(r, epoch=exp.epochs) for r in final]
