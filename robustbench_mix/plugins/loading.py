"""Loading plugins: ``--plugin PATH.py`` / ``--plugin package.module`` (repeatable), ``$ROBUSTBENCH_MIX_PLUGINS``
(os.pathsep-separated, for Slurm scripts) and the installed packages' entry points of the group
``robustbench_mix.plugins``. Any problem (no such file, a syntax error, an import error, a bad trait) is one
UsageError naming the plugin and the problem, raised before any data are loaded; a plugin that failed leaves no
entry behind. Loading is idempotent: a file already loaded with the same content is not run again (the suite
in a test, a Ray worker running many tasks), and a file whose content changed replaces its old entries."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from robustbench_mix.core.errors import UsageError, first_line
from robustbench_mix.plugins.api import LOADING, REGISTERED

ENV = "ROBUSTBENCH_MIX_PLUGINS"
GROUP = "robustbench_mix.plugins"
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# what has been loaded in this process: spec as loaded (a file's absolute path, a module's name) -> its
# content's sha256 (a file) or "" (a module)
_LOADED: dict[str, str] = {}
_ENTRY_POINTS: set[str] = set()  # entry points loaded (each process loads the installed ones itself)


def plugin_specs(given: Sequence[str] | None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The plugins to load: those of ``$ROBUSTBENCH_MIX_PLUGINS``, then ``given`` (--plugin), each once."""
    env = [s.strip() for s in environ.get(ENV, "").split(os.pathsep) if s.strip()]
    return list(dict.fromkeys([*env, *(given or ())]))


def is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def unload(key: str) -> None:
    """A plugin's entries (``key``: the spec as loaded) out of the registries."""
    for registry, name in REGISTERED.pop(key, []):
        registry.unregister(name)
    _LOADED.pop(key, None)


def unload_all() -> None:
    """Every plugin's entries out of the registries (tests; a fresh start in a long-lived process)."""
    for key in list(REGISTERED):
        unload(key)
    _LOADED.clear()
    _ENTRY_POINTS.clear()


def loaded_specs() -> tuple[str, ...]:
    """What this process loaded (absolute paths, module names): what a Ray worker must load too."""
    return tuple(_LOADED)


def _where(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    return f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""


def _run(label: str, key: str, execute) -> None:
    """Import one plugin under its label; any failure becomes one UsageError, and its entries are removed."""
    LOADING.append((label, key))
    try:
        execute()
    except UsageError as e:
        unload(key)
        raise UsageError(str(e) if str(e).startswith("plugin ") else f"plugin {label}: {e}") from None
    except SyntaxError as e:
        unload(key)
        raise UsageError(f"plugin {label}: syntax error at line {e.lineno}: {e.msg}") from None
    except ImportError as e:
        unload(key)
        raise UsageError(f"plugin {label}: import error: {first_line(e)}{_where(e)}") from None
    except Exception as e:  # anything its code raises while it is imported
        unload(key)
        raise UsageError(f"plugin {label}: {e.__class__.__name__} while importing it: {first_line(e)}{_where(e)}") \
            from None
    finally:
        LOADING.pop()


def _load_file(spec: str) -> str:
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(f"plugin {spec}: no such file (give a Python file, PATH.py, or an importable module, "
                         "package.module)")
    if not path.is_file() or path.suffix != ".py":
        raise UsageError(f"plugin {spec}: not a Python file (.py); give PATH.py or package.module")
    resolved = str(path.resolve())
    try:
        source = path.read_bytes()
    except OSError as e:
        raise UsageError(f"plugin {spec}: cannot be read ({e.strerror or e})") from None
    sha = hashlib.sha256(source).hexdigest()
    label = path.name
    if _LOADED.get(resolved) == sha:
        return resolved
    if resolved in _LOADED:  # the file changed since it was loaded: its old entries go
        unload(resolved)
    name = f"robustbench_mix_plugin_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_" \
           f"{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(module_spec)

    def execute():
        sys.modules[name] = module  # inspect.getsource (the fingerprint) finds the module of its functions
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise

    _run(label, resolved, execute)
    _LOADED[resolved] = sha
    return resolved


def _load_module(spec: str) -> str:
    if not MODULE.fullmatch(spec):
        raise UsageError(f"plugin {spec!r}: neither a Python file (PATH.py) nor a module name (package.module)")
    if spec in _LOADED:
        return spec

    def execute():
        try:
            _import(spec)
        except ModuleNotFoundError as e:
            if e.name and (spec == e.name or spec.startswith(e.name + ".")):
                raise UsageError(f"plugin {spec}: no module named {e.name!r} is importable here (a file is given "
                                 "as PATH.py)") from None
            raise

    _run(spec, spec, execute)
    _LOADED[spec] = ""
    return spec


def _import(name: str):
    """Import ``name`` and run it, again if it was imported before (its entries were unloaded since)."""
    module = sys.modules.get(name)
    return importlib.reload(module) if module is not None else importlib.import_module(name)


def _entry_points() -> list:
    try:
        return list(importlib.metadata.entry_points(group=GROUP))
    except Exception:  # a broken installation's metadata: no plugins from it, the commands still run
        return []


def load_plugins(specs: Sequence[str] = (), *, entry_points: bool = True, only: bool = False) -> tuple[str, ...]:
    """Load ``specs`` (files and modules) and, with ``entry_points``, the installed packages' plugins; returns
    what was loaded (:func:`loaded_specs`). ``only``: first unload the files and modules loaded before that are not
    in ``specs`` (a Ray worker process that ran another grid's tasks)."""
    if only:
        for key in [k for k in _LOADED if k not in specs]:
            unload(key)
    if entry_points:
        for ep in _entry_points():
            if ep.value in _ENTRY_POINTS:
                continue
            _run(ep.value.split(":")[0], ep.value, lambda ep=ep: _import(ep.module))
            _ENTRY_POINTS.add(ep.value)
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise UsageError(f"plugin {spec!r}: empty; give PATH.py or package.module")
        (_load_file if is_path(spec) else _load_module)(spec.strip())
    return loaded_specs()
