"""``python -m robustbench_mix.checkpoint PATH [PATH ...]``: evaluate saved models without training, into a
results directory with the suite's contract (runs.csv, summary, report), so ``compare``, ``claims`` and
``report`` read it. A PATH is a checkpoint the suite wrote (its run's config is inside), a plain ``state_dict``
of one of the suite's models or of your own class (``--model`` and ``--dataset`` then say which: ``--model
package.module:Class`` or ``path/to/file.py:Class`` with ``--model-kwargs`` JSON and ``--normalize``), or a
suite's results directory (every ``runs/*/checkpoint.pt`` in it); each file is evaluated as its own run, and one
that fails does not stop the others. Files are read with ``torch.load(weights_only=True)``: one that needs pickle
(arbitrary Python objects, which can run code while loading) is refused.

What identifies an evaluation (the ``run_id``, and the configuration ``compare`` and ``claims`` pool seeds
over): a suite checkpoint keeps its run's config and training seed (the ``seed`` column), marked
``weights: checkpoint`` so that its rows never replace the suite's own rows of that run; a plain state_dict
is identified by a sha256 of its tensors (``weights: sha256:...``; ``seed`` stays 0: it has no training
seed); ``--seed`` sets ``eval_seed``, a field of its own, so evaluating one model with several attack seeds
never poses as several training seeds."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import torch

from robustbench_mix.api.checkpoints import checkpoint_paths, evaluate_path
from robustbench_mix.api.user_class import check_flags
from robustbench_mix.cli.common import add_plugin_flag, handled, load_plugin_args
from robustbench_mix.core.atomic import atomic_write_text, check_writable
from robustbench_mix.core.device import resolve_device
from robustbench_mix.core.errors import RunFailed, UsageError
from robustbench_mix.execution.executors import unexpected
from robustbench_mix.reports.report import checks_markdown, write_report
from robustbench_mix.reports.tables import TABLES
from robustbench_mix.store.load import load_runs
from robustbench_mix.store.schema import ResultsError
from robustbench_mix.store.summary import summarize, summary_markdown
from robustbench_mix.store.write import atomic_write_csv

COMMAND = "python -m robustbench_mix.checkpoint"
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("path", nargs="+", help="suite checkpoints (runs/<id>/checkpoint.pt), state_dicts saved with torch.save, or "
      "a suite's results directory (all its runs' checkpoints); each is evaluated as its own run")
    a("--model", help="for a plain state_dict: which of the suite's models (or tv:NAME / timm:NAME) it holds, or "
      "your own class: package.module:Class or path/to/file.py:Class (with --normalize)")
    a("--model-kwargs", help="for --model MODULE:Class: the class's keyword arguments as a JSON object, e.g. "
      "'{\"width\": 32}' (default: none)")
    a("--normalize", help="for --model MODULE:Class, required: the input normalization put in front of it, mean,std "
      "(one number each, or one per channel, means then stds), or none (the model normalizes itself)")
    a("--dataset", help="the data to evaluate on (default: the run's own); also cifar10c / cifar100c (the standard "
      "corruption files in --data-dir)")
    a("--dropout", type=float, default=0.0, help="for a plain state_dict: the model's dropout (default 0)")
    a("--attacks", help="attacks (default: the run's own, or fgsm,pgd)")
    a("--eps", help="epsilons in /255 units, 8/255 or 8 (a bare number below 1 is refused as ambiguous; default: the "
      "run's own, or 2,8)")
    a("--eps-l2", help="radii of the L2 attacks, plain L2 norms in [0, 1] pixel space, e.g. 0.25,0.5 (default: the "
      "run's own)")
    a("--attack-samples", type=int, help="attack a class-stratified N of the test images, the same for every model "
      "(0 = all; default: the run's own, or every test image, as the suite and evaluate())")
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
    check_flags(args.model, args.model_kwargs, args.normalize)
    check_writable(Path(args.out), "--out")


def write_outputs(out: Path) -> None:
    """The summary, tables and report of everything in ``out``'s runs.csv."""
    merged = load_runs(out / "runs.csv", strict=False)
    summary = summarize(merged)
    atomic_write_csv(summary, out / "summary.csv")
    checks = checks_markdown(merged)  # each kind of sanity check, passed or failed
    atomic_write_text(out / "summary.md", "# checkpoint evaluations\n\n" + summary_markdown(summary)
                      + (f"\n{checks}" if checks else ""))
    for table in ("robust", "corruptions"):
        TABLES.get(table)(merged, out)
    write_report(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if load_plugin_args(argv):
        return 2
    p = build_parser()
    add_plugin_flag(p)
    args = p.parse_args(argv)
    command = f"{COMMAND} {shlex.join(argv)}"
    return handled(lambda: _main(args, command),
                   on_os_error=f"the files evaluated so far are in {args.out}/runs.csv")


def _main(args, command: str) -> int:
    check_args(args)
    paths = checkpoint_paths(args.path)
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
        except OSError:  # a results file that cannot be written: the next file would fail the same way
            raise
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
