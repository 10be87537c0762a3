"""What is checked before any training: every run's values, the sizes against the data, the surrogates."""

from __future__ import annotations

import math
from pathlib import Path

from robustbench_mix.core.atomic import check_writable
from robustbench_mix.core.device import resolve_device
from robustbench_mix.core.errors import UsageError
from robustbench_mix.data.base import ImageData, check_dataset_spec, downloads
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.grids import surrogate_of
from robustbench_mix.experiment.validation import validate
from robustbench_mix.methods import METHODS
from robustbench_mix.models.families import check_input
from robustbench_mix.training.speed import check_speed_options


def check_runs(runs: list[Experiment], args) -> None:
    """Everything that can be checked before training: names, ranges, device, folders."""
    for exp in runs:
        validate(exp)
    for spec in dict.fromkeys(r.dataset for r in runs):
        check_dataset_spec(spec)
        if downloads(spec):
            check_writable(Path(args.data_dir), "--data-dir")
    for dev in dict.fromkeys(r.device for r in runs):
        if args.executor == "local":  # Ray's workers may have the GPUs this machine lacks
            resolve_device(dev)
    for flag, v in (("--checkpoint-every", args.checkpoint_every), ("--eval-batch-size", args.eval_batch_size)):
        if v < 1:
            raise UsageError(f"{flag} {v} must be at least 1")
    check_speed_options(args.compile, args.cuda_graphs)  # before any training, as every check here
    if args.compile or args.cuda_graphs:
        eager_only = {r.method: METHODS.get(r.method).graph_reason for r in runs if not METHODS.get(r.method).graphable}
        if eager_only:
            why = "; ".join(f"{m}: {reason}" for m, reason in sorted(eager_only.items()))
            raise UsageError(f"method(s) {', '.join(sorted(eager_only))} cannot run inside --compile or --cuda-graphs "
                             f"({why}); run them without those flags, or run the other methods with them in a "
                             "separate command")


def check_sizes(exp: Experiment, data: ImageData) -> None:
    if exp.attack_samples > len(data.test_y):
        raise UsageError(f"--attack-samples {exp.attack_samples} is larger than the test set of {exp.dataset} "
                         f"({len(data.test_y)} images); use {len(data.test_y)} or less, or 0 for all of them")
    if exp.train_samples > len(data.train_y):
        raise UsageError(f"--train-samples {exp.train_samples} is larger than the training set of {exp.dataset} "
                         f"({len(data.train_y)} images); use {len(data.train_y)} or less, or 0 for all of them")
    # the diameter of the [0, 1] image cube: a larger L2 ball holds every image, as 255/255 does in L-infinity
    diameter = math.sqrt(math.prod(data.shape))
    for e in exp.eps_l2:
        if e > diameter:
            shape = "x".join(map(str, data.shape))
            raise UsageError(f"--eps-l2 {e:g} is larger than {diameter:.4g}, the L2 distance between an all-black "
                             f"and an all-white image of {exp.dataset} ({shape} values in [0, 1]), so the ball holds "
                             f"every image; give radii in [0, {diameter:.4g}]")
    n_all = exp.train_samples or len(data.train_y)
    n_train = n_all - int(round(exp.val_fraction * n_all))
    if exp.batch_size > n_train:
        raise UsageError(f"batch size {exp.batch_size} is larger than the training set of {exp.dataset} "
                         f"({n_train} examples after the validation split); use --batch-size {n_train} or less")


def speed_hint(runs: list[Experiment], on_cuda: bool, cuda_graphs: bool | str | None, compile: bool) -> str | None:
    """At small batches a GPU mostly waits for kernel launches; say so when nothing is set to avoid it."""
    small = sorted({r.batch_size for r in runs if r.batch_size <= 256})
    if on_cuda and small and not (cuda_graphs or compile):
        return (f"hint: at batch size {', '.join(map(str, small))} the GPU mostly waits for Python; --cuda-graphs "
                "trained PreAct ResNet-18 faster at batch 128 on the GPU measured (figures in experiments/README.md)")
    return None


def with_surrogates(runs: list[Experiment]) -> list[Experiment]:
    """The grid plus the ERM surrogates its black-box evaluations need, each surrogate before its targets."""
    out: list[Experiment] = []
    for r in runs:
        if r.surrogate_seed is not None:
            out.append(surrogate_of(r))
        out.append(r)
    return list(dict.fromkeys(out))


def changed_data(df, runs: list[Experiment], done: set[str], datasets: dict[str, ImageData]) -> dict[str, str]:
    """Finished runs of this grid whose rows were measured on data with another content than now (run id ->
    what changed); runs whose data are not in ``datasets`` are not looked at."""
    recorded = df.drop_duplicates("run_id").set_index("run_id")["data_sha"] if len(df) else {}
    out = {}
    for r in runs:
        sha = recorded.get(r.run_id, "") if r.run_id in done and r.dataset in datasets else ""
        if sha and sha != datasets[r.dataset].fingerprint:
            out[r.run_id] = (f"{r.run_id} ({r.method} seed {r.seed} on {r.dataset}: fingerprint {sha}, now "
                             f"{datasets[r.dataset].fingerprint})")
    return out


def refusals(runs: list[Experiment], datasets: dict[str, ImageData]) -> dict[str, str]:
    """run id -> why the real run refuses it before training (sizes against the data, a model that cannot take
    its images), for the runs whose data are in ``datasets``; the same checks as the real run's."""
    unfit = {}
    for model, spec in dict.fromkeys((r.model, r.dataset) for r in runs if r.dataset in datasets):
        try:
            check_input(model, datasets[spec].shape, datasets[spec].num_classes)
        except UsageError as e:
            unfit[(model, spec)] = str(e)
    out: dict[str, str] = {}
    for r in runs:
        if r.dataset not in datasets:
            continue
        try:
            check_sizes(r, datasets[r.dataset])
        except UsageError as e:
            out[r.run_id] = str(e)
            continue
        if (r.model, r.dataset) in unfit:
            out[r.run_id] = unfit[(r.model, r.dataset)]
    return out
