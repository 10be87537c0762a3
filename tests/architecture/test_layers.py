"""The package's layers: imports only go down (or sideways within a layer), read from the source, not run.

Each subpackage belongs to one layer; a module may import its own layer and the layers below it. The order is
the design page's (docs/design.md): what a run is made of first, the commands last.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "robustbench_mix"
LAYERS = [
    {"core"},  # errors, registry, atomic writes, units, device policy, the torch-file reader, the version
    {"data", "models", "attacks", "corruptions", "methods"},  # the parts a run is made of
    {"experiment", "plugins"},  # what a run is: Experiment, validation, grids, presets; the plugins and contracts
    {"evaluation"},  # rows of a trained model: metrics, attacks, corruptions, checks
    {"training"},  # fit (which evaluates its curves)
    {"store"},  # the results contract: rows, loading, merging, summaries
    {"execution"},  # one run end to end, executors, locks, the time limit, a grid
    {"reports"},  # tables, plots, report, compare, claims, leaderboard, headline
    {"api"},  # evaluate() and what it accepts
    {"cli", "__init__", "__main__", "suite", "compare", "claims", "report", "leaderboard", "checkpoint", "bench",
     "check"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def top_of(module: str) -> str | None:
    """'robustbench_mix.store.load' -> 'store'; None outside the package."""
    parts = module.split(".")
    if parts[0] != "robustbench_mix":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, lazy ones inside functions included."""
    rel = path.relative_to(package.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((node.lineno, module))
            if module == "robustbench_mix":  # from robustbench_mix import core: the named subpackages
                out += [(node.lineno, f"robustbench_mix.{a.name}") for a in node.names]
    return out


def upward_imports(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        own = rel.parts[0].removesuffix(".py")
        if own not in LAYER:
            problems.append(f"{rel}: its folder {own!r} has no layer (add it to LAYERS and the design page)")
            continue
        for line, module in imports(path, package):
            top = top_of(module)
            if top is None or top == "__init__" and own != "__init__":
                if top == "__init__" and module == "robustbench_mix" and own != "__init__":
                    problems.append(f"{rel}:{line} imports the package root (the public names) from below it")
                continue
            if top not in LAYER:
                problems.append(f"{rel}:{line} imports {module}, which has no layer")
            elif LAYER[top] > LAYER[own]:
                problems.append(f"{rel}:{line} imports {module} (layer {LAYER[top]}, {top}) from layer "
                                f"{LAYER[own]} ({own}): imports only go down")
    return problems


def test_imports_only_go_down():
    assert upward_imports() == []


def test_no_command_imports_another_command():
    commands = sorted(p for p in (PACKAGE / "cli").glob("*.py") if p.stem not in ("__init__", "common", "args",
                                                                                   "suite_args"))
    names = {f"robustbench_mix.cli.{p.stem}" for p in commands}
    bad = [f"{p.name}:{line} imports {m}" for p in commands for line, m in imports(p)
           if m in names and m != f"robustbench_mix.cli.{p.stem}"]
    assert bad == []


def test_an_upward_import_is_caught(tmp_path):
    """The check itself can fail: a planted import of the store from a model."""
    import shutil

    copy = tmp_path / "robustbench_mix"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    zoo = copy / "models" / "zoo.py"
    zoo.write_text(zoo.read_text() + "\n\ndef _planted():\n    from robustbench_mix.store.load import load_runs\n")
    problems = upward_imports(copy)
    assert len(problems) == 1 and "models/zoo.py" in problems[0] and "imports only go down" in problems[0]


@pytest.mark.parametrize("folder", sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"))
def test_every_folder_has_a_layer(folder):
    assert folder in LAYER, f"robustbench_mix/{folder}/ is in no layer of tests/architecture/test_layers.py"
