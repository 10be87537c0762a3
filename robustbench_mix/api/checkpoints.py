"""Evaluating saved weights: suite checkpoints and plain state_dicts, each as its own run."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from robustbench_mix.api.evaluate import evaluate_experiment
from robustbench_mix.api.inputs import with_normalize
from robustbench_mix.api.user_class import build_user_model, is_class_spec, load_class, parse_kwargs, parse_normalize
from robustbench_mix.core.device import resolve_device
from robustbench_mix.core.errors import UsageError, first_line
from robustbench_mix.core.torchfile import read_weights, state_digest
from robustbench_mix.corruptions import SOURCES
from robustbench_mix.data.base import ImageData, load, trained_on
from robustbench_mix.data.prepare import prepare
from robustbench_mix.evaluation.evaluators import predict
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.grids import with_lists
from robustbench_mix.experiment.validation import validate
from robustbench_mix.models.families import build
from robustbench_mix.store.schema import ROWS_MARKER
from robustbench_mix.store.summary import summarize, summary_markdown
from robustbench_mix.store.write import merge_run
from robustbench_mix.training.train import CHECKPOINT


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


def run_config(ck: dict, path: Path) -> Experiment:
    """The suite run's config inside a checkpoint, or a refusal naming the file."""
    try:
        return Experiment.from_json(ck["config"])
    except (ValueError, TypeError, AttributeError) as e:
        raise UsageError(f"{path}: the run config inside it is not a valid experiment ({e.__class__.__name__}: "
                         f"{first_line(e)[:200]}); the file was edited, or was not written by the suite") from None


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
        raise UsageError(f"{path}: a plain state_dict does not say which model it holds: give --model (one of the "
                         "suite's, e.g. preact_resnet18, or your own class: --model package.module:Class "
                         "--normalize mean,std|none) and --dataset")
    else:
        weights, epoch = ck.get("model", ck), None
        if not isinstance(weights, dict):
            raise UsageError(f"{path}: its 'model' entry is a {type(weights).__name__}, not a state_dict")
        model, identity = args.model, weights
        if is_class_spec(args.model):  # the user's class: its arguments and normalization are part of what ran
            model = load_class(args.model)[1]
            identity = {"state": weights, "kwargs": json.dumps(parse_kwargs(args.model_kwargs), sort_keys=True),
                        "normalize": str(args.normalize).strip().lower()}
        # attack_samples 0: every test image, as the suite's presets and evaluate() (--attack-samples narrows it)
        exp = Experiment(preset="checkpoint", dataset=args.dataset, model=model, method="external", epochs=0,
                         dropout=args.dropout, attack_samples=0, weights=f"sha256:{state_digest(identity)[:16]}")
    over = {"attack_samples": args.attack_samples, "device": args.device,
            "eval_seed": args.seed if args.seed is not None and args.seed != exp.seed else None}
    exp = with_lists(replace(exp, **{k: v for k, v in over.items() if v is not None}),
                     attacks=args.attacks, eps=args.eps, eps_l2=getattr(args, "eps_l2", None),
                     corruptions=args.corruptions)
    validate(exp)
    return exp, weights, epoch


def load_weights(model: torch.nn.Module, weights: dict, path: Path, exp: Experiment, spec: str,
                 user: bool = False) -> None:
    """``model.load_state_dict(weights)``, or a refusal that says what does not fit: the first missing and
    unexpected key, the first shape that differs, or that the file is the bare model without the suite's
    normalization layer in front of it."""
    want = model.state_dict()
    odd = [k for k, v in weights.items() if not torch.is_tensor(v)]
    if odd:
        raise UsageError(f"{path}: entry {odd[0]!r} of its state_dict is a {type(weights[odd[0]]).__name__}, not a "
                         "tensor")
    # the body behind Normalize; behind GreyToRGB too for a tv: model on grey data (a user's class has neither)
    for prefix in () if user else ("1.", "1.1."):
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
        own = (" Your own architecture? give its class, --model package.module:Class (or path/to/file.py:Class) "
               "with --model-kwargs '{...}' and --normalize mean,std|none, or evaluate it in Python: "
               "robustbench_mix.evaluate(model, data, normalize=(mean, std)).")
        wrapper = ("" if user else f" The suite's {exp.model} is torch.nn.Sequential(Normalize(mean, std), body) "
                   "(keys '0.mean', '0.std', '1.<body>').")
        raise UsageError(f"{path} does not fit model {exp.model} for {spec} ({'; '.join(problems)}); check --model "
                         "and --dataset (the class count and image shape come from the data)." + wrapper
                         + (" Check --model-kwargs (the layer sizes they give)." if user else own))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:  # e.g. a dtype that cannot be copied
        raise UsageError(f"{path} does not fit model {exp.model} for {spec} ({first_line(e)[:300]})") from None


def user_model(args, weights: dict, path: Path, exp: Experiment, spec: str, channels: int,
               device: torch.device) -> torch.nn.Module:
    """The user's class with ``weights`` loaded, behind the normalization ``--normalize`` states."""
    normalize = parse_normalize(args.normalize, args.model, channels)
    body = build_user_model(args.model, parse_kwargs(args.model_kwargs))
    wrapped = {"0.mean", "0.std"} <= set(weights) and not {"0.mean", "0.std"} <= set(body.state_dict())
    if wrapped:  # saved behind the suite's Normalize: the file states its normalization itself
        raise UsageError(f"{path} holds a model behind a normalization layer (keys '0.mean', '0.std', '1.<body>'): "
                         f"save the bare model's state_dict for --model {args.model}, or give the suite's model name")
    load_weights(body, weights, path, exp, spec, user=True)
    return with_normalize(body, normalize, channels, device)


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
    ck_dataset = exp.dataset if exp.weights != "checkpoint" else Experiment.from_json(ck["config"]).dataset
    standard = exp.dataset in SOURCES
    # the model is built for the data it was trained on: its normalization and class count come from there
    train_spec = trained_on(exp.dataset)
    train_data = load(train_spec, args.data_dir)
    changed = bool(ck.get("data_sha")) and train_spec == ck_dataset and ck["data_sha"] != train_data.fingerprint
    if changed:
        print(f"warning: {path} was trained on data with fingerprint {ck['data_sha']}; {train_spec} is now "
              f"{train_data.fingerprint} (its content changed)", file=sys.stderr)
    device = resolve_device(exp.device)
    if is_class_spec(args.model) and exp.weights != "checkpoint":
        model = user_model(args, weights, path, exp, train_spec, train_data.shape[0], device)
    else:
        mean, std = train_data.channel_stats()
        model = build(exp.model, in_shape=train_data.shape, num_classes=train_data.num_classes, mean=mean, std=std,
                      dropout=exp.dropout)
        load_weights(model, weights, path, exp, train_spec)
    model.to(device).eval()
    check_weights(model, path, None if standard else train_data.test_x.to(device), args.batch_size)
    frame = evaluate_experiment(model, exp, None if standard else train_data, batch_size=args.batch_size,
                                device=device, data_dir=args.data_dir, epoch=epoch, command=command,
                                progress=False if args.no_progress else None)
    own = train_data if train_spec == ck_dataset and not changed else None
    frame = with_noise_realized(frame, exp, own)
    merge_run(Path(args.out) / "runs.csv", frame)
    print(summary_markdown(summarize(frame)))
    print(f"{path}: {len(frame)} rows for {exp.model} ({exp.method}) on {exp.dataset}, run {exp.run_id} -> "
          f"{args.out}/runs.csv", file=sys.stderr)
    return frame
