"""The Python entry point for a model the suite did not train: ``robustbench_mix.evaluate(model, data)``
returns the same long-form rows as the suite (so ``compare``, ``claims`` and ``report`` read them too)."""

from __future__ import annotations

import shlex
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from robustbench_mix.api.inputs import (
    PROBE_IMAGES,
    check_batch_size,
    check_data,
    device_of,
    float32_model,
    names_list,
    probe,
    to_image_data,
    with_normalize,
)
from robustbench_mix.api.loaders import from_dataset, from_loader
from robustbench_mix.core.device import device_name
from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.units import eps_from_fraction
from robustbench_mix.corruptions import SOURCES, expand, load_standard
from robustbench_mix.data.base import ImageData, load
from robustbench_mix.data.prepare import prepare
from robustbench_mix.evaluation.evaluators import corruption_rows, final_rows, finish
from robustbench_mix.evaluation.progress import Progress
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.validation import validate
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import KEY, ResultsError, git_rev, to_frame
from robustbench_mix.store.write import merge_run


def _data(data, data_dir) -> tuple[str, ImageData | None]:
    """(the data set's label in the results, its test images) from a name, an ImageData, (x, y) tensors, a
    torch Dataset or a DataLoader; tensors, Datasets and loaders are labelled by their content's fingerprint."""
    if isinstance(data, str):
        if data in SOURCES:
            return data, None
        return data, load(data, data_dir)
    if isinstance(data, ImageData):
        check_data(data)
        return data.name, data
    if isinstance(data, torch.utils.data.DataLoader):
        data = from_loader(data)
    elif isinstance(data, torch.utils.data.Dataset):
        data = from_dataset(data)
    if isinstance(data, tuple | list) and len(data) == 2:
        d = to_image_data(*data)
        return f"tensors:{d.fingerprint}", d
    raise UsageError("data must be a data set name (digits, cifar10, cifar100, imagefolder:PATH, cifar10c, "
                     "cifar100c), an ImageData, a pair (images, labels), a torch Dataset of (image, label) or a "
                     f"DataLoader; got {type(data).__name__}")


def evaluate(model: torch.nn.Module, data, *, attacks=("fgsm", "pgd"), eps=(2 / 255, 8 / 255), eps_l2=(),
             attack_steps: int = 10,
             attack_step_size: float | None = None, attack_samples: int = 0, attack_restarts: int = 1,
             check_eps: float = 64 / 255, attack_precision: str = "fp32", corruptions=(),
             normalize: tuple | None = None, name: str = "user:model", seed: int = 0, batch_size: int = 1000,
             device: str | torch.device | None = None, data_dir: str = "data", progress: bool | None = None,
             ) -> pd.DataFrame:
    """Clean accuracy, NLL and ECE, each attack at each epsilon with the sanity checks, and common corruptions,
    of ``model`` on ``data``'s test images, as the suite's long-form rows.

    Epsilons (``eps``, ``check_eps``, ``attack_step_size``) are fractions of the [0, 1] pixel range, as in
    torchattacks, AutoAttack and RobustBench: ``eps=(8/255,)``, or the string ``"8/255"``; a number >= 1 (``8``)
    is refused rather than read as 8/255. (The command line and ``Experiment`` take /255 units instead.) Rows
    write ``eps`` as that fraction and ``eps_255`` in /255 units. ``eps_l2``: the radii of the L2 attacks
    (``pgd_l2``, ``fgm_l2``, ``autoattack_l2``), L2 norms of the whole perturbation in [0, 1] pixel space as they
    are (``eps_l2=(0.5,)``, RobustBench's CIFAR-10 radius); their rows have ``norm`` L2 and no ``eps_255``.

    ``model`` takes images in [0, 1] (or give ``normalize=(mean, std)`` to put normalization in front of it);
    it is evaluated in eval mode, and its mode and parameters are left as found (a warning says when it was in
    training mode). ``data``: a data set name the suite knows (``digits``, ``cifar10``, ``imagefolder:PATH``;
    ``cifar10c`` / ``cifar100c`` evaluate the standard CIFAR-10-C / CIFAR-100-C files in ``data_dir``,
    corruptions only), an ``ImageData``, a pair ``(images, labels)`` (images (N, C, H, W) uint8 or floats in
    [0, 1], labels class indices), a torch ``Dataset`` of ``(image, label)`` items (an ``IterableDataset`` needs
    a ``__len__``) or a ``DataLoader`` that reads each image once in order (no shuffling, resampling sampler or
    ``drop_last``). ``attacks`` and ``corruptions``: a name, names, or ``"all"`` for the computed common
    corruptions at severities 1-5; an attack, epsilon or corruption given twice is evaluated once (the first
    place kept). ``attack_samples`` 0 (the default, as RobustBench's ``benchmark``) attacks
    every test image; N attacks a class-stratified sample of N that is the same for every model on that test
    set (rows say so in ``n_eval`` and ``eval_subset``).
    ``seed`` seeds the attacks' random starts and the computed corruptions; it is recorded as the evaluation's
    seed (``eval_seed`` in the config), never in the ``seed`` column, which counts training seeds: evaluating one
    model with three seeds is not three models.
    ``name`` labels the model in the ``model`` column (``user:...``, ``tv:...`` or ``timm:...``): give each model
    its own, since runs are told apart by it. ``progress`` (None, the default, or True): tqdm bars when stderr is
    a terminal, and elsewhere (a log file, nohup, Slurm) one line per stage, attack and corruption with counts
    and elapsed time, on the logger ``robustbench_mix.progress`` (to stderr); each attack states its expected
    cost once its first batch is done. False: nothing. Everything is checked before anything runs (a forward of
    two images must give float logits of shape (2, classes)); bad input is a ``UsageError`` saying what to do.
    """
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_batch_size(batch_size)
    attacks, corruptions = _once(names_list(attacks, "attacks")), names_list(corruptions, "corruptions")
    label, d = _data(data, data_dir)
    exp = Experiment(preset="api", dataset=label, model=name, method="external", epochs=0,
                     attacks=attacks, eps=_once(eps_from_fraction(e) for e in _listed(eps, "eps")),
                     eps_l2=_once(_radius(e) for e in _listed(eps_l2, "eps_l2")),
                     attack_steps=attack_steps, attack_samples=attack_samples,
                     attack_step_size=None if attack_step_size is None
                     else eps_from_fraction(attack_step_size, "attack_step_size"),
                     attack_restarts=attack_restarts, check_eps=eps_from_fraction(check_eps, "check_eps"),
                     attack_precision=attack_precision,
                     corruptions=expand(tuple(corruptions)), seed=0, eval_seed=seed or None)
    return evaluate_experiment(model, exp, d, normalize=normalize, batch_size=batch_size, device=device,
                               data_dir=data_dir, progress=progress)


def _once(values) -> tuple:
    """Each value once, in the order first given: a repeated attack or epsilon would otherwise give rows with the
    same key twice (and a results file that no command reads)."""
    values = tuple(values)
    try:
        return tuple(dict.fromkeys(values))
    except TypeError:  # an unhashable entry: validate() names it
        return values


def _radius(value) -> float:
    """An L2 radius as given (a number, or its text); validate() says what is allowed."""
    if not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise UsageError(f"eps_l2={value!r} is not a number; give L2 radii in [0, 1] pixel space, e.g. eps_l2=(0.5,)")


def _listed(value, name: str) -> tuple:
    """One epsilon or a sequence of them: ``eps=8/255`` and ``eps="8/255"`` are one epsilon, not a list of
    characters."""
    if isinstance(value, str | int | float):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise UsageError(f"{name}={value!r} is neither a number nor a sequence of them, e.g. {name}=(2/255, 8/255)") \
            from None


def evaluate_experiment(model: torch.nn.Module, exp: Experiment, d: ImageData | None, *, normalize=None,
                        batch_size: int = 1000, device=None, data_dir: str = "data", progress: bool | None = None,
                        epoch: int | None = None, command: str = "") -> pd.DataFrame:
    """``evaluate`` for a given experiment (the checkpoint command passes a suite run's own, so its rows keep the
    run's method and recipe); ``d`` None evaluates the standard corruption files of ``exp.dataset``."""
    label = exp.dataset
    if d is None:
        exp = replace(exp, attacks=(), attack_samples=0)
    elif exp.attack_samples > len(d.test_y):  # more than there are: all of them
        exp = replace(exp, attack_samples=0)
    validate(exp)
    if model.training:
        warnings.warn("the model is in training mode; it is evaluated in eval mode (batch-norm statistics fixed, "
                      "dropout off) and left in training mode afterwards", stacklevel=3)  # the caller of evaluate
    check_batch_size(batch_size)
    dev = device_of(device, model)
    stored = None
    if d is None:  # the standard corruption files: no clean test set, no attacks
        stored, y = load_standard(label, data_dir)
        x = next(iter(stored.values()))
    else:
        x, y = d.test_x, d.test_y
    net = with_normalize(float32_model(model), normalize, x.shape[1], dev)
    probe(net, x[:PROBE_IMAGES].to(dev), y)  # before any attack: the model takes these images, gives logits
    prog = Progress(progress is not False, log=True)  # bars on a terminal, lines in a log, False: silence
    if d is None:
        rows = finish(corruption_rows(net, None, y.to(dev), (), batch_size, prefix=SOURCES[label][2],
                                      stored=stored, progress=prog))
    else:
        prepared = prepare(d, 0.0, 0.0, exp.seed, dev)  # the test split is the same for every noise and seed
        rows = final_rows(net, prepared, exp, batch_size, progress=prog)
    command = command or "robustbench_mix.evaluate(model, " + shlex.quote(label) + ", ...)"
    at = exp.epochs if epoch is None else epoch
    return to_frame(exp, [dict(r, epoch=at) for r in rows], device=device_name(dev), command=command, rev=git_rev(),
                    data_sha=d.fingerprint if d is not None else "")


def save_runs(rows: pd.DataFrame, out_dir) -> Path:
    """Add ``rows`` (from ``evaluate``) to ``out_dir/runs.csv``, where ``compare``, ``claims`` and ``report`` read
    them, and return its path. Checked against the results contract first; written atomically under the results
    lock, so the file never holds half a write. A run already in the file (same model name, data and settings)
    is replaced, with a warning."""
    if not isinstance(rows, pd.DataFrame):
        raise UsageError(f"rows must be the DataFrame evaluate returned, got {type(rows).__name__}")
    twice = rows[rows.duplicated(KEY)]
    if len(twice):
        r = twice.iloc[0]
        raise UsageError(f"the rows hold run {r['run_id']} ({r['model']} on {r['dataset']}) twice: two models "
                         "evaluated under one name? give each its own evaluate(..., name='user:NAME')")
    with tempfile.TemporaryDirectory() as tmp:  # the contract's checks, before the real file is touched
        check = Path(tmp) / "runs.csv"
        rows.to_csv(check, index=False)
        try:
            load_runs(check)
        except ResultsError as e:
            raise UsageError(f"these rows do not follow the results contract: {str(e).replace(str(check), 'rows')}"
                             ) from None
    path = Path(out_dir) / "runs.csv"
    if path.exists():
        old = load_runs(path, strict=False)
        again = old[old["run_id"].isin(set(rows["run_id"]))]
        if len(again):
            r = again.iloc[0]
            warnings.warn(f"{path} already holds run {r['run_id']} ({r['model']} on {r['dataset']}, "
                          f"{r['created_at']}); it is replaced. Another model? give it its own name=",
                          stacklevel=2)
    merge_run(path, rows)
    return path
