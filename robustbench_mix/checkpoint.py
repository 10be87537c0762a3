"""``python -m robustbench_mix.checkpoint PATH``: evaluate a saved model without training, into a results
directory with the suite's contract (runs.csv, summary, report), so ``compare``, ``claims`` and ``report``
read it. PATH is a checkpoint the suite wrote (its run's config is inside) or a plain ``state_dict`` of one of
the suite's models (``--model`` and ``--dataset`` then say which). Files are read with
``torch.load(weights_only=True)``: one that needs pickle (arbitrary Python objects, which can run code while
loading) is refused."""

from __future__ import annotations

import argparse
import pickle
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from .api import evaluate_experiment
from .config import Experiment, with_list_flags
from .corruptions import SOURCES
from .data import load
from .errors import UsageError
from .models import build
from .report import write_report
from .results import ResultsError, atomic_write_csv, atomic_write_text, merge_run, summarize, summary_markdown
from .runner import resolve_device
from .tables import TABLES


def read_weights(path: Path) -> dict:
    """The file's tensors, never its pickled objects."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UsageError(f"{path} was refused: loading it needs pickle (it holds Python objects, not only tensors), "
                         "and unpickling a file can run any code in it. Save the weights with "
                         f"torch.save(model.state_dict(), PATH) and give that file. ({str(e).splitlines()[0]})"
                         ) from None
    except Exception as e:  # not a torch file at all: truncated, another format
        raise UsageError(f"{path} is not a readable torch file ({e.__class__.__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path} holds a {type(obj).__name__}, not a state_dict or a suite checkpoint")
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.checkpoint", description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("path", help="a suite checkpoint (runs/<id>/checkpoint.pt) or a state_dict saved with torch.save")
    a("--model", help="for a plain state_dict: which of the suite's models (or tv:NAME / timm:NAME) it holds")
    a("--dataset", help="the data to evaluate on (default: the run's own); also cifar10c / cifar100c (the standard "
      "corruption files in --data-dir)")
    a("--dropout", type=float, default=0.0, help="for a plain state_dict: the model's dropout (default 0)")
    a("--attacks", help="attacks (default: the run's own, or fgsm,pgd)")
    a("--eps", help="epsilons in /255 units (default: the run's own, or 2,8)")
    a("--attack-samples", type=int, help="attack the first N test images (0 = all; default: the run's own, or 1000)")
    a("--corruptions", help="computed common corruptions, e.g. all or gaussian_noise,contrast")
    a("--seed", type=int, help="seed of the attacks' random starts (default: the run's own, or 0)")
    a("--data-dir", default="data", help="where data sets are cached or downloaded (default: ./data)")
    a("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    a("--out", default="results/checkpoint", help="results directory (default: results/checkpoint)")
    a("--batch-size", type=int, default=1000, help="evaluation batch size")
    return p


def experiment_for(ck: dict, args) -> tuple[Experiment, dict, int | None]:
    """The experiment the rows are labelled with, the model's weights and the epoch they are from."""
    if "model" in ck and "config" in ck:  # the suite's checkpoint: its run's own config
        exp = Experiment.from_json(ck["config"])
        if args.model and args.model != exp.model:
            raise UsageError(f"--model {args.model}: this checkpoint holds a {exp.model} (run {exp.run_id})")
        exp = replace(exp, preset="checkpoint", dataset=args.dataset or exp.dataset)
        if ck.get("epoch") != exp.epochs:  # a partial run: its rows say how far it was trained
            print(f"note: run {exp.run_id} stopped at epoch {ck.get('epoch')} of {exp.epochs}; its rows are labelled "
                  f"epochs={ck.get('epoch')} (trained with the schedule of {exp.epochs} epochs)", file=sys.stderr)
            exp = replace(exp, epochs=int(ck.get("epoch") or 0))
        return exp, ck["model"], ck.get("epoch")
    if "model" in ck and "run_id" in ck:
        raise UsageError("this suite checkpoint predates the config inside checkpoints; give --model and --dataset "
                         "and it is read as a plain state_dict")
    if not (args.model and args.dataset):
        raise UsageError("a plain state_dict does not say which model it holds: give --model (e.g. preact_resnet18) "
                         "and --dataset")
    return (Experiment(preset="checkpoint", dataset=args.dataset, model=args.model, method="external", epochs=0,
                       dropout=args.dropout, attack_samples=1000), ck.get("model", ck), None)


def _main(args, command: str) -> int:
    ck = read_weights(Path(args.path))
    exp, weights, epoch = experiment_for(ck, args)
    over = {"attack_samples": args.attack_samples, "seed": args.seed}
    exp = with_list_flags(replace(exp, **{k: v for k, v in over.items() if v is not None}, device=args.device), args)
    standard = exp.dataset in SOURCES
    # the model is built for the data it was trained on: its normalization and class count come from there
    train_spec = {"cifar10c": "cifar10", "cifar100c": "cifar100"}.get(exp.dataset, exp.dataset)
    train_data = load(train_spec, args.data_dir)
    mean, std = train_data.channel_stats()
    if ck.get("data_sha") and train_spec == Experiment.from_json(ck["config"]).dataset \
            and ck["data_sha"] != train_data.fingerprint:
        print(f"warning: {args.path} was trained on data with fingerprint {ck['data_sha']}; {train_spec} is now "
              f"{train_data.fingerprint} (its content changed)", file=sys.stderr)
    device = resolve_device(exp.device)
    model = build(exp.model, in_shape=train_data.shape, num_classes=train_data.num_classes, mean=mean, std=std,
                  dropout=exp.dropout)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise UsageError(f"{args.path} does not fit model {exp.model} for {train_spec} "
                         f"({str(e).splitlines()[0]}); check --model and --dataset") from None
    model.to(device).eval()
    frame = evaluate_experiment(model, exp, None if standard else train_data, batch_size=args.batch_size,
                                device=device, data_dir=args.data_dir, epoch=epoch, command=command)
    out = Path(args.out)
    merged = merge_run(out / "runs.csv", frame)
    summary = summarize(merged)
    atomic_write_csv(summary, out / "summary.csv")
    atomic_write_text(out / "summary.md", "# checkpoint evaluations\n\n" + summary_markdown(summary))
    for table in ("robust", "corruptions"):
        TABLES.get(table)(merged, out)
    write_report(out)
    print(summary_markdown(summarize(frame)))
    print(f"{len(frame)} rows for {exp.model} ({exp.method}) on {exp.dataset} -> {out}/runs.csv")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        return _main(args, "python -m robustbench_mix.checkpoint " + shlex.join(argv))
    except (UsageError, ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
