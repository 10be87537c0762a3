"""``python -m robustbench_mix.checkpoint PATH [PATH ...]``: evaluate saved models without training, into a
results directory with the suite's contract (runs.csv, summary, report), so ``compare``, ``claims`` and
``report`` read it. A PATH is a checkpoint the suite wrote (its run's config is inside), a plain ``state_dict``
of one of the suite's models (``--model`` and ``--dataset`` then say which), or a suite's results directory
(every ``runs/*/checkpoint.pt`` in it); each file is evaluated as its own run, and one that fails does not
stop the others. Files are read with ``torch.load(weights_only=True)``: one that needs pickle (arbitrary
Python objects, which can run code while loading) is refused.

What identifies an evaluation (the ``run_id``, and the configuration ``compare`` and ``claims`` pool seeds
over): a suite checkpoint keeps its run's config and training seed (the ``seed`` column), marked
``weights: checkpoint`` so that its rows never replace the suite's own rows of that run; a plain state_dict
is identified by a sha256 of its tensors (``weights: sha256:...``; ``seed`` stays 0: it has no training
seed); ``--seed`` sets ``eval_seed``, a field of its own, so evaluating one model with several attack seeds
never poses as several training seeds."""

from __future__ import annotations

import argparse
import pickle
import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from .api import evaluate_experiment
from .atomic import check_writable
from .config import Experiment, validate, with_list_flags
from .corruptions import SOURCES
from .data import ImageData, load, prepare
from .errors import RunFailed, UsageError
from .evaluators import predict
from .executors import unexpected
from .models import build
from .report import write_report
from .results import (
    ROWS_MARKER,
    ResultsError,
    atomic_write_csv,
    atomic_write_text,
    load_runs,
    merge_run,
    summarize,
    summary_markdown,
)
from .runner import resolve_device
from .tables import TABLES
from .train import CHECKPOINT, state_digest

COMMAND = "python -m robustbench_mix.checkpoint"
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0]


def read_weights(path: Path) -> dict:
    """The file's tensors, never its pickled objects; a suite checkpoint's checksum verified."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a checkpoint file (a suite's results directory holds them "
                         f"in runs/*/{CHECKPOINT})")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message goes on to suggest weights_only=False, i.e. running the file's code: not repeated here
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" (it holds a {found[1]})" if found else ""
        raise UsageError(f"{path} was refused: loading it needs pickle{what}: it holds Python objects, not only "
                         "tensors, and unpickling a file can run any code in it. Save the weights with "
                         "torch.save(model.state_dict(), PATH) and give that file") from None
    except Exception as e:  # not a torch file at all: truncated, another format
        raise UsageError(f"{path} is not a readable torch file ({e.__class__.__name__}: "
                         f"{_first_line(e)[:300]})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path} holds a {type(obj).__name__}, not a state_dict or a suite checkpoint")
    checksum = obj.pop("checksum", None)  # the suite's checkpoints since 0.2.0
    if checksum is not None and state_digest(obj) != checksum:
        raise UsageError(f"{path} fails its checksum: its content changed after the suite wrote it (a damaged disk "
                         "or copy, or an edit), so its numbers would not be the run's; it was not evaluated. Restore "
                         "the file or retrain the run (the suite with --force)")
    return obj


def checkpoint_paths(specs: list[str]) -> list[Path]:
    """Every file to evaluate: files as given, a results directory's ``runs/*/checkpoint.pt``, a run directory's
    checkpoint; all checked before any is evaluated, so a typo fails at once."""
    out: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(p.glob(f"runs/*/{CHECKPOINT}")) or ([p / CHECKPOINT] if (p / CHECKPOINT).is_file() else [])
            if not found:
                raise UsageError(f"{p} is a directory without checkpoints: give checkpoint files, or a suite's "
                                 f"results directory (its runs/*/{CHECKPOINT})")
            out += found
        elif not p.exists():
            raise UsageError(f"{p}: no such file")
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("path", nargs="+", help="suite checkpoints (runs/<id>/checkpoint.pt), state_dicts saved with torch.save, or "
      "a suite's results directory (all its runs' checkpoints); each is evaluated as its own run")
    a("--model", help="for a plain state_dict: which of the suite's models (or tv:NAME / timm:NAME) it holds")
    a("--dataset", help="the data to evaluate on (default: the run's own); also cifar10c / cifar100c (the standard "
      "corruption files in --data-dir)")
    a("--dropout", type=float, default=0.0, help="for a plain state_dict: the model's dropout (default 0)")
    a("--attacks", help="attacks (default: the run's own, or fgsm,pgd)")
    a("--eps", help="epsilons in /255 units, 8/255 or 8 (a bare number below 1 is refused as ambiguous; default: the "
      "run's own, or 2,8)")
    a("--eps-l2", help="radii of the L2 attacks, plain L2 norms in [0, 1] pixel space, e.g. 0.25,0.5 (default: the "
      "run's own)")
    a("--attack-samples", type=int, help="attack a class-stratified N of the test images, the same for every model "
      "(0 = all; default: the run's own, or 1000)")
    a("--corruptions", help="computed common corruptions, e.g. all or gaussian_noise,contrast")
    a("--seed", type=int, help="seed of the attacks' random starts (default: the run's training seed, or 0); "
      "recorded as the evaluation's seed (eval_seed), never as a training seed")
    a("--data-dir", default="data", help="where data sets are cached or downloaded (default: ./data)")
    a("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    a("--out", default="results/checkpoint", help="results directory (default: results/checkpoint)")
    a("--batch-size", type=int, default=1000, help="evaluation batch size")
    a("--no-progress", action="store_true", help="no progress bars (they show only on a terminal anyway)")
    return p


def check_args(args) -> None:
    """The flags that do not depend on a file, before any file is read."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size} must be at least 1")
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout {args.dropout:g} is outside [0, 1)")
    if not DEVICE.fullmatch(args.device):
        raise UsageError(f"--device {args.device!r} is not one of auto, cpu, cuda, cuda:N")
    resolve_device(args.device)  # cuda without a GPU
    check_writable(Path(args.out), "--out")


def run_config(ck: dict, path: Path) -> Experiment:
    """The suite run's config inside a checkpoint, or a refusal naming the file."""
    try:
        return Experiment.from_json(ck["config"])
    except (ValueError, TypeError, AttributeError) as e:
        raise UsageError(f"{path}: the run config inside it is not a valid experiment ({e.__class__.__name__}: "
                         f"{_first_line(e)[:200]}); the file was edited, or was not written by the suite") from None


def experiment_for(ck: dict, path: Path, args) -> tuple[Experiment, dict, int | None]:
    """The experiment the rows are labelled with, the model's weights and the epoch they are from."""
    if "model" in ck and "config" in ck:
        exp = run_config(ck, path)
        if args.model and args.model != exp.model:
            raise UsageError(f"--model {args.model}: {path} holds a {exp.model} (run {exp.run_id})")
        # weights="checkpoint": another run id than the suite's own run, whose rows it must never replace
        exp = replace(exp, preset="checkpoint", dataset=args.dataset or exp.dataset, weights="checkpoint")
        epoch = ck.get("epoch")
        if epoch != exp.epochs:  # a partial run: its rows say how far it was trained
            print(f"note: {path}: run {exp.run_id} stopped at epoch {epoch} of {exp.epochs}; its rows are labelled "
                  f"epochs={epoch} (trained with the schedule of {exp.epochs} epochs)", file=sys.stderr)
            exp = replace(exp, epochs=int(epoch or 0))
        weights = ck["model"]
    elif "model" in ck and "run_id" in ck and not (args.model and args.dataset):
        raise UsageError(f"{path}: this suite checkpoint predates the config inside checkpoints; give --model and "
                         "--dataset and it is read as a plain state_dict")
    elif not (args.model and args.dataset):
        raise UsageError(f"{path}: a plain state_dict does not say which model it holds: give --model (e.g. "
                         "preact_resnet18) and --dataset")
    else:
        weights, epoch = ck.get("model", ck), None
        if not isinstance(weights, dict):
            raise UsageError(f"{path}: its 'model' entry is a {type(weights).__name__}, not a state_dict")
        exp = Experiment(preset="checkpoint", dataset=args.dataset, model=args.model, method="external", epochs=0,
                         dropout=args.dropout, attack_samples=1000, weights=f"sha256:{state_digest(weights)[:16]}")
    over = {"attack_samples": args.attack_samples, "device": args.device,
            "eval_seed": args.seed if args.seed is not None and args.seed != exp.seed else None}
    exp = with_list_flags(replace(exp, **{k: v for k, v in over.items() if v is not None}), args)
    validate(exp)
    return exp, weights, epoch


def load_weights(model: torch.nn.Module, weights: dict, path: Path, exp: Experiment, spec: str) -> None:
    """``model.load_state_dict(weights)``, or a refusal that says what does not fit: the first missing and
    unexpected key, the first shape that differs, or that the file is the bare model without the suite's
    normalization layer in front of it."""
    want = model.state_dict()
    odd = [k for k, v in weights.items() if not torch.is_tensor(v)]
    if odd:
        raise UsageError(f"{path}: entry {odd[0]!r} of its state_dict is a {type(weights[odd[0]]).__name__}, not a "
                         "tensor")
    for prefix in ("1.", "1.1."):  # the body behind Normalize; behind GreyToRGB too for a tv: model on grey data
        body = {k[len(prefix):] for k in want if k.startswith(prefix)}
        if body and set(weights) == body:
            first = next(iter(weights))
            wrapped = "torch.nn.Sequential(GreyToRGB(), model)" if prefix == "1.1." else "model"
            raise UsageError(
                f"{path} holds the bare {exp.model} (keys like {first!r}), without the normalization layer the "
                f"suite's models have in front: the suite's {exp.model} for {spec} is torch.nn.Sequential("
                f"Normalize(mean, std), {wrapped}) (robustbench_mix.models), with keys '0.mean', '0.std', "
                f"'{prefix}{first}'. Its input normalization is part of the model and this file does not say which "
                "one it was trained with. Save torch.nn.Sequential(Normalize(mean, std), "
                f"{wrapped}).state_dict() with the normalization your model expects, or evaluate it in Python: "
                "robustbench_mix.evaluate(model, data, normalize=(mean, std))")
    missing = [k for k in want if k not in weights]
    extra = [k for k in weights if k not in want]
    shapes = [(k, tuple(weights[k].shape), tuple(v.shape)) for k, v in want.items()
              if k in weights and weights[k].shape != v.shape]
    problems = ([f"{len(missing)} key(s) missing, first {missing[0]!r}"] if missing else []) + (
        [f"{len(extra)} unexpected key(s), first {extra[0]!r}"] if extra else []) + (
        [f"{len(shapes)} shape(s) differ, first {shapes[0][0]!r}: {shapes[0][1]} in the file, {shapes[0][2]} in "
         "the model"] if shapes else [])
    if problems:
        raise UsageError(f"{path} does not fit model {exp.model} for {spec} ({'; '.join(problems)}); check --model "
                         "and --dataset (the class count and image shape come from the data)")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:  # e.g. a dtype that cannot be copied
        raise UsageError(f"{path} does not fit model {exp.model} for {spec} ({_first_line(e)[:300]})") from None


def check_weights(model: torch.nn.Module, path: Path, test_x: torch.Tensor | None, batch_size: int) -> None:
    """Refuse weights whose numbers would mean nothing: non-finite ones, or finite ones so large that the
    model's outputs overflow."""
    params = model.state_dict()
    bad = [k for k, v in params.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise UsageError(f"{path}: {len(bad)} weight tensor(s) hold NaN or inf, first {bad[0]!r}: the model diverged "
                         "before it was saved, and nothing it predicts means anything; evaluate a checkpoint from "
                         "before the divergence")
    if test_x is None:
        return
    logits = predict(model, test_x, batch_size)
    if not bool(torch.isfinite(logits).all()):
        k, v = max(((k, v) for k, v in params.items() if v.is_floating_point() and v.numel()),
                   key=lambda kv: float(kv[1].abs().max()))
        n = int((~torch.isfinite(logits).all(1)).sum())
        raise UsageError(f"{path}: the model's outputs are not finite (NaN or inf) on {n} of {len(logits)} test "
                         f"images: its weights are finite but overflow (the largest, {float(v.abs().max()):.3g}, in "
                         f"{k!r}); check that this is the model you meant (one saved after training diverged?)")


def with_noise_realized(frame: pd.DataFrame, exp: Experiment, own: ImageData | None) -> pd.DataFrame:
    """The realized label-noise rate of the training run, recomputed from its config (the corruption is seeded:
    data.corrupt_labels) on its own training data; the evaluation itself uses clean labels, and would write 0.
    Left out (the run's marker row counting one row less) when those data are not at hand unchanged."""
    m = frame["metric"] == "noise_realized"
    if not m.any():
        return frame
    frame = frame.copy()
    if own is not None:
        frame.loc[m, "value"] = float(prepare(own, exp.noise, exp.val_fraction, exp.seed,
                                              torch.device("cpu"), exp.train_samples).corrupted.float().mean())
        return frame
    frame = frame[~m].copy()
    marker = frame["metric"] == ROWS_MARKER
    frame.loc[marker, "value"] = frame.loc[marker, "value"] - int(m.sum())
    return frame


def evaluate_path(path: Path, args, command: str) -> pd.DataFrame:
    """One file's rows, merged into ``--out``'s runs.csv."""
    ck = read_weights(path)
    exp, weights, epoch = experiment_for(ck, path, args)
    trained_on = exp.dataset if exp.weights != "checkpoint" else Experiment.from_json(ck["config"]).dataset
    standard = exp.dataset in SOURCES
    # the model is built for the data it was trained on: its normalization and class count come from there
    train_spec = {"cifar10c": "cifar10", "cifar100c": "cifar100"}.get(exp.dataset, exp.dataset)
    train_data = load(train_spec, args.data_dir)
    changed = bool(ck.get("data_sha")) and train_spec == trained_on and ck["data_sha"] != train_data.fingerprint
    if changed:
        print(f"warning: {path} was trained on data with fingerprint {ck['data_sha']}; {train_spec} is now "
              f"{train_data.fingerprint} (its content changed)", file=sys.stderr)
    device = resolve_device(exp.device)
    mean, std = train_data.channel_stats()
    model = build(exp.model, in_shape=train_data.shape, num_classes=train_data.num_classes, mean=mean, std=std,
                  dropout=exp.dropout)
    load_weights(model, weights, path, exp, train_spec)
    model.to(device).eval()
    check_weights(model, path, None if standard else train_data.test_x.to(device), args.batch_size)
    frame = evaluate_experiment(model, exp, None if standard else train_data, batch_size=args.batch_size,
                                device=device, data_dir=args.data_dir, epoch=epoch, command=command,
                                progress=False if args.no_progress else None)
    own = train_data if train_spec == trained_on and not changed else None
    frame = with_noise_realized(frame, exp, own)
    merge_run(Path(args.out) / "runs.csv", frame)
    print(summary_markdown(summarize(frame)))
    print(f"{path}: {len(frame)} rows for {exp.model} ({exp.method}) on {exp.dataset}, run {exp.run_id} -> "
          f"{args.out}/runs.csv", file=sys.stderr)
    return frame


def write_outputs(out: Path) -> None:
    """The summary, tables and report of everything in ``out``'s runs.csv."""
    merged = load_runs(out / "runs.csv", strict=False)
    summary = summarize(merged)
    atomic_write_csv(summary, out / "summary.csv")
    atomic_write_text(out / "summary.md", "# checkpoint evaluations\n\n" + summary_markdown(summary))
    for table in ("robust", "corruptions"):
        TABLES.get(table)(merged, out)
    write_report(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = f"{COMMAND} {shlex.join(argv)}"
    try:
        check_args(args)
        paths = checkpoint_paths(args.path)
    except (UsageError, ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed: list[tuple[Path, str, int]] = []  # (file, why, exit status it alone would give)
    done = 0
    for path in paths:
        try:
            evaluate_path(path, args, command)
            done += 1
        except (UsageError, ResultsError) as e:
            failed.append((path, str(e), 2))
        except (RunFailed, torch.OutOfMemoryError) as e:
            failed.append((path, f"{path}: the evaluation failed: {e}", 1))
        except OSError as e:  # a results file that cannot be written: the next file would fail the same way
            print(f"error: {e.__class__.__name__}: {e}; the files evaluated so far are in {args.out}/runs.csv",
                  file=sys.stderr)
            return 1
        except Exception as e:  # an attack library or a model failing in a way nobody foresaw: this file's failure
            failed.append((path, f"{path}: the evaluation failed: {unexpected(e)}", 1))
        if failed and failed[-1][0] == path:
            print(f"error: {failed[-1][1]}", file=sys.stderr)
    if done:
        write_outputs(Path(args.out))
    if not failed:
        return 0
    if len(paths) == 1:
        return failed[0][2]
    print(f"{len(failed)} of {len(paths)} checkpoint(s) not evaluated (the others are in {args.out}/runs.csv):",
          file=sys.stderr)
    for path, why, _ in failed:
        print(f"  {path}: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
