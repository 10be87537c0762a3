"""The suite's command line: the parser and the grid it describes."""

from __future__ import annotations

import argparse
import os
import textwrap
from dataclasses import replace

from robustbench_mix.attacks.base import ATTACKS
from robustbench_mix.cli.common import add_plugin_flag
from robustbench_mix.core.parsing import parse_numbers
from robustbench_mix.core.units import parse_eps_value
from robustbench_mix.corruptions import CORRUPTIONS
from robustbench_mix.data.base import DATASETS
from robustbench_mix.execution.executors import EXECUTORS
from robustbench_mix.execution.timelimit import ENV as TIME_LIMIT_ENV
from robustbench_mix.execution.timelimit import EXIT_CODE as TIME_LIMIT_EXIT
from robustbench_mix.execution.timelimit import (
    FORMS,
)
from robustbench_mix.experiment.grids import Suite, narrowed, with_lists
from robustbench_mix.experiment.presets import PRESETS, get_preset
from robustbench_mix.methods import METHODS
from robustbench_mix.models.base import MODELS
from robustbench_mix.training.speed import GRAPH_MODES


def build_parser() -> argparse.ArgumentParser:
    width = max(map(len, PRESETS))
    presets = "\n".join(f"  {n:{width}s}  {s.description}" for n, s in PRESETS.items())
    p = argparse.ArgumentParser(
        prog="python -m robustbench_mix.suite",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train ERM/mixup grids, then measure clean accuracy, FGSM/PGD accuracy and memorization.",
        epilog=f"presets:\n{presets}\n\ndatasets: {', '.join(DATASETS)} (imagefolder:PATH)\n"
               f"models: {', '.join(map(MODELS.label, MODELS))}, tv:NAME (torchvision), timm:NAME (extra [timm])\n"
               f"methods (--methods NAME[:VALUE][:OPTION=VALUE], defaults in brackets):\n{methods_help()}\n"
               f"attacks: {', '.join(map(ATTACKS.label, ATTACKS))}, ta:NAME (any torchattacks attack, optional "
               "extra)\n\n"
               "Lists are comma-separated. Epsilons and step sizes are in /255 units (8/255 or 8).",
    )
    a = p.add_argument
    a("--preset", default="quick", help="named grid to start from (default: quick)")
    a("--dataset", help="digits, cifar10, cifar100 or imagefolder:PATH")
    a("--model", help=f"one of {', '.join(MODELS)}, or tv:NAME / timm:NAME (torchvision's and timm's models)")
    a("--methods", help="comma-separated methods, each with its own parameter where it takes one, e.g. "
      "erm,mixup:8,manifold_mixup,cutmix:1:prob=0.5,label_smoothing:0.1 (a method without a value takes its "
      "default, listed below; list one twice for two values)")
    mixing = ", ".join(m for m in METHODS if METHODS.get(m).takes_alpha_flag)
    a("--alpha", help=f"the Beta(α, α) parameter of the mixing methods ({mixing}) where --methods (or the preset) "
      "lists them without a value, e.g. 1 or 1,8 (a grid axis); never label smoothing's ε (label_smoothing:0.05)")
    a("--dropout", help="dropout rate(s), e.g. 0,0.5; a grid axis")
    a("--noise", help="label-noise rate(s) in [0, 1), e.g. 0,0.2")
    a("--seeds", help="seeds, e.g. 0,1,2")
    a("--epochs", type=int, help="training epochs")
    a("--batch-size", type=int, help="training batch size")
    a("--lr", type=float, help="peak learning rate")
    a("--weight-decay", type=float, help="SGD weight decay")
    a("--schedule", help="step (lr/10 at 50%% and 75%%), cosine or constant")
    a("--train-samples", type=int, help="train on N training images, a class-stratified sample that is the same "
      "for every seed and method (0 = all; the CPU CIFAR-10 presets use 10000)")
    a("--val-fraction", type=float, help="fraction of the (noisy) training set held out for model selection")
    a("--attacks", help="attacks, e.g. fgsm,pgd,ifgsm, autoattack (the standard AutoAttack, extra [autoattack]; "
      "far costlier than PGD on the points that survive its first attack), ta:NAME (torchattacks), or none")
    a("--corruptions", help="common corruptions computed on the test set at severities 1-5, e.g. "
      f"gaussian_noise,contrast, all (CIFAR-10-C's 15) or extras (its 4 extra ones); known: {', '.join(CORRUPTIONS)}; "
      "accuracy per corruption and severity, the mean over the 15 (labelled computed, not CIFAR-10-C)")
    a("--eps", help="epsilons in /255 units: 2/255,8/255 or 2,8 (a bare number below 1, such as 0.03, is "
      "refused as ambiguous; write 7.65/255). Results write eps as a fraction (0.031373) and eps_255 (8)")
    a("--eps-l2", help="radii of the L2 attacks (pgd_l2, fgm_l2, autoattack_l2), plain L2 norms of the whole "
      "perturbation in [0, 1] pixel space, e.g. 0.25,0.5 (RobustBench: 0.5 on CIFAR-10); needed when --attacks "
      "names an L2 attack")
    a("--attack-steps", type=int, help="steps of the iterative attacks (default 10)")
    a("--attack-step-size", help="step size in /255 units, like --eps (default 2.5*eps/steps)")
    a("--attack-samples", type=int, help="attack N test images, a class-stratified sample that is the same for "
      "every run on the data set (0 = all, the default of the presets); rows say which in n_eval and eval_subset")
    a("--attack-restarts", type=int, help="random restarts of PGD; per-example worst case (default 1)")
    a("--check-eps", help="epsilon in /255 units, like --eps, at which PGD must break the model, a gradient-masking "
      "check (default 64/255; 0 skips)")
    a("--attack-precision", choices=("fp32", "bf16"), help="fp32 (default) or bf16 autocast for attacks")
    a("--surrogate-seed", type=int, help="add black-box rows: attacks transferred from an ERM twin trained "
      "with this seed")
    a("--eval-every", type=int, help="record clean/memorization curves every N epochs (0 = end only)")
    a("--device", help="auto (default), cpu, cuda or cuda:N")
    a("--data-dir", default=os.environ.get("ROBUSTBENCH_MIX_DATA", "data"),
      help="where data sets are downloaded or cached (default: ./data or $ROBUSTBENCH_MIX_DATA)")
    a("--out", help="results directory (default: results/<preset>)")
    a("--checkpoint-every", type=int, default=1, help="checkpoint every N epochs (default 1)")
    a("--eval-batch-size", type=int, default=1000, help="batch size of evaluation and attacks")
    a("--compile", action="store_true", help="train through torch.compile (compiles first; its speed is not "
      "measured yet, see experiments/README.md); combines with --cuda-graphs step, not with model")
    a("--cuda-graphs", nargs="?", const="model", choices=GRAPH_MODES, metavar="{model,step}",
      help="replay training as CUDA graphs, much faster at small batches on a GPU (ignored on the CPU): "
      "'model' (the default) each step's forward and backward, 'step' the whole step, optimizer included")
    a("--cpu-channels-last", action="store_true", help="on the CPU, models and images in the channels_last memory "
      "layout (always so on CUDA): the same arithmetic, faster per training step on the CPUs measured "
      "(figures in experiments/README.md); numbers differ from the default layout's by rounding, and the device "
      "column says channels_last")
    a("--executor", default="local", choices=EXECUTORS.names(),
      help="where runs execute: local (one after another in this process, the default) or ray (Ray tasks on this "
      "machine or a cluster; optional extra [ray])")
    a("--address", help="ray: the cluster to join, 'auto' or HOST:PORT (default: start Ray here)")
    a("--gpus-per-run", type=float, help="ray: GPUs per run; a fraction packs runs, e.g. 0.25 trains four per GPU "
      "(default: 1 where the cluster has GPUs, else 0)")
    a("--cpus-per-run", type=float, help="ray: CPUs per run, also its torch threads (default 1)")
    a("--max-retries", type=int, help="ray: retries of a run whose worker died; it resumes from its "
      "checkpoint (default 2)")
    a("--force", action="store_true", help="rerun runs that already finished, from their start; refused with "
      f"--time-limit (or ${TIME_LIMIT_ENV}), where each resumed piece would start them afresh again and the grid "
      "never finish: give another --out instead")
    a("--time-limit", metavar="DURATION", help="stop cleanly before this much wall-clock time has passed "
      f"(between epochs, after a checkpoint, or between runs) and exit {TIME_LIMIT_EXIT}; the same command resumes. "
      f"{FORMS[0].upper() + FORMS[1:]}. Default: ${TIME_LIMIT_ENV} (for Slurm), else none")
    a("--dry-run", action="store_true", help="list the runs and their status without training, and the expected "
      "time of what remains where runs of the same configuration have been timed")
    a("--no-progress", action="store_true", help="no progress bars")
    add_plugin_flag(p)
    return p


def methods_help() -> str:
    """One line per trainable method: how --methods spells it, its defaults, its options."""
    lines = []
    for name in METHODS:
        m = METHODS.get(name)
        if m.trainable:
            lines.append(f"  {m.usage(name)}" + (f"  [{m.defaults_text()}]" if m.defaults_text() else "")
                         + (f"  (plugin {METHODS.origin(name).module})" if METHODS.origin(name) else ""))
            lines += [textwrap.fill(f"{o.name}: {o.doc}", 110, initial_indent=" " * 6, subsequent_indent=" " * 8)
                      for o in m.options]
    return "\n".join(lines)


def suite_from_args(args) -> Suite:
    suite = get_preset(args.preset)
    base = suite.base
    simple = {"dataset": args.dataset, "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size,
              "lr": args.lr, "weight_decay": args.weight_decay, "schedule": args.schedule,
              "val_fraction": args.val_fraction, "train_samples": args.train_samples,
              "attack_steps": args.attack_steps,
              "attack_step_size": None if args.attack_step_size is None
              else parse_eps_value(args.attack_step_size, "--attack-step-size"),
              "attack_samples": args.attack_samples, "attack_restarts": args.attack_restarts,
              "check_eps": None if args.check_eps is None else parse_eps_value(args.check_eps, "--check-eps"),
              "surrogate_seed": args.surrogate_seed, "attack_precision": args.attack_precision,
              "eval_every": args.eval_every, "device": args.device}
    base = with_lists(replace(base, **{k: v for k, v in simple.items() if v is not None}),
                      attacks=args.attacks, eps=args.eps, eps_l2=getattr(args, "eps_l2", None),
                     corruptions=args.corruptions)
    suite = narrowed(suite, args.methods, args.alpha, args.dropout)  # a preset's pairings kept, or refused
    noise = parse_numbers(args.noise, "--noise") if args.noise is not None else suite.noise
    seeds = parse_numbers(args.seeds, "--seeds", int) if args.seeds is not None else suite.seeds
    return replace(suite, base=base, noise=noise, seeds=seeds)
